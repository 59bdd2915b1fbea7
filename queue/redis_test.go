package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The lost-reply tests block a node with DEBUG SLEEP for debugSleep while one
// command is sent with lostReplyTimeout: the reply times out, the command
// runs when the sleep ends. debugSleep stays under the sentinels'
// down-after and the cluster-node-timeout (1 s) so no failover starts.
const (
	lostReplyTimeout = 200 * time.Millisecond
	debugSleep       = 600 * time.Millisecond
)

// newTestClient builds the client for env (parsed as the binaries parse
// it) with the given Timeout, closed when the test ends.
func newTestClient(t *testing.T, env map[string]string, timeout time.Duration) redis.UniversalClient {
	t.Helper()
	rc, err := parseRedisEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	rc.Timeout = timeout
	rdb, err := rc.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// duringSleep runs fn while node sleeps (DEBUG SLEEP debugSleep, sent by
// admin), and returns fn's error once the sleep is over.
func duringSleep(t *testing.T, admin *redis.Client, fn func() error) error {
	t.Helper()
	var wg sync.WaitGroup
	var sleepErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sleepErr = admin.Do(context.Background(), "DEBUG", "SLEEP", debugSleep.Seconds()).Err()
	}()
	time.Sleep(debugSleep / 4) // DEBUG SLEEP is running
	err := fn()
	wg.Wait()
	if sleepErr != nil {
		t.Fatalf("DEBUG SLEEP: %v", sleepErr)
	}
	return err
}

var pushScript = redis.NewScript(`return redis.call('LPUSH', KEYS[1], ARGV[1])`)

// checkSentOnce sends one LPUSH and one EVALSHA (a script that LPUSHes)
// through rdb while node sleeps past the client's timeout: each must fail
// with ErrReplyLost and run exactly once.
func checkSentOnce(t *testing.T, rdb redis.UniversalClient, node *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	if err := pushScript.Run(ctx, rdb, []string{key}, "warm-up").Err(); err != nil { // loads the script
		t.Fatal(err)
	}
	for _, send := range []struct {
		name string
		fn   func() error
	}{
		{"LPUSH", func() error { return rdb.LPush(ctx, key, "lpush").Err() }},
		{"EVALSHA", func() error { return pushScript.Run(ctx, rdb, []string{key}, "evalsha").Err() }},
	} {
		// An open connection to the key's node, so that the command, not
		// a new connection's handshake, meets the sleep.
		if err := rdb.LLen(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := duringSleep(t, node, send.fn)
		if !errors.Is(err, ErrReplyLost) {
			t.Fatalf("%s during DEBUG SLEEP: err = %v, want ErrReplyLost", send.name, err)
		}
		var ne net.Error
		if errors.As(err, &ne) || IsPermanent(err) {
			t.Errorf("%s: %v is a net.Error or permanent", send.name, err)
		}
		t.Logf("%s: %v (after %s)", send.name, err, time.Since(start).Round(time.Millisecond))
	}
	// A command queued behind DEBUG SLEEP may run after the next one of
	// another connection: wait for both, then make sure no resend follows
	// (go-redis resends within its retry backoff, at most 512 ms).
	want := fmt.Sprint([]string{"evalsha", "lpush", "warm-up"})
	var got []string
	for end := time.Now().Add(30 * time.Second); fmt.Sprint(got) != want && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		got = node.LRange(ctx, key, 0, -1).Val()
	}
	time.Sleep(time.Second)
	got = node.LRange(ctx, key, 0, -1).Val()
	if fmt.Sprint(got) != want {
		t.Fatalf("%s = %q, want %s: each command ran exactly once", key, got, want)
	}
}

// eventuallyLen waits up to 30 s (a bound for a loaded machine; it returns
// as soon as the length is reached) for key to reach min entries on node
// and returns its length then.
func eventuallyLen(node *redis.Client, key string, min int64) int64 {
	var n int64
	for end := time.Now().Add(30 * time.Second); n < min && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		n = node.LLen(context.Background(), key).Val()
	}
	return n
}

func TestRedisStandaloneNoResend(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newTestClient(t, map[string]string{"REDIS_ADDR": srv.Addr}, lostReplyTimeout)
	checkSentOnce(t, rdb, srv.Client(), "events")

	// The old settings (MaxRetries: 1) sent it twice: the test sees a resend.
	old := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: lostReplyTimeout, MaxRetries: 1})
	defer old.Close()
	ctx := context.Background()
	// Two connections open before the sleep, for the command and its
	// resend: two blocking commands at once need two.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			old.BLPop(ctx, 200*time.Millisecond, "nothing")
		}()
	}
	wg.Wait()
	if err := duringSleep(t, srv.Client(), func() error { return old.LPush(ctx, "old", "x").Err() }); err == nil {
		t.Fatal("LPUSH with the old settings did not time out")
	}
	if n := eventuallyLen(srv.Client(), "old", 2); n != 2 {
		t.Fatalf("the old settings gave %d entries, want the 2 this test must be able to see", n)
	}
}

// recorder counts the MOVED replies the cluster client's nodes get.
type recorder struct {
	mu    sync.Mutex
	moved []string
}

func (r *recorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *recorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (r *recorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
			r.mu.Lock()
			r.moved = append(r.moved, cmd.Name()+": "+err.Error())
			r.mu.Unlock()
		}
		return err
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.moved
	r.moved = nil
	return m
}

// One cluster, in order: a seed that does not own the queue's slot, MOVED
// after a failover, no resend, a killed master. (Steps, not subtests: the
// cluster helpers fail the test that started the cluster.)
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	t.Logf("cluster created in %s", c.Created.Round(time.Millisecond))
	ctx := context.Background()
	const key = "events" // slot of the tag {events}
	owner := c.MasterOf(key)
	var seed *redistest.Server
	for _, m := range c.Masters() {
		if m != owner {
			seed = m
			break
		}
	}
	// A standalone client on that seed cannot use the queue: the bug of
	// issue 10.
	if err := seed.Client().LPush(ctx, key, "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
		t.Fatalf("standalone LPUSH on a non-owner: %v, want MOVED", err)
	}

	// 1. The cluster client on that one seed reads and writes the key.
	rdb := newTestClient(t, map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": seed.Addr}, 0)
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("REDIS_MODE=cluster built a %T", rdb)
	}
	rec := &recorder{}
	cc.OnNewNode(func(n *redis.Client) { n.AddHook(rec) })
	if err := rdb.LPush(ctx, key, "e1").Err(); err != nil {
		t.Fatal(err)
	}
	if got := owner.Do("LRANGE", key, 0, -1); fmt.Sprint(got) != "[e1]" {
		t.Fatalf("LRANGE on the owner %s = %v", owner.Addr, got)
	}
	if got, err := rdb.LRange(ctx, key, 0, -1).Result(); err != nil || fmt.Sprint(got) != "[e1]" {
		t.Fatalf("LRANGE through the client = %v, %v", got, err)
	}
	q := openQueue(t, map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": seed.Addr, "QUEUE": key})
	if err := q.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	// 2. After a failover the client's slot map names the old owner, now a
	// replica: it answers MOVED, which the client follows once.
	rec.take()
	replica := c.ReplicaOf(owner)[0]
	took := c.Failover(replica, 30*time.Second)
	t.Logf("CLUSTER FAILOVER to %s took %s", replica.Addr, took.Round(time.Millisecond))
	if err := rdb.LPush(ctx, key, "e2").Err(); err != nil {
		t.Fatal(err)
	}
	moved := rec.take()
	if want := fmt.Sprintf("lpush: MOVED %d %s", c.Slot(key), replica.Addr); len(moved) != 1 || moved[0] != want {
		t.Fatalf("MOVED replies seen: %q, want [%s]", moved, want)
	}
	if got := replica.Do("LRANGE", key, 0, -1); fmt.Sprint(got) != "[e2 e1]" {
		t.Fatalf("LRANGE on the new owner = %v", got)
	}
	owner = replica

	// 3. No resend of a command whose reply is lost.
	const once = "{sent-once}"
	node := c.MasterOf(once)
	short := newTestClient(t, map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": seed.Addr}, lostReplyTimeout)
	checkSentOnce(t, short, node.Client(), once)
	// go-redis's cluster defaults resend it.
	old := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{seed.Addr}, ReadTimeout: lostReplyTimeout})
	defer old.Close()
	if err := old.LLen(ctx, once).Err(); err != nil { // a connection open before the sleep
		t.Fatal(err)
	}
	_ = duringSleep(t, node.Client(), func() error { return old.LPush(ctx, once+":old", "x").Err() })
	if n := eventuallyLen(node.Client(), once+":old", 2); n < 2 {
		t.Fatalf("go-redis's cluster defaults gave %d entries: the test does not see a resend", n)
	} else {
		t.Logf("go-redis's cluster defaults ran that LPUSH %d times", n)
	}

	// 4. SIGKILL the owner: the client gets through to the promoted replica,
	// and every push that failed meanwhile did not run.
	before := owner.Do("LLEN", key).(int64)
	replica = c.ReplicaOf(owner)[0]
	owner.WaitReplicas(time.Minute, replica) // every write so far is on the replica (a WAIT on a fresh connection counts none of them)
	owner.Stop()
	pushUntilOK(t, rdb, key, "killed master")
	if got := replica.Do("LLEN", key); got != before+1 {
		t.Fatalf("LLEN on the promoted replica = %v, want %d: the writes before the kill plus exactly one", got, before+1)
	}
}

// openQueue opens a queue with the binaries' parsing of env, closed when
// the test ends.
func openQueue(t *testing.T, env map[string]string) *Queue {
	t.Helper()
	var c struct {
		Redis RedisConfig
		Queue Config
	}
	if err := config.ParseFrom(&c, env); err != nil {
		t.Fatal(err)
	}
	q, err := Open(c.Redis, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return q
}

// pushUntilOK LPUSHes once every 100 ms until one succeeds (30 s at most).
// A failed push must be one that did not run: never ErrReplyLost.
func pushUntilOK(t *testing.T, rdb redis.UniversalClient, key, what string) {
	t.Helper()
	start := time.Now()
	var failures []string
	for i := 0; ; i++ {
		err := rdb.LPush(context.Background(), key, "after").Err()
		if err == nil {
			break
		}
		if errors.Is(err, ErrReplyLost) {
			t.Fatalf("push %d after the %s: %v: it may have run", i, what, err)
		}
		failures = append(failures, err.Error())
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no push got through in 30s after the %s: %q", what, failures)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s: a push got through after %s, %d failed before (first: %.90s)", what,
		time.Since(start).Round(time.Millisecond), len(failures), first(failures))
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// The failover client finds the master through the sentinels, sends
// nothing twice, and follows a failover. (Steps, not subtests, as above.)
func TestRedisSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	ctx := context.Background()
	env := map[string]string{
		"REDIS_MODE": "sentinel", "REDIS_ADDR": strings.Join(s.SentinelAddrs(), ","),
		"REDIS_SENTINEL_MASTER": s.MasterName,
	}
	rdb := newTestClient(t, env, 0)
	if err := rdb.LPush(ctx, "events", "e1").Err(); err != nil {
		t.Fatal(err)
	}
	master := s.Master()
	if got := master.Do("LRANGE", "events", 0, -1); fmt.Sprint(got) != "[e1]" {
		t.Fatalf("LRANGE on the master %s = %v", master.Addr, got)
	}
	q := openQueue(t, map[string]string{"REDIS_MODE": "sentinel", "REDIS_ADDR": env["REDIS_ADDR"], "REDIS_SENTINEL_MASTER": s.MasterName})
	if err := q.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	short := newTestClient(t, env, lostReplyTimeout)
	checkSentOnce(t, short, master.Client(), "sent-once")

	master.WaitReplicas(time.Minute, s.Replicas()...) // every write so far is on both replicas
	before := master.Do("LLEN", "events").(int64)
	s.KillMaster()
	pushUntilOK(t, rdb, "events", "killed master")
	promoted, _ := s.WaitFailover(master, 30*time.Second)
	if got := promoted.Do("LLEN", "events"); got != before+1 {
		t.Fatalf("LLEN on the new master %s = %v, want %d: the writes before the kill plus exactly one", promoted.Addr, got, before+1)
	}
	if err := q.Ping(ctx); err != nil {
		t.Fatalf("the queue's client after the failover: %v", err)
	}
}

// TLS and ACL users in every mode, with the credentials in a rediss:// URL
// or in the variables, and nothing secret in what the config prints.
func TestRedisTLSAndACL(t *testing.T) {
	ctx := context.Background()
	// The application user can use the queue's keys only.
	appUser := []string{"~events", "~{events}*", "+@all"}
	opts := []redistest.Option{redistest.WithTLS(), redistest.WithPassword("admin-pw"), redistest.WithUser("app", "app-pw", appUser...)}

	check := func(t *testing.T, env map[string]string, owner func() *redistest.Server, key string) {
		t.Helper()
		rc, err := parseRedisEnv(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{rc.String(), fmt.Sprintf("%+v", rc)} {
			if strings.Contains(s, "app-pw") || strings.Contains(s, "sentinel-pw") {
				t.Errorf("config prints a password: %s", s)
			}
		}
		rdb := newTestClient(t, env, 0)
		if err := rdb.LPush(ctx, key, "e1").Err(); err != nil {
			t.Fatal(err)
		}
		if got := owner().Do("LRANGE", key, 0, -1); fmt.Sprint(got) != "[e1]" {
			t.Fatalf("LRANGE = %v", got)
		}
		if err := rdb.Set(ctx, "not-the-queue", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("SET outside the user's keys: %v, want NOPERM (the client is not the default user)", err)
		}
		env["REDIS_PASSWORD"] = "wrong-pw"
		bad := newTestClient(t, env, 0)
		if err := bad.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "wrong-pw") {
			t.Fatalf("PING with a wrong password: %v, want WRONGPASS without the password", err)
		}
	}

	t.Run("standalone", func(t *testing.T) {
		srv := redistest.Start(t, opts...)
		check(t, map[string]string{"REDIS_ADDR": "rediss://app:app-pw@" + srv.Addr, "REDIS_TLS_CA_FILE": srv.PKI.CAFile},
			func() *redistest.Server { return srv }, "events")
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, opts...)
		check(t, map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": "rediss://app:app-pw@" + c.Nodes[0].Addr + "?addr=" + c.Nodes[1].Addr,
			"REDIS_TLS_CA_FILE": c.PKI.CAFile}, func() *redistest.Server { return c.MasterOf("events") }, "events")
	})
	t.Run("sentinel", func(t *testing.T) {
		s := redistest.StartSentinel(t, append(opts, redistest.WithSentinelPassword("sentinel-admin-pw"),
			redistest.WithSentinelUser("app-sentinel", "sentinel-pw"))...)
		env := map[string]string{
			"REDIS_MODE": "sentinel", "REDIS_ADDR": strings.Join(s.SentinelAddrs(), ","), "REDIS_SENTINEL_MASTER": s.MasterName,
			"REDIS_SENTINEL_USERNAME": "app-sentinel", "REDIS_SENTINEL_PASSWORD": "sentinel-pw",
			"REDIS_USERNAME": "app", "REDIS_PASSWORD": "app-pw", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": s.PKI.CAFile,
		}
		check(t, env, s.Master, "events")
	})
}
