package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis/go-redis/v9"
)

// The secrets of the tables below: none may appear in any message, String,
// %v, %+v, %#v or JSON of the configuration.
var testSecrets = []string{"pa55word", "sentinel-pw", "p@ss/wo?rd#", "q-pw", "0123456789"}

type redisEnv struct {
	Redis RedisConfig
}

func parseRedisEnv(env map[string]string) (RedisConfig, error) {
	var c redisEnv
	err := config.ParseFrom(&c, env)
	return c.Redis, err
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range testSecrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s shows the secret %q: %s", what, sec, s)
		}
	}
}

// Every way a RedisConfig prints masks its passwords.
func assertPrintsNoSecret(t *testing.T, c RedisConfig) {
	t.Helper()
	assertNoSecret(t, "String", c.String())
	assertNoSecret(t, "%v", fmt.Sprintf("%v", c))
	assertNoSecret(t, "%+v", fmt.Sprintf("%+v", c))
	assertNoSecret(t, "%#v", fmt.Sprintf("%#v", c))
	assertNoSecret(t, "%q of REDIS_ADDR", fmt.Sprintf("%q", c.Addr))
	assertNoSecret(t, "%s and %v of REDIS_PASSWORD", fmt.Sprintf("%s %v", c.Password, c.Password))
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "JSON", string(b))
}

func TestRedisConfigResolves(t *testing.T) {
	cases := []struct {
		name   string
		env    map[string]string
		want   redisTarget
		String string
	}{
		{"defaults", map[string]string{},
			redisTarget{mode: ModeStandalone, addrs: []string{"localhost:6379"}},
			`standalone localhost:6379 db=0 user="" password=none tls=false`},
		{"variables", map[string]string{"REDIS_ADDR": "10.0.0.5:6380", "REDIS_USERNAME": "app", "REDIS_PASSWORD": "pa55word", "REDIS_DB": "2", "REDIS_TLS": "true"},
			redisTarget{mode: ModeStandalone, addrs: []string{"10.0.0.5:6380"}, username: "app", password: "pa55word", db: 2, tls: true},
			`standalone 10.0.0.5:6380 db=2 user="app" password=set tls=true`},
		{"URL", map[string]string{"REDIS_ADDR": "redis://app:pa55word@redis.example:6390/3"},
			redisTarget{mode: ModeStandalone, addrs: []string{"redis.example:6390"}, username: "app", password: "pa55word", db: 3},
			`standalone redis.example:6390 db=3 user="app" password=set tls=false`},
		{"rediss URL with defaults for host and port", map[string]string{"REDIS_ADDR": "rediss://:pa55word@"},
			redisTarget{mode: ModeStandalone, addrs: []string{"localhost:6379"}, password: "pa55word", tls: true},
			`standalone localhost:6379 db=0 user="" password=set tls=true`},
		{"escaped special characters in the URL password", map[string]string{"REDIS_ADDR": "redis://u:p%40ss%2Fwo%3Frd%23@h:1"},
			redisTarget{mode: ModeStandalone, addrs: []string{"h:1"}, username: "u", password: "p@ss/wo?rd#"},
			`standalone h:1 db=0 user="u" password=set tls=false`},
		{"variables override the URL", map[string]string{"REDIS_ADDR": "rediss://u:q-pw@h:1/4", "REDIS_USERNAME": "app", "REDIS_PASSWORD": "pa55word", "REDIS_DB": "0", "REDIS_TLS": "false"},
			redisTarget{mode: ModeStandalone, addrs: []string{"h:1"}, username: "app", password: "pa55word"},
			`standalone h:1 db=0 user="app" password=set tls=false`},
		{"db as a query parameter", map[string]string{"REDIS_ADDR": "redis://h:1?db=5"},
			redisTarget{mode: ModeStandalone, addrs: []string{"h:1"}, db: 5},
			`standalone h:1 db=5 user="" password=none tls=false`},
		{"IPv6", map[string]string{"REDIS_ADDR": "redis://[::1]:7000"},
			redisTarget{mode: ModeStandalone, addrs: []string{"[::1]:7000"}},
			`standalone [::1]:7000 db=0 user="" password=none tls=false`},
		{"cluster list", map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "a:7000, b:7001,c:7002", "REDIS_PASSWORD": "pa55word"},
			redisTarget{mode: ModeCluster, addrs: []string{"a:7000", "b:7001", "c:7002"}, password: "pa55word"},
			`cluster seeds=a:7000,b:7001,c:7002 user="" password=set tls=false`},
		{"cluster URL with addr", map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "rediss://app:pa55word@a:7000?addr=b:7001&addr=c:7002"},
			redisTarget{mode: ModeCluster, addrs: []string{"a:7000", "b:7001", "c:7002"}, username: "app", password: "pa55word", tls: true},
			`cluster seeds=a:7000,b:7001,c:7002 user="app" password=set tls=true`},
		{"cluster REDIS_DB=0 is fine", map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "a:1", "REDIS_DB": "0"},
			redisTarget{mode: ModeCluster, addrs: []string{"a:1"}},
			`cluster seeds=a:1 user="" password=none tls=false`},
		{"sentinel", map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": "s1:26379,s2:26379", "REDIS_SENTINEL_MASTER": "mymaster",
			"REDIS_USERNAME": "app", "REDIS_PASSWORD": "pa55word", "REDIS_SENTINEL_USERNAME": "sen", "REDIS_SENTINEL_PASSWORD": "sentinel-pw", "REDIS_DB": "1", "REDIS_TLS": "true"},
			redisTarget{mode: ModeSentinel, addrs: []string{"s1:26379", "s2:26379"}, username: "app", password: "pa55word", db: 1, tls: true,
				master: "mymaster", sentinelUsername: "sen", sentinelPassword: "sentinel-pw"},
			`sentinel master="mymaster" sentinels=s1:26379,s2:26379 db=1 user="app" password=set sentinel_user="sen" sentinel_password=set tls=true`},
		{"sentinel URL as go-redis ParseFailoverURL reads it", map[string]string{"REDIS_MODE": "sentinel",
			"REDIS_ADDR": "rediss://sen:sentinel-pw@s1:26379/2?addr=s2:26379&master_name=mymaster&username=app&password=pa55word"},
			redisTarget{mode: ModeSentinel, addrs: []string{"s1:26379", "s2:26379"}, username: "app", password: "pa55word", db: 2, tls: true,
				master: "mymaster", sentinelUsername: "sen", sentinelPassword: "sentinel-pw"},
			`sentinel master="mymaster" sentinels=s1:26379,s2:26379 db=2 user="app" password=set sentinel_user="sen" sentinel_password=set tls=true`},
		{"sentinel variables override the URL", map[string]string{"REDIS_MODE": "sentinel", "REDIS_SENTINEL_MASTER": "other", "REDIS_SENTINEL_PASSWORD": "sentinel-pw", "REDIS_PASSWORD": "pa55word",
			"REDIS_ADDR": "redis://:q-pw@s1:26379?master_name=mymaster&password=0123456789"},
			redisTarget{mode: ModeSentinel, addrs: []string{"s1:26379"}, password: "pa55word", master: "other", sentinelPassword: "sentinel-pw"},
			`sentinel master="other" sentinels=s1:26379 db=0 user="" password=set sentinel_user="" sentinel_password=set tls=false`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseRedisEnv(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.resolve()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("resolved\n %+v, want\n %+v", got, tc.want)
			}
			if s := c.String(); s != tc.String {
				t.Errorf("String() = %s\n           want %s", s, tc.String)
			}
			assertPrintsNoSecret(t, c)
		})
	}
}

// A URL means what go-redis's own parsers make of it.
func TestRedisURLMatchesGoRedis(t *testing.T) {
	for _, raw := range []string{
		"redis://app:pa55word@redis.example:6390/3",
		"rediss://:pa55word@",
		"redis://u:p%40ss%2Fwo%3Frd%23@h:1",
		"redis://h:1?db=5",
		"redis://[::1]:7000",
		"redis://justuser@h:1",
	} {
		o, err := redis.ParseURL(raw)
		if err != nil {
			t.Fatalf("go-redis ParseURL(%s): %v", raw, err)
		}
		got, err := RedisConfig{Mode: ModeStandalone, Addr: RedisAddr(raw)}.resolve()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		want := redisTarget{mode: ModeStandalone, addrs: []string{o.Addr}, username: o.Username, password: o.Password, db: o.DB, tls: o.TLSConfig != nil}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: resolved %+v, go-redis %+v", raw, got, want)
		}
	}
	for _, raw := range []string{"rediss://app:pa55word@a:7000?addr=b:7001&addr=c:7002", "redis://a"} {
		o, err := redis.ParseClusterURL(raw)
		if err != nil {
			t.Fatalf("go-redis ParseClusterURL(%s): %v", raw, err)
		}
		got, err := RedisConfig{Mode: ModeCluster, Addr: RedisAddr(raw)}.resolve()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		want := redisTarget{mode: ModeCluster, addrs: o.Addrs, username: o.Username, password: o.Password, tls: o.TLSConfig != nil}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: resolved %+v, go-redis %+v", raw, got, want)
		}
	}
	raw := "rediss://sen:sentinel-pw@s1:26379/2?addr=s2:26379&master_name=mymaster&username=app&password=pa55word"
	o, err := redis.ParseFailoverURL(raw)
	if err != nil {
		t.Fatalf("go-redis ParseFailoverURL: %v", err)
	}
	got, err := RedisConfig{Mode: ModeSentinel, Addr: RedisAddr(raw)}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := redisTarget{mode: ModeSentinel, addrs: o.SentinelAddrs, username: o.Username, password: o.Password, db: o.DB, tls: o.TLSConfig != nil,
		master: o.MasterName, sentinelUsername: o.SentinelUsername, sentinelPassword: o.SentinelPassword}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: resolved %+v, go-redis %+v", raw, got, want)
	}
}

// A RedisConfig made in code without Mode is standalone, as the variable's
// default.
func TestRedisConfigZeroModeIsStandalone(t *testing.T) {
	c := RedisConfig{Addr: "h:1"}
	got, err := c.resolve()
	if err != nil || got.mode != ModeStandalone || c.String() != `standalone h:1 db=0 user="" password=none tls=false` {
		t.Fatalf("resolved %+v, %v; String %s", got, err, c)
	}
}

func TestRedisConfigErrors(t *testing.T) {
	const pre = "invalid configuration: invalid queue configuration: "
	cases := []struct {
		env  map[string]string
		want string // after pre
	}{
		{map[string]string{"REDIS_MODE": "replicated"}, `REDIS_MODE="replicated" is not standalone, cluster or sentinel`},
		{map[string]string{"REDIS_ADDR": "localhost"}, `REDIS_ADDR="localhost" is not host:port, such as localhost:6379 (missing port in address)`},
		{map[string]string{"REDIS_ADDR": "localhost:http"}, `REDIS_ADDR="localhost:http" is not host:port, such as localhost:6379 (the port must be a number from 1 to 65535)`},
		{map[string]string{"REDIS_ADDR": "localhost:70000"}, `REDIS_ADDR="localhost:70000" is not host:port, such as localhost:6379 (the port must be a number from 1 to 65535)`},
		{map[string]string{"REDIS_ADDR": "a:1:2"}, `REDIS_ADDR="a:1:2" is not host:port, such as localhost:6379 (too many colons in address)`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "a:1,b"}, `REDIS_ADDR="a:1,b": entry "b" is not host:port, such as localhost:6379 (missing port in address)`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "a:1,,b:2"}, `REDIS_ADDR="a:1,,b:2" has an empty entry; separate host:port entries with single commas`},
		{map[string]string{"REDIS_ADDR": "a:1,b:2"}, `REDIS_ADDR="a:1,b:2" lists 2 addresses, REDIS_MODE=standalone takes one; set REDIS_MODE=cluster or REDIS_MODE=sentinel for a list`},
		{map[string]string{"REDIS_ADDR": "user:pa55word@h:6379"}, `REDIS_ADDR="xxxxx@h:6379" has credentials outside a URL; use redis://user:password@host:port or REDIS_USERNAME and REDIS_PASSWORD`},
		{map[string]string{"REDIS_ADDR": "http://user:pa55word@h:6379"}, `REDIS_ADDR="http://user:xxxxx@h:6379" has scheme "http"; use redis:// or rediss:// (TLS)`},
		{map[string]string{"REDIS_ADDR": "redis://user:pa55word@h:6379/x"}, `REDIS_ADDR="redis://user:xxxxx@h:6379/x": the path is the database number, such as /0`},
		{map[string]string{"REDIS_ADDR": "redis://user:pa55word@h:6379/1/2"}, `REDIS_ADDR="redis://user:xxxxx@h:6379/1/2": the path is the database number, such as /0`},
		{map[string]string{"REDIS_ADDR": "redis://user:pa55word@h:99999"}, `REDIS_ADDR="redis://user:xxxxx@h:99999": the port must be a number from 1 to 65535`},
		// A password url.Parse refuses (its error would quote the URL), or
		// with an unescaped / ? # that makes url.Parse read part of it as the
		// host, port or path: masked all the same.
		{map[string]string{"REDIS_ADDR": "redis://user:pa55word^@h:6379"}, `REDIS_ADDR="redis://user:xxxxx@h:6379" is not a valid URL such as redis://user:password@host:6379/0 (special characters in the password must be %-escaped)`},
		{map[string]string{"REDIS_ADDR": "redis://user:p@ss/wo?rd#@h:6379"}, `REDIS_ADDR="redis://user:xxxxx@h:6379" is not a valid URL such as redis://user:password@host:6379/0 (special characters in the password must be %-escaped)`},
		{map[string]string{"REDIS_ADDR": "redis://user:0123456789/x@h:6379"}, `REDIS_ADDR="redis://user:xxxxx@h:6379" is not a valid URL such as redis://user:password@host:6379/0 (special characters in the password must be %-escaped)`},
		{map[string]string{"REDIS_ADDR": "redis://user:pa55word@h:1?read_timeout=1s"}, `REDIS_ADDR="redis://user:xxxxx@h:1?read_timeout=1s" has query parameter "read_timeout"; with REDIS_MODE=standalone a URL takes only db`},
		{map[string]string{"REDIS_ADDR": "redis://h:1?password=pa55word"}, `REDIS_ADDR="redis://h:1?password=xxxxx" has query parameter "password"; with REDIS_MODE=standalone a URL takes only db`},
		{map[string]string{"REDIS_ADDR": "redis://h:1?db=x"}, `REDIS_ADDR="redis://h:1?db=x": db must be a database number, such as db=0`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "redis://:pa55word@a:1,b:2"}, `REDIS_ADDR="redis://:xxxxx@a:1,b:2" lists hosts with commas inside a URL; add more nodes as ?addr=host:port, or use a comma-separated host:port list without URL`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "redis://:pa55word@a:1?addr=b"}, `REDIS_ADDR="redis://:xxxxx@a:1?addr=b": addr="b" is not host:port, such as localhost:6379 (missing port in address)`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "redis://:pa55word@a:1?db=0"}, `REDIS_ADDR="redis://:xxxxx@a:1?db=0" has query parameter "db"; with REDIS_MODE=cluster a URL takes only addr`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "a:1", "REDIS_DB": "3"}, `REDIS_DB=3 must be 0 with REDIS_MODE=cluster: Redis Cluster has only database 0`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "redis://:pa55word@a:1/3"}, `REDIS_ADDR="redis://:xxxxx@a:1/3" selects database 3, but Redis Cluster has only database 0`},
		{map[string]string{"REDIS_DB": "-1"}, `REDIS_DB=-1 must be 0 or more`},
		{map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": "s:26379", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}, `REDIS_SENTINEL_MASTER is empty; REDIS_MODE=sentinel needs the master's name as the sentinels know it, such as mymaster`},
		{map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": "redis://:sentinel-pw@s:26379?master_name=m&password=pa55word&read_only=true"}, `REDIS_ADDR="redis://:xxxxx@s:26379?master_name=m&password=xxxxx&read_only=true" has query parameter "read_only"; with REDIS_MODE=sentinel a URL takes only addr, db, master_name, password, username`},
		{map[string]string{"REDIS_SENTINEL_MASTER": "mymaster"}, `REDIS_SENTINEL_MASTER is set but REDIS_MODE=standalone; set REDIS_MODE=sentinel or unset REDIS_SENTINEL_MASTER`},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}, `REDIS_SENTINEL_PASSWORD is set but REDIS_MODE=cluster; set REDIS_MODE=sentinel or unset REDIS_SENTINEL_PASSWORD`},
		{map[string]string{"REDIS_TLS_CA_FILE": "/ca.pem"}, `REDIS_TLS_CA_FILE is set but TLS is off; set REDIS_TLS=true or use a rediss:// URL`},
		{map[string]string{"REDIS_TLS_CA_FILE": "/ca.pem", "REDIS_ADDR": "rediss://h:1", "REDIS_TLS": "false"}, `REDIS_TLS_CA_FILE is set but TLS is off; set REDIS_TLS=true or use a rediss:// URL`},
	}
	for _, tc := range cases {
		c, err := parseRedisEnv(tc.env)
		if err == nil {
			t.Errorf("%v: no error, want %s", tc.env, tc.want)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%v: %v does not wrap ErrInvalidConfig and config.ErrInvalid", tc.env, err)
		}
		if got := err.Error(); got != pre+tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.env, got, pre+tc.want)
		}
		assertNoSecret(t, "error", err.Error())
		assertPrintsNoSecret(t, c)
		if _, err := c.NewClient(); err == nil || err.Error() != strings.TrimPrefix(pre, "invalid configuration: ")+tc.want {
			t.Errorf("%v: NewClient error %v, want the Validate error", tc.env, err)
		}
	}
}

// A set-but-empty REDIS_ADDR, REDIS_MODE or QUEUE is refused, named: it used
// to mean localhost:6379, standalone and events (caarlos0/env gives an empty
// variable its default). RedisConfig{Addr: ""} made in code is refused too.
func TestSetButEmptyVariablesAreRefused(t *testing.T) {
	type both struct {
		Redis RedisConfig
		Queue Config
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"REDIS_ADDR": ""}, `invalid configuration: REDIS_ADDR is set but empty; set a value, or unset REDIS_ADDR for its default "localhost:6379"`},
		{map[string]string{"REDIS_ADDR": " "}, `invalid configuration: REDIS_ADDR is set but empty; set a value, or unset REDIS_ADDR for its default "localhost:6379"`},
		{map[string]string{"QUEUE": ""}, `invalid configuration: QUEUE is set but empty; set a value, or unset QUEUE for its default "events"`},
		{map[string]string{"REDIS_MODE": "", "REDIS_ADDR": "h:1"}, `invalid configuration: REDIS_MODE is set but empty; set a value, or unset REDIS_MODE for its default "standalone"`},
		{map[string]string{"REDIS_MIN_REPLICAS": ""}, `invalid configuration: REDIS_MIN_REPLICAS is set but empty; set a value, or unset REDIS_MIN_REPLICAS for its default "0"`},
	} {
		var c both
		if err := config.ParseFrom(&c, tc.env); err == nil || err.Error() != tc.want || !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%q: err = %v\nwant %s", tc.env, err, tc.want)
		}
	}
	var c both
	if err := config.ParseFrom(&c, map[string]string{"REDIS_USERNAME": "", "REDIS_PASSWORD": ""}); err != nil || c.Redis.Addr != "localhost:6379" || c.Queue.Name != "events" {
		t.Errorf("unset and empty optional variables: %+v, %v", c, err)
	}
	if err := (RedisConfig{Addr: " "}).Validate(); err == nil || err.Error() != "invalid queue configuration: REDIS_ADDR is empty; set host:port, such as localhost:6379" {
		t.Errorf("RedisConfig{Addr: blank}: %v", err)
	}
}

// A '#' or an '@' after the host in a URL is refused, with the %-escape
// hint: url.Parse read "redis://app:Tr0ub@dor#3@127.0.0.1:6379" as host
// "dor" with password "Tr0ub" (and a fragment), so the client dialed a
// piece of the password and logged it at INFO. No piece of the password
// appears in the error, the String, %v, %#v or JSON; escaped, the same
// password is accepted whole.
func TestRedisURLFragmentAndStrayAtAreRefused(t *testing.T) {
	const pre = "invalid configuration: invalid queue configuration: "
	const escape = " is not a valid URL such as redis://user:password@host:6379/0 (special characters in the password must be %-escaped)"
	pieces := []string{"Tr0ub", "dor", "#3"}
	for _, tc := range []struct {
		env  map[string]string
		want string // after pre
	}{
		{map[string]string{"REDIS_ADDR": "redis://app:Tr0ub@dor#3@127.0.0.1:6379"}, `REDIS_ADDR="redis://app:xxxxx@127.0.0.1:6379"` + escape},
		{map[string]string{"REDIS_ADDR": "redis://:Tr0ub#dor@127.0.0.1:6379/0"}, `REDIS_ADDR="redis://:xxxxx@127.0.0.1:6379/0"` + escape},
		{map[string]string{"REDIS_ADDR": "redis://127.0.0.1:6379#x"}, `REDIS_ADDR="redis://127.0.0.1:6379#x"` + escape},
		{map[string]string{"REDIS_ADDR": "redis://app:Tr0ub@127.0.0.1:6379/0@x"}, `REDIS_ADDR="redis://app:xxxxx@x"` + escape},
		{map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": "redis://s:26379?master_name=m&password=Tr0ub@dor"}, `REDIS_ADDR="redis://s:xxxxx"` + escape},
		{map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": "redis://s:26379?master_name=m&password=Tr0ub#dor"}, `REDIS_ADDR="redis://s:26379?master_name=m&password=xxxxx"` + escape},
		{map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "rediss://app:Tr0ub@dor#3@a:1?addr=b:2"}, `REDIS_ADDR="rediss://app:xxxxx@a:1?addr=b:2"` + escape},
	} {
		c, err := parseRedisEnv(tc.env)
		if err == nil || err.Error() != pre+tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.env["REDIS_ADDR"], err, pre+tc.want)
			continue
		}
		outs := []string{err.Error(), c.String(), fmt.Sprintf("%v %+v %#v %q", c, c, c, c.Addr)}
		if b, err := json.Marshal(c); err == nil {
			outs = append(outs, string(b))
		}
		for _, out := range outs {
			for _, p := range pieces {
				if strings.Contains(out, p) {
					t.Errorf("%q: output shows %q of the password: %s", tc.env["REDIS_ADDR"], p, out)
				}
			}
		}
		if _, err := c.NewClient(); err == nil {
			t.Errorf("%q: NewClient made a client", tc.env["REDIS_ADDR"])
		}
	}
	// An '@' inside the userinfo is read as url.Parse reads it (up to the
	// last '@', the host's), so it is not ambiguous: accepted.
	c, err := parseRedisEnv(map[string]string{"REDIS_ADDR": "redis://app:Tr0ub@dor@127.0.0.1:6379"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.resolve(); err != nil || got.password != "Tr0ub@dor" || strings.Join(got.addrs, ",") != "127.0.0.1:6379" {
		t.Errorf("'@' in the userinfo: %+v, %v", got, err)
	}
	c, err = parseRedisEnv(map[string]string{"REDIS_ADDR": "redis://app:Tr0ub%40dor%233@127.0.0.1:6379"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.resolve()
	if err != nil || got.password != "Tr0ub@dor#3" || got.username != "app" || strings.Join(got.addrs, ",") != "127.0.0.1:6379" {
		t.Errorf("escaped: %+v, %v", got, err)
	}
	if s := c.String(); s != `standalone 127.0.0.1:6379 db=0 user="app" password=set tls=false` {
		t.Errorf("escaped: String %s", s)
	}
}

func TestRedisConfigTLSCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := dir + "/ca.pem"
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := true
	for file, want := range map[string]string{
		dir + "/missing.pem": "read REDIS_TLS_CA_FILE: open " + dir + "/missing.pem: no such file or directory",
		notPEM:               "invalid queue configuration: REDIS_TLS_CA_FILE=" + notPEM + " holds no PEM certificate",
	} {
		_, err := RedisConfig{Mode: ModeStandalone, Addr: "h:1", TLS: &tls, TLSCAFile: file}.NewClient()
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v, want %s", file, err, want)
		}
	}
}

func TestRedisAddrRedaction(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:6379":                         "localhost:6379",
		"a:1,b:2":                                "a:1,b:2",
		"pa55word@h:1":                           "xxxxx@h:1",
		"a:1,u:pa,55word@b:2":                    "xxxxx@b:2",
		"redis://h:1":                            "redis://h:1",
		"redis://user@h:1":                       "redis://user@h:1",
		"redis://user:pa55word@h:1/0":            "redis://user:xxxxx@h:1/0",
		"redis://:pa55word@h:1":                  "redis://:xxxxx@h:1",
		"redis://user:p@ss/wo?rd#@h:1":           "redis://user:xxxxx@h:1",
		"redis://us/er:pa55word@h:1":             "redis://xxxxx@h:1",
		"redis://h:1?password=pa55word&db=1":     "redis://h:1?password=xxxxx&db=1",
		"redis://h:1?db=1&password=pa55word#x":   "redis://h:1?db=1&password=xxxxx",
		"redis://app:Tr0ub@dor#3@h:1":            "redis://app:xxxxx@h:1",
		"redis://h:1?password=Tr0ub@dor#3":       "redis://h:xxxxx", // also read as userinfo "h:1?password=Tr0ub"
		"redis://h:1?password=Tr0ub@dor#3&db=1":  "redis://h:xxxxx&db=1",
		"redis://:a@b@h:1?password=p@q&x=1":      "redis://:xxxxx&x=1",
		"redis://h:1?mypassword=x&password=q-pw": "redis://h:1?mypassword=x&password=xxxxx",
	} {
		if got := redactAddr(in); got != want {
			t.Errorf("redactAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Optional reads (Persistence) are made only as Redis's default user: a
// least-privilege ACL user would be denied and fill the server's ACL LOG.
func TestDefaultUser(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"REDIS_ADDR": "localhost:6379"}, true},
		{map[string]string{"REDIS_ADDR": "localhost:6379", "REDIS_USERNAME": "default"}, true},
		{map[string]string{"REDIS_ADDR": "localhost:6379", "REDIS_USERNAME": "redis-keda"}, false},
		{map[string]string{"REDIS_ADDR": "redis://redis-keda:pw@localhost:6379"}, false},
		{map[string]string{"REDIS_ADDR": "redis://:pw@localhost:6379"}, true},
	} {
		c, err := parseRedisEnv(tc.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.DefaultUser(); got != tc.want {
			t.Errorf("%v: DefaultUser() = %v, want %v", tc.env, got, tc.want)
		}
	}
}
