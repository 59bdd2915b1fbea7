package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The queue on a Redis Cluster (3 masters + 3 replicas) and on a Sentinel
// set (master + 2 replicas + 3 sentinels), through the client the binaries
// build (REDIS_MODE, REDIS_ADDR parsed from the environment): every
// transition, then what a topology adds — a blocked claim through a
// failover, a lost BRPOPLPUSH reply, durable publishing, a slot migration.

// topology opens queues on one running topology.
type topology struct {
	// env is the REDIS_* part of a queue's environment.
	env func(name string) map[string]string
	// master is the master that holds name's keys now.
	master func(name string) *redistest.Server
	// flush empties every master (the cases run one after the other, each
	// on clean data, so a snapshot's KEYS * sees only its queue).
	flush func()
	// auth is the credentials part of the environment: the documented
	// least-privilege users (see applyDocumentedACLs).
	auth map[string]string
}

// topologyQueue is one queue opened as the binaries open it, plus a view of
// the same queue on a plain client of its master (for snapshots: KEYS and
// the raw keys, never through the cluster client's routing).
type topologyQueue struct {
	*Queue
	view *Queue
	rec  *errRecorder
}

// open opens queue name (lease 1s, MAX_ATTEMPTS 3) with extra variables.
func (tp topology) open(t *testing.T, name string, extra ...string) topologyQueue {
	t.Helper()
	env := tp.env(name)
	for k, v := range tp.auth {
		env[k] = v
	}
	env["QUEUE"] = name
	env["LEASE_DURATION"] = "1s"
	env["MAX_ATTEMPTS"] = "3"
	env["RETRY_BASE"], env["RETRY_JITTER"] = "50ms", "0" // a nack waits 50ms, then 200ms, in the scheduled set
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	rec := &errRecorder{}
	q := openQueueWith(t, env, func(rdb redis.UniversalClient) {
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			c.OnNewNode(func(n *redis.Client) { n.AddHook(rec) })
		case *redis.Client:
			c.AddHook(rec)
		}
	})
	return topologyQueue{Queue: q, view: tp.viewOf(t, q), rec: rec}
}

// viewOf is q on a plain client of the master that holds its keys now.
func (tp topology) viewOf(t *testing.T, q *Queue) *Queue {
	t.Helper()
	v, err := New(tp.master(q.cfg.Name).Client(), q.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openQueueWith is openQueue with a hook on the client before its first
// command.
func openQueueWith(t *testing.T, env map[string]string, hook func(redis.UniversalClient)) *Queue {
	t.Helper()
	var c struct {
		Redis RedisConfig
		Queue Config
	}
	if err := config.ParseFrom(&c, env); err != nil {
		t.Fatal(err)
	}
	rdb, err := c.Redis.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	hook(rdb)
	q, err := New(rdb, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return q
}

func clusterTopology(c *redistest.Cluster, auth map[string]string) topology {
	return topology{
		auth: auth,
		// One seed only, and never the master of the queue's slot: the
		// client must find it through MOVED and the slot map.
		env: func(name string) map[string]string {
			owner := c.MasterOf(name)
			for _, m := range c.Masters() {
				if m != owner {
					return map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": m.Addr}
				}
			}
			panic("no other master")
		},
		master: c.MasterOf,
		flush: func() {
			for _, m := range c.Masters() {
				m.Do("FLUSHALL")
			}
		},
	}
}

func sentinelTopology(s *redistest.Sentinel, auth map[string]string) topology {
	return topology{
		auth: auth,
		env: func(string) map[string]string {
			return map[string]string{
				"REDIS_MODE": "sentinel", "REDIS_ADDR": strings.Join(s.SentinelAddrs(), ","),
				"REDIS_SENTINEL_MASTER": s.MasterName,
			}
		},
		master: func(string) *redistest.Server { return s.Master() },
		flush:  func() { s.Master().Do("FLUSHALL") },
	}
}

// errRecorder records, per command, the error replies and lost replies its
// client's nodes got ("brpoplpush: UNBLOCKED", "lpush: MOVED 1234 host:port",
// "brpoplpush: reply lost").
type errRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *errRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *errRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (r *errRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		var what string
		var rerr redis.Error
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			return err
		case errors.As(err, &rerr):
			what = rerr.Error()
		case replyLost(err):
			what = "reply lost"
		default:
			what = "other: " + err.Error()
		}
		r.mu.Lock()
		r.seen = append(r.seen, cmd.Name()+": "+what)
		r.mu.Unlock()
		return err
	}
}

// take returns what was recorded and forgets it.
func (r *errRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// matching returns the recorded entries that start with prefix.
func matching(seen []string, prefix string) []string {
	var out []string
	for _, s := range seen {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// topologyCases are the queue's transitions, each on a fresh queue of a
// clean topology. q is the queue as the binaries open it, q.view the same
// keys read back from the master.
func topologyCases() []struct {
	name string
	run  func(t *testing.T, q topologyQueue)
} {
	ctx := context.Background()
	return []struct {
		name string
		run  func(t *testing.T, q topologyQueue)
	}{
		{"claim leases with a delivery header", func(t *testing.T, q topologyQueue) {
			const raw = `{"wait": 17, "colour": "blue"}`
			if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q.Queue)
			if d.Event.Wait != 17*time.Second || d.Attempt != 1 || !d.IDAssigned || string(d.Payload()) != raw {
				t.Fatalf("delivery %+v payload %s", d, d.Payload())
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 1, 0} || len(s.leases) != 1 || len(s.claimed) != 1 {
				t.Fatalf("state %+v", s)
			}
			c := s.claims[d.Token]
			var h deliveryHeader
			if len(c) != 2 || c[1] != raw || json.Unmarshal([]byte(c[0]), &h) != nil {
				t.Fatalf("claim list %q, want [header, raw entry]", c)
			}
			if h.Token != d.Token || h.ID != d.Event.ID || h.Attempt != 1 || h.Size != len(raw) {
				t.Errorf("header %+v", h)
			}
			st, err := q.Stats(ctx)
			if err != nil || st.Pending != 0 || st.Processing != 1 || st.Claiming != 0 || st.Dead != 0 {
				t.Errorf("Stats = %+v, %v; want 1 in flight", st, err)
			}
		}},
		{"ack, then ack again", func(t *testing.T, q topologyQueue) {
			if _, err := q.Publish(ctx, Event{ID: "a1", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q.Queue)
			if err := q.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
			if err := q.Ack(ctx, d); err != nil { // as a lost reply's retry: done already, by this claim
				t.Fatalf("second ack: %v, want nil", err)
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 0} || len(s.leases)+len(s.claimed) != 0 || fmt.Sprint(s.counters) != "map[acked:1]" {
				t.Fatalf("state %+v", s)
			}
		}},
		{"heartbeat keeps a lease past its duration", func(t *testing.T, q topologyQueue) {
			if _, err := q.Publish(ctx, Event{ID: "h1", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q.Queue)
			for range 3 {
				time.Sleep(500 * time.Millisecond)
				if err := q.Heartbeat(ctx, d); err != nil {
					t.Fatal(err)
				}
				if r, err := q.Reap(ctx); err != nil || moved(r) != (ReapResult{}) {
					t.Fatalf("reap of a live lease = %+v, %v", r, err)
				}
			}
			if s := snapshot(t, q.view); s.counts() != [3]int{0, 1, 0} {
				t.Fatalf("after 1.5s of a 1s lease with heartbeats: %v, want it in flight", s.counts())
			}
		}},
		{"nack requeues, then dead-letters on MAX_ATTEMPTS", func(t *testing.T, q topologyQueue) {
			pub, err := q.Publish(ctx, Event{ID: "n1", Wait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for attempt := 1; attempt <= 3; attempt++ {
				d := claim(t, q.Queue)
				if d.Attempt != attempt || d.Event.ID != "n1" {
					t.Fatalf("claim %d: %s attempt %d", attempt, d.Event.ID, d.Attempt)
				}
				if dead, err := q.Nack(ctx, d, "handler exploded"); err != nil || dead != (attempt == 3) {
					t.Fatalf("nack %d: dead=%v, %v", attempt, dead, err)
				}
				if attempt < 3 { // scheduled for its retry; the mover brings it back once due
					if z := q.view.rdb.ZCard(ctx, q.view.scheduled).Val(); z != 1 {
						t.Fatalf("nack %d: %d scheduled, want the event", attempt, z)
					}
					for moved := 0; moved == 0; time.Sleep(10 * time.Millisecond) {
						res, err := q.MoveDue(ctx)
						if err != nil {
							t.Fatal(err)
						}
						moved = res.Moved
					}
				}
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 1} || fmt.Sprint(s.counters) != "map[dead:1 retried:2 scheduled_moved:2]" {
				t.Fatalf("state %+v", s)
			}
			dls, err := q.DeadLetters(ctx, 1)
			if err != nil || dls[0].ID != "n1" || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "handler exploded") ||
				!bytes.Equal(dls[0].Payload, pub[0].Marshal()) {
				t.Fatalf("dead letter %+v, %v", dls, err)
			}
		}},
		{"release goes to the front and is not an attempt", func(t *testing.T, q topologyQueue) {
			if _, err := q.Publish(ctx, Event{ID: "r1", Wait: time.Second}, Event{ID: "r2", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q.Queue)
			if err := q.Release(ctx, d); err != nil {
				t.Fatal(err)
			}
			if again := claim(t, q.Queue); again.Event.ID != "r1" || again.Attempt != 1 {
				t.Fatalf("after release claimed %s attempt %d, want r1 attempt 1", again.Event.ID, again.Attempt)
			}
			if s := snapshot(t, q.view); s.counts() != [3]int{1, 1, 0} || s.counters["released"] != "1" {
				t.Fatalf("state %+v", s)
			}
		}},
		{"reap expired leases: requeued, then dead on MAX_ATTEMPTS", func(t *testing.T, q topologyQueue) {
			if _, err := q.Publish(ctx, Event{ID: "crashy", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			for attempt := 1; attempt <= 3; attempt++ {
				d := claim(t, q.Queue) // the consumer "dies": no heartbeat, no ack
				if d.Attempt != attempt {
					t.Fatalf("attempt %d, want %d", d.Attempt, attempt)
				}
				time.Sleep(1100 * time.Millisecond)
				want := ReapResult{Requeued: 1}
				if attempt == 3 {
					want = ReapResult{Dead: 1}
				}
				if r, err := q.Reap(ctx); err != nil || moved(r) != want {
					t.Fatalf("attempt %d: reap %+v, %v; want %+v", attempt, r, err, want)
				}
				if err := q.Heartbeat(ctx, d); !errors.Is(err, ErrLeaseLost) {
					t.Fatalf("heartbeat after the reap: %v, want ErrLeaseLost", err)
				}
				if err := q.Ack(ctx, d); !errors.Is(err, ErrLeaseLost) {
					t.Fatalf("ack after the reap: %v, want ErrLeaseLost", err)
				}
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 1} || fmt.Sprint(s.counters) != "map[dead:1 reaped_dead:1 reaped_requeued:2]" {
				t.Fatalf("state %+v", s)
			}
			if dls, _ := q.DeadLetters(ctx, 1); !strings.Contains(dls[0].Reason, "lease expired on attempt 3 of 3") {
				t.Errorf("dead letter %+v", dls[0])
			}
		}},
		// The reaper builds claim-list names inside Lua from the tokens it
		// finds ({q}:claim:<token>, not in KEYS): they hash to the queue's
		// slot, so the node that runs the script holds them.
		{"reap never-leased claims: rescued, then dead; stale registrations forgotten", func(t *testing.T, q topologyQueue) {
			const raw = `{"wait":15}`
			if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
				t.Fatal(err)
			}
			for delivery := 1; delivery <= 3; delivery++ {
				orphan(t, q.Queue, 0) // claimed, then killed before the lease
				want := ReapResult{Rescued: 1}
				if delivery == 3 {
					want = ReapResult{Dead: 1}
				}
				if r, err := q.Reap(ctx); err != nil || moved(r) != want {
					t.Fatalf("delivery %d: reap %+v, %v; want %+v", delivery, r, err, want)
				}
				if s := snapshot(t, q.view); delivery < 3 {
					if p, h := payloadOf(t, s.pending[0]); p != raw || h.Attempts != delivery {
						t.Fatalf("rescued entry %q: attempts %d", s.pending[0], h.Attempts)
					}
				}
			}
			// A claimer that died waiting: registered, nothing moved.
			if err := registerScript.Run(ctx, q.rdb, []string{q.leases}, "dead-waiter", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if r, err := q.Reap(ctx); err != nil || moved(r) != (ReapResult{Stale: 1}) {
				t.Fatalf("reap of a stale registration: %+v, %v", r, err)
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 1} || len(s.leases) != 0 ||
				fmt.Sprint(s.counters) != "map[dead:1 reaped_dead:1 reaped_rescued:2 reaped_stale:1]" {
				t.Fatalf("state %+v", s)
			}
			if dls, _ := q.DeadLetters(ctx, 1); string(dls[0].Payload) != raw || !strings.Contains(dls[0].Reason, "never leased on delivery 3 of 3") {
				t.Errorf("dead letter %+v", dls[0])
			}
		}},
		{"invalid and oversize entries are dead-lettered at their first claim", func(t *testing.T, q topologyQueue) {
			big := bytes.Repeat([]byte("é<&>"), 300_000) // 2.1 MB of UTF-8, above MAX_PAYLOAD_BYTES
			if err := q.view.rdb.LPush(ctx, q.pending, `{"wait": "soon"}`, big).Err(); err != nil {
				t.Fatal(err)
			}
			var inv *InvalidEventError
			if _, err := q.Claim(ctx, time.Second); !errors.As(err, &inv) || !strings.Contains(inv.Reason, "not a number") {
				t.Fatalf("first claim: %v", err)
			}
			if _, err := q.Claim(ctx, time.Second); !errors.As(err, &inv) || !strings.HasPrefix(inv.Reason, fmt.Sprintf("payload too large: %d bytes", len(big))) {
				t.Fatalf("second claim: %v", err)
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 2} || len(s.leases) != 0 {
				t.Fatalf("state %v", s.counts())
			}
			dls, err := q.DeadLetters(ctx, 2)
			if err != nil || !bytes.Equal(dls[0].Payload, big) || string(dls[1].Payload) != `{"wait": "soon"}` {
				t.Fatalf("dead letters: %d bytes, %q, %v", len(dls[0].Payload), dls[1].Payload, err)
			}
		}},
		{"an interrupted claim puts the entry back", func(t *testing.T, q topologyQueue) {
			const raw = `{"id":"late","wait":5}`
			for try := 0; ; try++ {
				cctx, cancel := context.WithCancel(ctx)
				errc, done := make(chan error, 1), make(chan struct{})
				go func() {
					defer close(done)
					_, err := q.ClaimWith(cctx, ClaimOptions{Timeout: 30 * time.Second})
					errc <- err
				}()
				t.Cleanup(func() { cancel(); <-done })
				waitUntil(t, func() bool { s, _ := q.Stats(ctx); return s.Claiming == 1 })
				time.Sleep(50 * time.Millisecond)
				cancel() // SIGTERM, and the event arrives while BRPOPLPUSH still blocks
				if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
					t.Fatal(err)
				}
				var ci *ClaimInterruptedError
				if err := <-errc; !errors.As(err, &ci) || ci.Err != nil {
					t.Fatalf("err = %v, want ClaimInterruptedError", err)
				}
				if ci.Released < 0 && try < 3 { // the wait slice ended first: nothing moved
					if err := q.Ack(ctx, claim(t, q.Queue)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if ci.Released != len(raw) {
					t.Fatalf("released %d bytes, want %d", ci.Released, len(raw))
				}
				break
			}
			s := snapshot(t, q.view)
			s.clean(t)
			if s.counts() != [3]int{1, 0, 0} || s.pending[0] != raw || len(s.leases) != 0 {
				t.Fatalf("state %v pending %q registrations %d", s.counts(), s.pending, len(s.leases))
			}
		}},
		{"Work heartbeats past the lease and acks", func(t *testing.T, q topologyQueue) {
			if _, err := q.Publish(ctx, Event{ID: "w1", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q.Queue)
			out, err := q.Work(ctx, d, func(ctx context.Context, ev Event) error {
				time.Sleep(1500 * time.Millisecond) // past the 1s lease
				r, err := q.Reap(ctx)
				if err != nil || moved(r) != (ReapResult{}) {
					return fmt.Errorf("reap during work: %+v, %v", r, err)
				}
				return nil
			}, WorkOptions{HeartbeatEvery: 200 * time.Millisecond})
			if out != Acked || err != nil {
				t.Fatalf("Work = %s, %v", out, err)
			}
			if s := snapshot(t, q.view); s.counts() != [3]int{0, 0, 0} || s.counters["acked"] != "1" {
				t.Fatalf("state %+v", s)
			}
		}},
	}
}

// Passwords of the topology tests' users: the default user (the helpers,
// the test's own checks) and the documented least-privilege users the
// queues run as.
const (
	adminPassword    = "admin-pw"
	appPassword      = "app-pw"
	kedaPassword     = "keda-pw"
	sentinelPassword = "sentinel-pw"
)

func appAuth() map[string]string {
	return map[string]string{"REDIS_USERNAME": "redis-keda", "REDIS_PASSWORD": appPassword}
}

// applyDocumentedACLs creates the users k8s/README.md documents — the base
// users of "Redis ACLs" (ACL SETUSER lines), plus the lines of "Redis
// Cluster and Sentinel" run on every data node (redis-cli -h NODE ...),
// and on the sentinels their own user (redis-cli -h SENTINEL ...) — and
// makes the nodes keep them across a restart (CONFIG REWRITE). The app
// user's key patterns name the queue "events"; the tests' other queues are
// tagged names ({q0}:q, {durable}:q, ...), added as ~{*}*.
func applyDocumentedACLs(t *testing.T, nodes []*redistest.Server, sentinels []*redistest.Server) {
	t.Helper()
	pw := map[string]string{"APP_PASSWORD": appPassword, "KEDA_PASSWORD": kedaPassword, "SENTINEL_PASSWORD": sentinelPassword}
	base := aclCommands(t, pw)
	if base["redis-keda"] == nil || base["keda"] == nil {
		t.Fatalf("k8s/README.md does not document the users redis-keda and keda: %v", base)
	}
	extra := map[string][][]any{}
	b, err := os.ReadFile("../k8s/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, where := range []string{"NODE", "SENTINEL"} {
			if rest, ok := strings.CutPrefix(line, "redis-cli -h "+where+" "); ok {
				var args []any
				for _, f := range strings.Fields(rest) {
					for ph, p := range pw {
						f = strings.ReplaceAll(f, ph, p)
					}
					args = append(args, f)
				}
				extra[where] = append(extra[where], args)
			}
		}
	}
	if len(extra["NODE"]) != 2 || len(extra["SENTINEL"]) != 1 {
		t.Fatalf("k8s/README.md: %d cluster node lines and %d sentinel lines, want 2 and 1", len(extra["NODE"]), len(extra["SENTINEL"]))
	}
	for _, n := range nodes {
		for _, args := range []string{"redis-keda", "keda"} {
			n.Do(base[args]...)
		}
		for _, args := range extra["NODE"] {
			n.Do(args...)
		}
		n.Do("ACL", "SETUSER", "redis-keda", "~{*}*")
		n.Do("CONFIG", "REWRITE")
	}
	for _, s := range sentinels {
		for _, args := range extra["SENTINEL"] {
			s.Do(args...)
		}
	}
}

// kedaUserCounts runs KEDA's list-length script (pkg/scalers/redis_scaler.go)
// as the documented keda user, through the client KEDA's redis-cluster or
// redis-sentinel trigger builds, and checks that the user cannot write.
func kedaUserCounts(t *testing.T, keda redis.UniversalClient) {
	t.Helper()
	defer keda.Close()
	ctx := context.Background()
	if err := keda.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING as the keda user (KEDA pings when it connects): %v", err)
	}
	const script = `local listName = KEYS[1]
local listType = redis.call('type', listName).ok
if listType == 'zset' then return redis.call('zcard', listName)
elseif listType == 'set' then return redis.call('scard', listName)
elseif listType == 'hash' then return redis.call('hlen', listName)
elseif listType == 'list' or listType == 'none' then return redis.call('llen', listName)
else return redis.error_reply('ERR unsupported key type: ' .. listType) end`
	n, err := keda.Eval(ctx, script, []string{"events"}).Int64()
	if err != nil || n != 0 {
		t.Fatalf("KEDA's script as the keda user: %d, %v; want 0", n, err)
	}
	if err := keda.LPush(ctx, "events", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("LPUSH as the keda user: %v, want NOPERM", err)
	}
	t.Logf("keda user: PING and KEDA's list-length script work (LLEN events = %d), LPUSH is refused", n)
}

// noDeniedCommands: no node or sentinel logged a command the documented
// users were refused (ACL LOG), whatever the failovers made of them — but
// the keda user's deliberate LPUSH (kedaUserCounts).
func noDeniedCommands(t *testing.T, servers []*redistest.Server) {
	t.Helper()
	for _, s := range servers {
		if !s.Running() {
			continue
		}
		log, _ := s.Do("ACL", "LOG").([]any)
		for _, e := range log {
			f := map[string]string{}
			if kv, ok := e.([]any); ok {
				for i := 0; i+1 < len(kv); i += 2 {
					f[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
				}
			}
			if f["username"] == "keda" && f["object"] == "lpush" {
				continue
			}
			t.Errorf("%s: ACL LOG: %v: a documented user lacks a permission", s.Addr, f)
		}
	}
}

// runCases runs every transition on tp, each on a fresh queue named
// {q<n>} (the names spread over a cluster's masters).
func runCases(t *testing.T, tp topology) {
	for i, tc := range topologyCases() {
		t.Run(tc.name, func(t *testing.T) {
			tp.flush()
			tc.run(t, tp.open(t, fmt.Sprintf("{q%d}:q", i)))
		})
	}
}

// claimResult is what an asynchronous ClaimWith returned.
type claimResult struct {
	d   *Delivery
	err error
}

// claimAsync starts ClaimWith as the jobs binary calls it (a 1s wait slice,
// retries for retry) and returns where its result will arrive. When the
// test ends first, the claim is interrupted and waited for.
func claimAsync(t *testing.T, q *Queue, timeout, retry time.Duration) <-chan claimResult {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan claimResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err := q.ClaimWith(ctx, ClaimOptions{Timeout: timeout, RetryTimeout: retry})
		ch <- claimResult{d, err}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// receive waits for a claim's result.
func receive(t *testing.T, ch <-chan claimResult, within time.Duration) *Delivery {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("claim: %v", r.err)
		}
		return r.d
	case <-time.After(within):
		t.Fatalf("claim did not return within %s", within)
		return nil
	}
}

// blockedClaimer waits until a client of srv is blocked in BRPOPLPUSH and
// returns its client id.
func blockedClaimer(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	var id string
	waitUntil(t, func() bool {
		list, _ := srv.Do("CLIENT", "LIST").(string)
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " cmd=brpoplpush ") && strings.Contains(line, " flags=b ") {
				id = strings.TrimPrefix(strings.Fields(line)[0], "id=")
				return true
			}
		}
		return false
	})
	return id
}

// lostClaimReply: the master moves an entry into a blocked claimer's claim
// list and its connection is reset before the reply leaves (an LPUSH that
// serves the BRPOPLPUSH and a CLIENT KILL of the claimer in one write, so
// Redis queues the reply and drops it with the connection). The claim sees
// a lost reply, checks its claim list with the same token, finds the entry
// and leases it: nothing orphaned, nothing claimed twice.
func lostClaimReply(t *testing.T, tp topology, name string) {
	t.Helper()
	ctx := context.Background()
	tp.flush()
	q := tp.open(t, name)
	const raw = `{"id":"cut","wait":1}`
	for try := 1; ; try++ {
		ch := claimAsync(t, q.Queue, 10*time.Second, 10*time.Second)
		master := tp.master(name)
		id := blockedClaimer(t, master)
		admin := master.Client()
		cmds, _ := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.LPush(ctx, name, raw)
			p.Do(ctx, "CLIENT", "KILL", "ID", id)
			return nil
		})
		for _, c := range cmds {
			if c.Err() != nil {
				t.Fatalf("%v: %v", c.Args(), c.Err())
			}
		}
		d := receive(t, ch, 15*time.Second)
		seen := q.rec.take()
		if len(matching(seen, "brpoplpush: reply lost")) == 0 && try < 3 {
			t.Logf("try %d: the reply left before the kill (%q); again", try, seen)
			if err := q.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if d.Event.ID != "cut" || d.Attempt != 1 {
			t.Fatalf("claimed %s attempt %d, want cut attempt 1", d.Event.ID, d.Attempt)
		}
		s := snapshot(t, q.view)
		s.clean(t)
		if s.counts() != [3]int{0, 1, 0} || len(s.leases) != 1 || len(s.claims) != 1 {
			t.Fatalf("state %v, %d registrations, %d claim lists; want the entry in flight exactly once", s.counts(), len(s.leases), len(s.claims))
		}
		t.Logf("lost BRPOPLPUSH reply (%s, %d tries): recovered from claim list %s", strings.Join(matching(seen, "brpoplpush"), "; "), try, d.Token)
		return
	}
}

// notReplicated asserts err is a NotReplicatedError counting want replicas.
func notReplicated(t *testing.T, err error, replicas, want int) {
	t.Helper()
	var nr *NotReplicatedError
	if !errors.Is(err, ErrNotReplicated) || !errors.As(err, &nr) || nr.Replicas != replicas || nr.Want != want {
		t.Fatalf("publish: %v; want ErrNotReplicated with %d of %d replicas", err, replicas, want)
	}
}

// isolate cuts replicas off their master: each is paused (SIGSTOP), then
// the master closes their replication links, so nothing written from now
// on reaches them — not even into a socket buffer a resumed replica would
// still read. The master keeps serving clients, as one does whose replicas
// are lagging or partitioned away. Resume them after killing the master.
func isolate(t *testing.T, master *redistest.Server, replicas ...*redistest.Server) {
	t.Helper()
	for _, r := range replicas {
		r.Pause()
	}
	master.Do("CLIENT", "KILL", "TYPE", "replica")
	waitUntil(t, func() bool { return master.Info("connected_slaves") == "0" })
}

// replicatedTimeout is REDIS_MIN_REPLICAS_TIMEOUT of a publish that must
// succeed: it only bounds the wait for replicas that are there and in sync.
const replicatedTimeout = "10s"

// rejoinBound bounds the wait for a restarted or resumed node to be an
// in-sync replica again (a full resync; measured times are logged).
const rejoinBound = time.Minute

func addrsOf(ns []*redistest.Server) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Addr
	}
	return out
}

func llen(t *testing.T, srv *redistest.Server, key string) int64 {
	t.Helper()
	n, ok := srv.Do("LLEN", key).(int64)
	if !ok {
		t.Fatalf("LLEN %s on %s: not an integer", key, srv.Addr)
	}
	return n
}

func TestQueueOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.WithPassword(adminPassword))
	t.Logf("cluster created in %s", c.Created.Round(time.Millisecond))
	applyDocumentedACLs(t, c.Nodes, nil)
	tp := clusterTopology(c, appAuth())
	runCases(t, tp)
	if t.Failed() {
		return
	}
	// Steps on the same cluster, in order (not subtests: the cluster helpers
	// fail the test that started the cluster).
	kedaUserCounts(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Username: "keda", Password: kedaPassword, MaxRetries: -1}))
	standaloneOnClusterNode(t, c, tp)
	lostClaimReply(t, tp, "{cut}:q")
	clusterDurablePublish(t, c, tp)
	reapDuringMigration(t, c, tp, "{moving-a}:q", false)
	reapDuringMigration(t, c, tp, "{moving-b}:q", true)
	clusterClaimThroughFailovers(t, c, tp)
	noDeniedCommands(t, c.Nodes)
}

func TestQueueOnSentinel(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.WithPassword(adminPassword), redistest.WithSentinelPassword(adminPassword))
	t.Logf("sentinel set ready in %s", s.Started.Round(time.Millisecond))
	applyDocumentedACLs(t, s.Nodes, s.Sentinels)
	auth := appAuth()
	auth["REDIS_SENTINEL_USERNAME"], auth["REDIS_SENTINEL_PASSWORD"] = "redis-keda-sentinel", sentinelPassword
	tp := sentinelTopology(s, auth)
	runCases(t, tp)
	if t.Failed() {
		return
	}
	kedaUserCounts(t, redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(), Username: "keda", Password: kedaPassword,
		SentinelUsername: "redis-keda-sentinel", SentinelPassword: sentinelPassword, MaxRetries: -1,
	}))
	lostClaimReply(t, tp, "events")
	sentinelDurablePublish(t, s, tp)
	sentinelSplitBrain(t, s, tp)
	sentinelClaimThroughFailovers(t, s, tp)
	noDeniedCommands(t, append(slices.Clone(s.Nodes), s.Sentinels...))
}

// standaloneOnClusterNode: REDIS_MODE=standalone (the default) pointed at
// a cluster node that does not own the queue's slot fails at once with a
// configuration error naming REDIS_MODE, instead of retrying MOVED for
// REDIS_RETRY_TIMEOUT.
func standaloneOnClusterNode(t *testing.T, c *redistest.Cluster, tp topology) {
	const name = "{standalone}:q"
	owner := c.MasterOf(name)
	var other *redistest.Server
	for _, m := range c.Masters() {
		if m != owner {
			other = m
		}
	}
	env := map[string]string{"REDIS_ADDR": other.Addr, "QUEUE": name}
	for k, v := range tp.auth {
		env[k] = v
	}
	rec := &errRecorder{}
	q := openQueueWith(t, env, func(rdb redis.UniversalClient) { rdb.(*redis.Client).AddHook(rec) })
	start := time.Now()
	_, err := q.ClaimWith(context.Background(), ClaimOptions{Timeout: time.Second, RetryTimeout: time.Minute})
	want := fmt.Sprintf("MOVED %d %s; REDIS_ADDR is a Redis Cluster node that does not serve this key: set REDIS_MODE=cluster", c.Slot(name), owner.Addr)
	if !errors.Is(err, ErrInvalidConfig) || !IsPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("standalone claim on a non-owning cluster node: %v; want a permanent configuration error containing %q", err, want)
	}
	// Given up at the first answer, not retried (counted, not timed).
	seen := rec.take()
	var redirects []string
	for _, s := range seen {
		if strings.Contains(s, "MOVED") {
			redirects = append(redirects, s)
		}
	}
	if len(redirects) != 1 {
		t.Errorf("the claim got %d MOVED (errors %q); want exactly one: a redirect cannot be fixed by retrying", len(redirects), seen)
	}
	t.Logf("standalone client on a cluster node, gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// clusterDurablePublish: REDIS_MIN_REPLICAS on a cluster whose masters have
// one replica each.
func clusterDurablePublish(t *testing.T, c *redistest.Cluster, tp topology) {
	ctx := context.Background()
	tp.flush()
	const name = "{durable}:q"
	// q1 publishes what must be replicated: its timeout only bounds the
	// wait for a replica that is there (generous: a loaded machine may
	// not run the replica for a while). q1short and q2 are refused, after
	// their whole timeout.
	q1 := tp.open(t, name, "REDIS_MIN_REPLICAS", "1", "REDIS_MIN_REPLICAS_TIMEOUT", replicatedTimeout)
	q1short := tp.open(t, name, "REDIS_MIN_REPLICAS", "1", "REDIS_MIN_REPLICAS_TIMEOUT", "500ms")
	q2 := tp.open(t, name, "REDIS_MIN_REPLICAS", "2", "REDIS_MIN_REPLICAS_TIMEOUT", "300ms")
	q0 := tp.open(t, name)
	owner := c.MasterOf(name)
	replica := c.ReplicaOf(owner)[0]

	if _, err := q1.Publish(ctx, Event{ID: "d1"}, Event{ID: "d2"}, Event{ID: "d3"}); err != nil {
		t.Fatalf("MIN_REPLICAS=1 with one replica: %v", err)
	}
	start := time.Now()
	_, err := q2.Publish(ctx, Event{ID: "d4"})
	notReplicated(t, err, 1, 2) // one replica exists: WAIT 2 times out with 1
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("ErrNotReplicated after %s, before REDIS_MIN_REPLICAS_TIMEOUT", el)
	}
	t.Logf("MIN_REPLICAS=2 on a master with 1 replica: %v", err)
	if n := llen(t, owner, name); n != 4 {
		t.Fatalf("LLEN = %d on the master, want 4 (the unreplicated batch is there)", n)
	}

	// A coordinated failover: the clients' slot maps still name the old
	// master, which answers MOVED; the LPUSH did not run there, so it is
	// sent again to the new master, once.
	took := c.Failover(replica, 30*time.Second)
	q1.rec.take()
	if _, err := q1.Publish(ctx, Event{ID: "d5"}); err != nil {
		t.Fatalf("publish after CLUSTER FAILOVER: %v", err)
	}
	movedTo := fmt.Sprintf("lpush: MOVED %d %s", c.Slot(name), replica.Addr)
	if seen := matching(q1.rec.take(), "lpush"); len(seen) == 0 || len(matching(seen, movedTo)) != len(seen) {
		t.Fatalf("lpush errors %q, want only %q", seen, movedTo)
	}
	if n := llen(t, replica, name); n != 5 {
		t.Fatalf("LLEN = %d on the new master, want 5: the redirected LPUSH ran exactly once", n)
	}
	t.Logf("CLUSTER FAILOVER in %s; the next durable publish followed %s", took.Round(time.Millisecond), movedTo)
	owner, replica = replica, owner

	// The replica is cut off (paused, its link closed), the master keeps
	// acknowledging writes, then dies and the stale replica takes over.
	isolate(t, owner, replica)
	_, err = q1short.Publish(ctx, Event{ID: "refused"})
	notReplicated(t, err, 0, 1)
	if _, err := q0.Publish(ctx, Event{ID: "acked-then-lost"}); err != nil {
		t.Fatalf("MIN_REPLICAS=0 publish: %v", err)
	}
	if n := llen(t, owner, name); n != 7 {
		t.Fatalf("LLEN = %d on the master, want 7", n)
	}
	owner.Stop()
	replica.Resume()
	promoted, took := c.WaitNewMaster(name, owner, 30*time.Second)
	if promoted != replica {
		t.Fatalf("promoted %s, want the replica %s", promoted.Addr, replica.Addr)
	}
	v, err := New(promoted.Client(), q0.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range snapshot(t, v).pending {
		ev, err := parseEvent([]byte(e), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if fmt.Sprint(ids) != "[d5 d4 d3 d2 d1]" {
		t.Fatalf("after the failover pending holds %v, want [d5 d4 d3 d2 d1]", ids)
	}
	t.Logf("master killed while its replica lagged; replica promoted after %s: the MIN_REPLICAS=0 event Publish had reported published is gone, "+
		"the MIN_REPLICAS=1 one had been refused (ErrNotReplicated)", took.Round(time.Millisecond))

	// The new master has no replica until the old one is back: durable
	// publishing waits for it.
	_, err = q1short.Publish(ctx, Event{ID: "no-replica"})
	notReplicated(t, err, 0, 1)
	// The old master rejoins as the new one's replica: the cluster turns
	// it into one, then it makes a full resync. Wait for that itself (link
	// up, offsets caught up), not a fixed time.
	owner.Restart()
	took = c.WaitHealthy(rejoinBound)
	if r := c.ReplicaOf(promoted); len(r) != 1 || r[0] != owner {
		t.Fatalf("replicas of %s after the restart: %v, want the old master %s", promoted.Addr, addrsOf(r), owner.Addr)
	}
	t.Logf("old master %s back as a replica, in sync after %s", owner.Addr, took.Round(time.Millisecond))
	if _, err := q1.Publish(ctx, Event{ID: "d6"}); err != nil {
		t.Fatalf("publish with the old master back as a replica: %v", err)
	}
}

// clusterClaimThroughFailovers: a claim blocked in BRPOPLPUSH keeps its
// token through CLUSTER FAILOVER (UNBLOCKED, then MOVED) and through a
// SIGKILL of the master (a lost reply, then dial errors and CLUSTERDOWN
// until the replica takes over), and gets the next event.
func clusterClaimThroughFailovers(t *testing.T, c *redistest.Cluster, tp topology) {
	ctx := context.Background()
	tp.flush()
	const name = "{blocked}:q"
	q := tp.open(t, name)
	for step, kill := range []bool{false, true} {
		ch := claimAsync(t, q.Queue, 30*time.Second, 30*time.Second)
		owner := c.MasterOf(name)
		blockedClaimer(t, owner)
		replica := c.ReplicaOf(owner)[0]
		// The registration is on the replica. (Not WAIT on a helper's
		// fresh connection: it counts only that connection's own writes.)
		owner.WaitReplicas(rejoinBound, replica)
		q.rec.take()
		start := time.Now()
		var took time.Duration
		if kill {
			owner.Stop()
			_, took = c.WaitNewMaster(name, owner, 30*time.Second)
		} else {
			took = c.Failover(replica, 30*time.Second)
		}
		publishAfterFailover(ctx, t, q.Queue, step, start)
		d := receive(t, ch, 40*time.Second)
		latency := time.Since(start)
		seen := q.rec.take()
		if d.Event.ID != fmt.Sprintf("after-%d", step) || d.Attempt != 1 {
			t.Fatalf("claimed %s attempt %d", d.Event.ID, d.Attempt)
		}
		claimErrs := append(matching(seen, "brpoplpush"), matching(seen, "evalsha")...)
		if kill && len(matching(seen, "brpoplpush: reply lost")) != 1 {
			t.Errorf("SIGKILL: brpoplpush errors %q, want one lost reply", matching(seen, "brpoplpush"))
		}
		if !kill && len(matching(seen, "brpoplpush: UNBLOCKED"))+len(matching(seen, "brpoplpush: MOVED")) == 0 {
			t.Errorf("CLUSTER FAILOVER: the blocked claim saw %q, want UNBLOCKED or MOVED", claimErrs)
		}
		v := tp.viewOf(t, q.Queue)
		s := snapshot(t, v)
		s.clean(t)
		if s.counts() != [3]int{0, 1, 0} || len(s.leases) != 1 {
			t.Fatalf("state %v with %d registrations; want one delivery and its one token", s.counts(), len(s.leases))
		}
		if err := q.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
		what := "CLUSTER FAILOVER"
		if kill {
			what = "master SIGKILLed"
		}
		t.Logf("%s: new master after %s, blocked claim got the next event %s after the failover began (errors seen: %q)",
			what, took.Round(time.Millisecond), latency.Round(time.Millisecond), claimErrs)
		if kill {
			owner.Restart()
			c.WaitHealthy(rejoinBound) // back as a replica, in sync
		}
	}
}

// sentinelDurablePublish: REDIS_MIN_REPLICAS with a master and two
// replicas.
func sentinelDurablePublish(t *testing.T, s *redistest.Sentinel, tp topology) {
	ctx := context.Background()
	tp.flush()
	const name = "events"
	// q2 publishes what must be replicated (a generous timeout, see
	// clusterDurablePublish); q3 and q1 are refused.
	q2 := tp.open(t, name, "REDIS_MIN_REPLICAS", "2", "REDIS_MIN_REPLICAS_TIMEOUT", replicatedTimeout)
	q3 := tp.open(t, name, "REDIS_MIN_REPLICAS", "3", "REDIS_MIN_REPLICAS_TIMEOUT", "300ms")
	q1 := tp.open(t, name, "REDIS_MIN_REPLICAS", "1", "REDIS_MIN_REPLICAS_TIMEOUT", "500ms")
	q0 := tp.open(t, name)
	if _, err := q2.Publish(ctx, Event{ID: "d1"}, Event{ID: "d2"}); err != nil {
		t.Fatalf("MIN_REPLICAS=2 with two replicas: %v", err)
	}
	_, err := q3.Publish(ctx, Event{ID: "d3"})
	notReplicated(t, err, 2, 3)
	t.Logf("MIN_REPLICAS=3 with 2 replicas: %v", err)

	master := s.Master()
	replicas := s.Replicas()
	isolate(t, master, replicas...)
	_, err = q1.Publish(ctx, Event{ID: "refused"})
	notReplicated(t, err, 0, 1)
	if _, err := q0.Publish(ctx, Event{ID: "acked-then-lost"}); err != nil {
		t.Fatalf("MIN_REPLICAS=0 publish: %v", err)
	}
	if n := llen(t, master, name); n != 5 {
		t.Fatalf("LLEN = %d on the master, want 5", n)
	}
	master.Stop()
	for _, r := range replicas {
		r.Resume()
	}
	promoted, took := s.WaitFailover(master, 30*time.Second)
	v, err := New(promoted.Client(), q0.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range snapshot(t, v).pending {
		ev, err := parseEvent([]byte(e), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if fmt.Sprint(ids) != "[d3 d2 d1]" {
		t.Fatalf("after the failover pending holds %v, want [d3 d2 d1]", ids)
	}
	t.Logf("master killed while both replicas lagged; %s promoted after %s: the MIN_REPLICAS=0 event is gone, the MIN_REPLICAS=1 one had been refused",
		promoted.Addr, took.Round(time.Millisecond))
	// The old master rejoins as a replica (a full resync): wait for both
	// replicas to be in sync, not a fixed time.
	s.RestartAsReplica(master)
	took = s.WaitSettled(rejoinBound)
	t.Logf("old master %s back as a replica, both replicas in sync after %s", master.Addr, took.Round(time.Millisecond))
	if _, err := q2.Publish(ctx, Event{ID: "d4"}); err != nil {
		t.Fatalf("MIN_REPLICAS=2 after the failover: %v", err)
	}
}

// sentinelSplitBrain publishes one event every few milliseconds on each of
// three clients (REDIS_MIN_REPLICAS 0, 1 and 2 = every replica) through a
// SENTINEL FAILOVER, and counts the acknowledged events the new master does
// not have. A forced failover promotes a replica while the old master still
// takes writes (until the sentinels demote it, about a second later), and
// its other replica still acknowledges them: WAIT 1 is satisfied, then both
// follow the new master and drop those writes. Only WAIT for every replica
// refuses them — the promoted one stopped acknowledging when it was
// promoted. (A master partitioned away with one replica does the same.)
func sentinelSplitBrain(t *testing.T, s *redistest.Sentinel, tp topology) {
	ctx := context.Background()
	tp.flush()
	const name = "events"
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
		mu   sync.Mutex
		acks = map[int][]string{}
	)
	for _, min := range []int{0, 1, 2} {
		q := tp.open(t, name, "REDIS_MIN_REPLICAS", fmt.Sprint(min), "REDIS_MIN_REPLICAS_TIMEOUT", "200ms")
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				id := fmt.Sprintf("min%d-%04d", min, i)
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := q.Publish(pctx, Event{ID: id})
				cancel()
				if err == nil {
					mu.Lock()
					acks[min] = append(acks[min], id)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	old := s.Master()
	sentinelFailover(t, s)
	_, took := s.WaitFailover(old, 30*time.Second)
	s.WaitSettled(rejoinBound)
	promoted := s.Master() // the one WaitFailover saw, unless a loaded machine made the sentinels fail over again
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	v, err := New(promoted.Client(), Config{Name: name, LeaseDuration: time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range snapshot(t, v).pending {
		ev, err := parseEvent([]byte(e), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		have[ev.ID] = true
	}
	lost := map[int]int{}
	for min, ids := range acks {
		for _, id := range ids {
			if !have[id] {
				lost[min]++
			}
		}
	}
	t.Logf("SENTINEL FAILOVER (new master after %s) while publishing: acknowledged / lost with MIN_REPLICAS=0: %d / %d, =1: %d / %d, =2 (every replica): %d / %d",
		took.Round(time.Millisecond), len(acks[0]), lost[0], len(acks[1]), lost[1], len(acks[2]), lost[2])
	if lost[2] != 0 {
		t.Errorf("%d events acknowledged with REDIS_MIN_REPLICAS=2 (every replica) lost in a SENTINEL FAILOVER", lost[2])
	}
	if len(acks[2]) == 0 {
		t.Errorf("nothing was acknowledged with REDIS_MIN_REPLICAS=2: the measurement is empty")
	}
}

// sentinelFailover asks a sentinel for a failover, waiting while an earlier
// one is still in progress (INPROG) or the sentinels do not yet trust a
// replica again (NOGOODSLAVE, after replicas were paused or restarted).
func sentinelFailover(t *testing.T, s *redistest.Sentinel) {
	t.Helper()
	sc := redis.NewClient(&redis.Options{Addr: s.Sentinels[0].Addr, Password: s.SentinelPassword, Protocol: 2, MaxRetries: -1})
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := sc.Do(context.Background(), "SENTINEL", "FAILOVER", s.MasterName).Err()
		if err == nil {
			return
		}
		busy := strings.HasPrefix(err.Error(), "INPROG") || strings.HasPrefix(err.Error(), "NOGOODSLAVE")
		if !busy || time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sentinelClaimThroughFailovers: a blocked claim keeps its token through
// SENTINEL FAILOVER (the old master becomes a replica: UNBLOCKED, READONLY)
// and through a SIGKILL of the master (a lost reply, then dial errors until
// the sentinels promote a replica).
func sentinelClaimThroughFailovers(t *testing.T, s *redistest.Sentinel, tp topology) {
	ctx := context.Background()
	tp.flush()
	const name = "events"
	q := tp.open(t, name)
	for step, kill := range []bool{false, true} {
		ch := claimAsync(t, q.Queue, 30*time.Second, 30*time.Second)
		old := s.Master()
		blockedClaimer(t, old)
		old.WaitReplicas(rejoinBound, s.Replicas()...) // the registration is on both replicas
		q.rec.take()
		start := time.Now()
		if kill {
			old.Stop()
		} else {
			sentinelFailover(t, s)
		}
		promoted, took := s.WaitFailover(old, 30*time.Second)
		publishAfterFailover(ctx, t, q.Queue, step, start)
		d := receive(t, ch, 40*time.Second)
		latency := time.Since(start)
		seen := q.rec.take()
		if d.Event.ID != fmt.Sprintf("after-%d", step) || d.Attempt != 1 {
			t.Fatalf("claimed %s attempt %d", d.Event.ID, d.Attempt)
		}
		if kill && len(matching(seen, "brpoplpush: reply lost")) != 1 {
			t.Errorf("SIGKILL: brpoplpush errors %q, want one lost reply", matching(seen, "brpoplpush"))
		}
		v, err := New(promoted.Client(), q.cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := snapshot(t, v)
		st.clean(t)
		if st.counts() != [3]int{0, 1, 0} || len(st.leases) != 1 {
			t.Fatalf("state %v with %d registrations; want one delivery and its one token", st.counts(), len(st.leases))
		}
		if err := q.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
		what := "SENTINEL FAILOVER"
		if kill {
			what = "master SIGKILLed"
		}
		t.Logf("%s: %s promoted after %s, blocked claim got the next event %s after the failover began (errors seen: %q)",
			what, promoted.Addr, took.Round(time.Millisecond), latency.Round(time.Millisecond), seen)
		if kill {
			s.RestartAsReplica(old)
		}
		s.WaitSettled(rejoinBound) // every other node follows the master again, in sync
	}
}

// migrateKeys moves keys of a migrating slot from src to dst (MIGRATE ...
// KEYS), as redis-cli --cluster reshard does in batches.
func migrateKeys(t *testing.T, src, dst *redistest.Server, keys ...string) {
	t.Helper()
	host, port, _ := strings.Cut(dst.Addr, ":")
	args := []any{"MIGRATE", host, port, "", 0, 5000}
	if dst.Password != "" {
		args = append(args, "AUTH", dst.Password)
	}
	args = append(args, "KEYS")
	for _, k := range keys {
		args = append(args, k)
	}
	if v := src.Do(args...); v != "OK" {
		t.Fatalf("MIGRATE %q: %v", keys, v)
	}
}

// reapDuringMigration: the queue's slot is resharded to another master
// while the reaper runs. A migration moves keys in any order; here the
// queue's fixed keys move first and the claim lists after
// (claimListsFirst: all claim lists but the oldest first, then the rest),
// and the reaper runs in between.
// It must never act on half the keys: a script that names every key it
// touches in KEYS gets TRYAGAIN (nothing runs) until the slot is whole
// again, then recovers every orphan.
func reapDuringMigration(t *testing.T, c *redistest.Cluster, tp topology, name string, claimListsFirst bool) {
	ctx := context.Background()
	tp.flush()
	q := tp.open(t, name, "LEASE_DURATION", "1m")
	// Every key of the queue exists: a dead letter, the counters, one
	// delivery in flight, four claimed-but-never-leased entries (due at
	// once: their claimers "died"), one pending.
	if err := q.PublishRaw(ctx, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Claim(ctx, time.Second); !errors.Is(err, ErrInvalidEvent) {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := q.PublishRaw(ctx, fmt.Appendf(nil, `{"id":"m%d","wait":1}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	inFlight := claim(t, q.Queue)
	var claims []string
	for range 4 {
		claims = append(claims, q.claimPrefix+orphan(t, q.Queue, 0))
	}
	src := c.MasterOf(name)
	var dst *redistest.Server
	for _, m := range c.Masters() {
		if m != src {
			dst = m
			break
		}
	}
	slot := c.Slot(name)
	srcID, dstID := src.Do("CLUSTER", "MYID"), dst.Do("CLUSTER", "MYID")
	dst.Do("CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	src.Do("CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	fixed := []string{q.pending, q.leases, q.claimed, q.dead, q.counters, q.finished, q.claimPrefix + inFlight.Token}
	// The first claim list due stays behind: a reaper that reached the
	// others only from inside the script would have pushed its entry
	// before failing on the next one.
	first, second := fixed, claims
	if claimListsFirst {
		first, second = claims[1:], append(fixed, claims[0])
	}
	migrateKeys(t, src, dst, first...)

	q.rec.take()
	res, err := q.Reap(ctx)
	seen := q.rec.take()
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "TRYAGAIN") {
		t.Errorf("reap with the slot half migrated: %+v, %v (errors %q); want a transient TRYAGAIN and nothing done", res, err, seen)
	}
	migrateKeys(t, src, dst, second...)
	for _, m := range c.Masters() {
		m.Do("CLUSTER", "SETSLOT", slot, "NODE", dstID)
	}
	if got := c.MasterOf(name); got != dst {
		t.Fatalf("slot %d is on %s after the migration, want %s", slot, got.Addr, dst.Addr)
	}
	if res, err := reapUntilOK(ctx, q.Queue); err != nil || moved(res) != (ReapResult{Rescued: 4}) {
		t.Fatalf("reap after the migration: %+v, %v; want 4 rescued", res, err)
	}
	v := tp.viewOf(t, q.Queue)
	s := snapshot(t, v)
	s.clean(t)
	if s.counts() != [3]int{5, 1, 1} || len(s.leases) != 1 || len(s.claims) != 1 {
		t.Fatalf("after the migration: %v, %d registrations, %d claim lists; want 5 pending, 1 in flight, 1 dead, nothing else", s.counts(), len(s.leases), len(s.claims))
	}
	if err := q.Ack(ctx, inFlight); err != nil {
		t.Fatalf("ack of the delivery that was in flight during the migration: %v", err)
	}
	t.Logf("slot %d migrated %s -> %s (claim lists first: %v); reap in between: %v (%s); after: 4 rescued, 5 pending, the in-flight one acked",
		slot, src.Addr, dst.Addr, claimListsFirst, err, strings.Join(seen, "; "))
}

// reapUntilOK reaps until the cluster client's slot map has caught up with a
// migration (MOVED is followed; a reap error is retried for 10s).
func reapUntilOK(ctx context.Context, q *Queue) (ReapResult, error) {
	var res ReapResult
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := Retry(cctx, func() error {
		var err error
		res, err = q.Reap(cctx)
		return err
	})
	return res, err
}

// publishAfterFailover publishes the event after-<step> once the new master
// takes writes (at most 30 s after start); a lost reply is a failure, since it
// may have published a duplicate.
func publishAfterFailover(ctx context.Context, t *testing.T, q *Queue, step int, start time.Time) {
	t.Helper()
	raw := fmt.Sprintf(`{"id":"after-%d","wait":1}`, step)
	for {
		err := q.PublishRaw(ctx, []byte(raw))
		if err == nil {
			return
		}
		if errors.Is(err, ErrReplyLost) || time.Since(start) > 30*time.Second {
			t.Fatalf("publish after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
