package k8s_test

// The in-cluster Redis as rendered, run for real: the StatefulSet's exact
// command and arguments (passwords expanded from the rendered Secret as the
// kubelet does) on a local redis-server, then connect the way each client
// does. Only --dir and the port are changed, and one extra admin user is
// added at the end so the test can read CONFIG.

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// kedaListLengthScript is the Lua script of KEDA v2.21's Redis lists scaler
// (pkg/scalers/redis_scaler.go, NewRedisScaler), verbatim.
const kedaListLengthScript = `
		local listName = KEYS[1]
		local listType = redis.call('type', listName).ok
		if listType == 'zset' then
			return redis.call('zcard', listName)
		elseif listType == 'set' then
			return redis.call('scard', listName)
		elseif listType == 'hash' then
			return redis.call('hlen', listName)
		elseif listType == 'list' or listType == 'none' then
			return redis.call('llen', listName)
		else
			return redis.error_reply('ERR unsupported key type: ' .. listType)
		end
	`

func TestInClusterRedisRuns(t *testing.T) {
	r := render(t, "overlays/dev")
	cm := configData(t, r)
	ss := r.find("StatefulSet", "redis-keda-redis")
	if ss == nil {
		t.Fatal("dev renders no Redis StatefulSet")
	}
	c := list(ss, "spec", "template", "spec", "containers")[0]
	secret := r.find("Secret", strings.Split(envSecretRef(c, "REDIS_PASSWORD"), "/")[0])
	if secret == nil {
		t.Fatal("dev renders no Secret for REDIS_PASSWORD")
	}
	env := map[string]string{}
	for _, e := range list(c, "env") {
		ref := mapAt(e, "valueFrom", "secretKeyRef")
		if ref == nil {
			t.Fatalf("redis env %s is not from a Secret", str(e, "name"))
		}
		env[str(e, "name")] = secretValue(t, secret, str(ref, "key"))
	}
	cmd := toStrings(list(c, "command"))
	if len(cmd) != 1 || cmd[0] != "redis-server" {
		t.Fatalf("redis command %v, want [redis-server]", cmd)
	}
	args := expandEnv(t, toStrings(list(c, "args")), env)
	dir := t.TempDir()
	for i := range args {
		if args[i] == "--dir" {
			args[i+1] = dir
		}
	}
	const adminPassword = "test-admin"
	srv := startRedis(t, args, "--user", "test-admin", "on", ">"+adminPassword, "~*", "+@all")
	ctx := context.Background()

	admin := srv.client(t, "test-admin", adminPassword)
	for key, want := range map[string]string{
		"maxmemory":        strconv.Itoa(204 << 20), // 80% of the 256Mi limit
		"maxmemory-policy": "noeviction",
		"appendonly":       "yes",
		"appendfsync":      "always",
	} {
		got, err := admin.ConfigGet(ctx, key).Result()
		if err != nil || got[key] != want {
			t.Errorf("CONFIG GET %s = %v (%v), want %s", key, got, err, want)
		}
	}

	// The default user is off: no command without logging in, and no
	// password opens it.
	anon := srv.client(t, "", "")
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING without credentials: %v, want NOAUTH (default user off)", err)
	}
	if err := srv.client(t, "default", env["REDIS_PASSWORD"]).Ping(ctx).Err(); err == nil {
		t.Error("the default user accepts the application's password")
	}

	// KEDA's scaler, as v2.21 connects (go-redis NewClient with username,
	// password, DB; Ping; then Eval of its script on the list).
	kedaUser := secretValue(t, secret, "keda-username")
	keda := srv.client(t, kedaUser, env["KEDA_REDIS_PASSWORD"])
	if err := keda.Ping(ctx).Err(); err != nil {
		t.Fatalf("KEDA's PING as %q: %v", kedaUser, err)
	}
	count := func() int64 {
		t.Helper()
		n, err := keda.Eval(ctx, kedaListLengthScript, []string{cm["QUEUE"]}).Int64()
		if err != nil {
			t.Fatalf("KEDA's list-length script as %q: %v", kedaUser, err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Errorf("KEDA counts %d on an empty queue", n)
	}

	// The application user publishes; KEDA sees it; KEDA cannot write or
	// read anything else.
	app := srv.client(t, cm["REDIS_USERNAME"], env["REDIS_PASSWORD"])
	if err := app.LPush(ctx, cm["QUEUE"], `{"wait": 1}`).Err(); err != nil {
		t.Fatalf("LPUSH as the application user %q: %v", cm["REDIS_USERNAME"], err)
	}
	if n := count(); n != 1 {
		t.Errorf("KEDA counts %d after one LPUSH", n)
	}
	for what, err := range map[string]error{
		"LPUSH events":            keda.LPush(ctx, cm["QUEUE"], "x").Err(),
		"LLEN {events}:dead":      keda.LLen(ctx, "{events}:dead").Err(),
		"CONFIG GET maxmemory":    keda.ConfigGet(ctx, "maxmemory").Err(),
		"app: CONFIG GET":         app.ConfigGet(ctx, "maxmemory").Err(),
		"app: FLUSHALL":           app.FlushAll(ctx).Err(),
		"app: LLEN of other keys": app.LLen(ctx, "other").Err(),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%s: %v, want NOPERM", what, err)
		}
	}

	// The readiness probe, as written (only the port added).
	probe := toStrings(list(c, "readinessProbe", "exec", "command"))
	if len(probe) != 3 || probe[0] != "sh" {
		t.Fatalf("readiness probe %v", probe)
	}
	if _, err := exec.LookPath("redis-cli"); err == nil {
		sh := exec.Command("sh", "-c", strings.Replace(probe[2], "redis-cli", "redis-cli -p "+srv.port, 1))
		sh.Env = append(os.Environ(), "REDISCLI_AUTH="+env["REDISCLI_AUTH"])
		if out, err := sh.CombinedOutput(); err != nil {
			t.Errorf("readiness probe %q fails against the running Redis: %v\n%s", probe[2], err, out)
		}
	} else {
		t.Log("redis-cli not installed: readiness probe not run")
	}

	// At maxmemory, noeviction: writes are refused with an error the
	// producer sees; nothing already queued is evicted.
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	err := app.LPush(ctx, cm["QUEUE"], `{"wait": 2}`).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "OOM command not allowed") {
		t.Errorf("LPUSH above maxmemory: %v, want the OOM error", err)
	}
	if n := count(); n != 1 {
		t.Errorf("after a refused write the queue holds %d events, want the 1 already queued", n)
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv expands $(VAR) in args from env, as the kubelet does.
func expandEnv(t *testing.T, args []string, env map[string]string) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = envRef.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := env[envRef.FindStringSubmatch(m)[1]]
			if !ok {
				t.Fatalf("argument %q refers to %s, which the container's env does not define", a, m)
			}
			return v
		})
	}
	return out
}

type redisProc struct {
	port string
}

// startRedis runs redis-server with args (+ extra) on a free loopback port
// and kills it (by PID) when the test ends.
func startRedis(t *testing.T, args []string, extra ...string) *redisProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	full := append(append(args, extra...), "--port", port, "--bind", "127.0.0.1", "--daemonize", "no",
		"--logfile", filepath.Join(t.TempDir(), "redis.log"))
	cmd := exec.Command(redistest.Binary(t), full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	p := &redisProc{port: port}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			conn.Close()
			return p
		}
		select {
		case err := <-done:
			t.Fatalf("redis-server exited with the rendered arguments: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not listening after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *redisProc) client(t *testing.T, user, password string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + p.port, Username: user, Password: password, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
