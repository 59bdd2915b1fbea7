package queue

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// newTestQueue starts a real redis-server and returns a queue on it.
func newTestQueue(t *testing.T, mod ...func(*Config)) (*Queue, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := Config{Name: "events", LeaseDuration: time.Second, MaxAttempts: 3, MaxWait: time.Hour}
	for _, m := range mod {
		m(&cfg)
	}
	q, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q, rdb
}

// state is every key of a queue, read back from Redis.
type state struct {
	pending, processing, dead []string
	leases                    []redis.Z
	attempts, unleased        map[string]string
}

func snapshot(t *testing.T, q *Queue) state {
	t.Helper()
	ctx := context.Background()
	var s state
	var err error
	must := func(e error) {
		if e != nil && !errors.Is(e, redis.Nil) {
			t.Fatal(e)
		}
	}
	s.pending, err = q.rdb.LRange(ctx, q.pending, 0, -1).Result()
	must(err)
	s.processing, err = q.rdb.LRange(ctx, q.processing, 0, -1).Result()
	must(err)
	s.dead, err = q.rdb.LRange(ctx, q.dead, 0, -1).Result()
	must(err)
	s.leases, err = q.rdb.ZRangeWithScores(ctx, q.leases, 0, -1).Result()
	must(err)
	s.attempts, err = q.rdb.HGetAll(ctx, q.attempts).Result()
	must(err)
	s.unleased, err = q.rdb.HGetAll(ctx, q.unleased).Result()
	must(err)
	return s
}

func (s state) counts() [3]int { return [3]int{len(s.pending), len(s.processing), len(s.dead)} }

func claim(t *testing.T, q *Queue) *Delivery {
	t.Helper()
	d, err := q.Claim(context.Background(), time.Second)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return d
}

func field(t *testing.T, payload, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	return string(m[key])
}

func TestKeysShareOneClusterSlot(t *testing.T) {
	srv := redistest.Start(t, redistest.WithClusterMode())
	rdb := srv.Client()
	ctx := context.Background()
	for _, name := range []string{"events", "{events}", "jobs:{tenant-a}:in", "orders:v2"} {
		t.Run(name, func(t *testing.T) {
			want, err := rdb.ClusterKeySlot(ctx, pendingKey(name)).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{processingKey(name), leasesKey(name), attemptsKey(name), deadKey(name), unleasedKey(name)} {
				got, err := rdb.ClusterKeySlot(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("slot(%q)=%d, slot(pending %q)=%d: a Lua script could not touch both on a Cluster", k, got, pendingKey(name), want)
				}
			}
		})
	}
	if got := processingKey("events"); got != "{events}:processing" {
		t.Errorf("processingKey(events) = %q", got)
	}
	if got := processingKey("{events}"); got != "{events}:processing" {
		t.Errorf("processingKey({events}) = %q", got)
	}
}

func TestPublishBatchOldestFirst(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	evs := []Event{{Wait: 1 * time.Second}, {Wait: 2 * time.Second}, {ID: "mine", Wait: 3 * time.Second}}
	published, err := q.Publish(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if published[2].ID != "mine" || published[0].ID == "" || published[0].ID == published[1].ID {
		t.Fatalf("ids: %q %q %q", published[0].ID, published[1].ID, published[2].ID)
	}
	for i, want := range published {
		d := claim(t, q)
		if d.Event.ID != want.ID || d.Event.Wait != want.Wait {
			t.Errorf("claim %d = %+v, want %+v", i, d.Event, want)
		}
		if d.Event.PublishedAt.IsZero() {
			t.Errorf("claim %d: published_at missing", i)
		}
	}
}

func TestClaimEmptyTimesOut(t *testing.T) {
	q, _ := newTestQueue(t)
	start := time.Now()
	_, err := q.Claim(context.Background(), time.Second)
	if !errors.Is(err, ErrNoEvent) {
		t.Fatalf("err = %v, want ErrNoEvent", err)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("returned after %v, want ~1s of blocking", el)
	}
}

func TestClaimLeasesAndCounts(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"wait": 17, "colour": "blue"}`)); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	if d.Event.Wait != 17*time.Second || d.Attempt != 1 || !d.IDAssigned || d.Event.ID == "" {
		t.Fatalf("delivery = %+v", d)
	}
	s := snapshot(t, q)
	if s.counts() != [3]int{0, 1, 0} || len(s.leases) != 1 || s.attempts[d.Event.ID] != "1" {
		t.Fatalf("state = %+v", s)
	}
	entry := s.processing[0]
	if field(t, entry, "claim") == "" || field(t, entry, "colour") != `"blue"` || field(t, entry, "wait") != "17" {
		t.Errorf("in-flight entry %s: want claim token and the original fields", entry)
	}
	if s.leases[0].Member != entry {
		t.Errorf("lease member %v != entry %s", s.leases[0].Member, entry)
	}
	// The lease deadline is about LeaseDuration from now on Redis's clock.
	now, _ := q.redisNow(ctx)
	if dl := time.UnixMilli(int64(s.leases[0].Score)).Sub(now); dl < 500*time.Millisecond || dl > 1100*time.Millisecond {
		t.Errorf("lease deadline in %v, want ~1s", dl)
	}
	if p := string(d.Payload()); field(t, p, "claim") != "" || field(t, p, "id") != `"`+d.Event.ID+`"` {
		t.Errorf("retry payload %s: want the assigned id and no claim token", p)
	}
}

func TestInvalidPayloadsAreDeadLetteredAtOnce(t *testing.T) {
	cases := []struct {
		name, payload, reason string
	}{
		{"not json", `wait=17`, "not a JSON object"},
		{"broken json", `{"wait": 17`, "not valid JSON"},
		{"array", `[17]`, "not a JSON object"},
		{"missing wait", `{"sleep": 17}`, `missing field "wait"`},
		{"string wait", `{"wait": "17"}`, "not a number"},
		{"negative wait", `{"wait": -1}`, "negative"},
		{"null wait", `{"wait": null}`, "not a number"},
		{"over MAX_WAIT", `{"wait": 7200}`, "above MAX_WAIT"},
		{"bad id", `{"wait": 1, "id": {"a": 1}}`, `field "id"`},
		{"empty", ``, "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue(t)
			ctx := context.Background()
			if err := q.PublishRaw(ctx, []byte(tc.payload)); err != nil {
				t.Fatal(err)
			}
			_, err := q.Claim(ctx, time.Second)
			var inv *InvalidEventError
			if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &inv) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
			if !strings.Contains(inv.Reason, tc.reason) || inv.Payload != tc.payload {
				t.Errorf("error %+v, want reason containing %q", inv, tc.reason)
			}
			s := snapshot(t, q)
			if s.counts() != [3]int{0, 0, 1} || len(s.leases) != 0 {
				t.Fatalf("state = %+v, want only one dead letter", s)
			}
			dls, err := q.DeadLetters(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if dls[0].Payload != tc.payload || !strings.Contains(dls[0].Reason, tc.reason) || dls[0].DeadAt.IsZero() {
				t.Errorf("dead letter = %+v", dls[0])
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	// Each case claims one event ({"wait":1}) with MaxAttempts 3, then acts.
	type result struct {
		err                       error
		pending, processing, dead int
		attempts                  string // attempts record after the step ("" = none)
		nextAttempt               int    // attempt number of the next claim (0 = none)
	}
	cases := []struct {
		name string
		step func(t *testing.T, q *Queue, d *Delivery) error
		want result
	}{
		{"ack", func(t *testing.T, q *Queue, d *Delivery) error { return q.Ack(context.Background(), d) },
			result{pending: 0, processing: 0, dead: 0}},
		{"ack twice", func(t *testing.T, q *Queue, d *Delivery) error {
			if err := q.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			return q.Ack(context.Background(), d)
		}, result{err: ErrLeaseLost}},
		{"heartbeat", func(t *testing.T, q *Queue, d *Delivery) error { return q.Heartbeat(context.Background(), d) },
			result{processing: 1, attempts: "1"}},
		{"nack requeues", func(t *testing.T, q *Queue, d *Delivery) error {
			dead, err := q.Nack(context.Background(), d, "boom")
			if dead {
				t.Error("dead on attempt 1 of 3")
			}
			return err
		}, result{pending: 1, attempts: "1", nextAttempt: 2}},
		{"release does not count", func(t *testing.T, q *Queue, d *Delivery) error { return q.Release(context.Background(), d) },
			result{pending: 1, attempts: "", nextAttempt: 1}},
		{"nack after ack", func(t *testing.T, q *Queue, d *Delivery) error {
			if err := q.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			_, err := q.Nack(context.Background(), d, "late")
			return err
		}, result{err: ErrLeaseLost}},
		{"heartbeat after reap", func(t *testing.T, q *Queue, d *Delivery) error {
			time.Sleep(1100 * time.Millisecond)
			if r, err := q.Reap(context.Background()); err != nil || r.Requeued != 1 {
				t.Fatalf("reap = %+v, %v", r, err)
			}
			return q.Heartbeat(context.Background(), d)
		}, result{err: ErrLeaseLost, pending: 1, attempts: "1", nextAttempt: 2}},
		{"ack after reap", func(t *testing.T, q *Queue, d *Delivery) error {
			time.Sleep(1100 * time.Millisecond)
			if _, err := q.Reap(context.Background()); err != nil {
				t.Fatal(err)
			}
			return q.Ack(context.Background(), d)
		}, result{err: ErrLeaseLost, pending: 1, attempts: "1", nextAttempt: 2}},
		{"reap spares a live lease", func(t *testing.T, q *Queue, d *Delivery) error {
			for range 3 {
				time.Sleep(500 * time.Millisecond)
				if err := q.Heartbeat(context.Background(), d); err != nil {
					return err
				}
				if r, err := q.Reap(context.Background()); err != nil || r != (ReapResult{}) {
					t.Fatalf("reap of a live lease = %+v, %v", r, err)
				}
			}
			return nil
		}, result{processing: 1, attempts: "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue(t)
			ctx := context.Background()
			if err := q.PublishRaw(ctx, []byte(`{"wait":1}`)); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q)
			err := tc.step(t, q, d)
			if !errors.Is(err, tc.want.err) {
				t.Fatalf("err = %v, want %v", err, tc.want.err)
			}
			s := snapshot(t, q)
			if got := (s.counts()); got != [3]int{tc.want.pending, tc.want.processing, tc.want.dead} {
				t.Fatalf("pending/processing/dead = %v, want %d/%d/%d", got, tc.want.pending, tc.want.processing, tc.want.dead)
			}
			if len(s.leases) != tc.want.processing {
				t.Errorf("%d leases for %d in flight", len(s.leases), tc.want.processing)
			}
			if got := s.attempts[d.Event.ID]; got != tc.want.attempts {
				t.Errorf("attempts = %q, want %q", got, tc.want.attempts)
			}
			if tc.want.pending > 0 {
				if strings.Contains(s.pending[0], `"claim"`) {
					t.Errorf("requeued payload keeps its claim token: %s", s.pending[0])
				}
			}
			if tc.want.nextAttempt > 0 {
				d2 := claim(t, q)
				if d2.Event.ID != d.Event.ID || d2.Attempt != tc.want.nextAttempt {
					t.Errorf("next claim: id %s attempt %d, want id %s attempt %d", d2.Event.ID, d2.Attempt, d.Event.ID, tc.want.nextAttempt)
				}
			}
		})
	}
}

func TestNackDeadLettersAfterMaxAttempts(t *testing.T) {
	q, _ := newTestQueue(t) // MaxAttempts 3
	ctx := context.Background()
	if _, err := q.Publish(ctx, Event{ID: "e1", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		d := claim(t, q)
		if d.Attempt != attempt {
			t.Fatalf("attempt = %d, want %d", d.Attempt, attempt)
		}
		dead, err := q.Nack(ctx, d, "handler exploded")
		if err != nil {
			t.Fatal(err)
		}
		if dead != (attempt == 3) {
			t.Fatalf("attempt %d: dead = %v", attempt, dead)
		}
	}
	s := snapshot(t, q)
	if s.counts() != [3]int{0, 0, 1} || len(s.attempts) != 0 || len(s.leases) != 0 {
		t.Fatalf("state = %+v", s)
	}
	dls, _ := q.DeadLetters(ctx, 1)
	if dls[0].ID != "e1" || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "handler exploded") || !strings.Contains(dls[0].Reason, "MAX_ATTEMPTS") {
		t.Errorf("dead letter = %+v", dls[0])
	}
	if ev, err := DecodeEvent([]byte(dls[0].Payload), 0); err != nil || ev.ID != "e1" {
		t.Errorf("dead payload %q does not decode to the event: %v", dls[0].Payload, err)
	}
}

func TestReapExpiredDeadLettersAfterMaxAttempts(t *testing.T) {
	q, _ := newTestQueue(t) // MaxAttempts 3, lease 1s
	ctx := context.Background()
	if _, err := q.Publish(ctx, Event{ID: "crashy", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		d := claim(t, q) // ... and the consumer "dies": no heartbeat, no ack
		if d.Attempt != attempt {
			t.Fatalf("attempt = %d, want %d", d.Attempt, attempt)
		}
		time.Sleep(1100 * time.Millisecond)
		r, err := q.Reap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := ReapResult{Requeued: 1}
		if attempt == 3 {
			want = ReapResult{Dead: 1}
		}
		if r != want {
			t.Fatalf("attempt %d: reap = %+v, want %+v", attempt, r, want)
		}
	}
	s := snapshot(t, q)
	if s.counts() != [3]int{0, 0, 1} || len(s.attempts) != 0 {
		t.Fatalf("state = %+v", s)
	}
	dls, _ := q.DeadLetters(ctx, 1)
	if !strings.Contains(dls[0].Reason, "lease expired") || dls[0].ID != "crashy" {
		t.Errorf("dead letter = %+v", dls[0])
	}
}

// A consumer that dies between BRPOPLPUSH and the lease script leaves a raw
// entry without a lease; the reaper returns it after one grace period.
func TestReapRescuesNeverLeasedEntries(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	// Two identical payloads, both orphaned, plus one that is properly leased.
	if err := q.PublishRaw(ctx, []byte(`{"wait":15}`), []byte(`{"wait":15}`), []byte(`{"wait":15}`)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		//lint:ignore SA1019 BRPOPLPUSH is the claim the design names (BLMOVE RIGHT LEFT is the same move)
		if err := rdb.BRPopLPush(ctx, q.pending, q.processing, time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	live := claim(t, q)

	r, err := q.Reap(ctx)
	if err != nil || r != (ReapResult{}) {
		t.Fatalf("first pass = %+v, %v; want only marking", r, err)
	}
	if s := snapshot(t, q); len(s.unleased) != 1 || s.counts() != [3]int{0, 3, 0} {
		t.Fatalf("after first pass: %+v", s)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := q.Heartbeat(ctx, live); err != nil {
		t.Fatal(err)
	}
	r, err = q.Reap(ctx)
	if err != nil || r != (ReapResult{Rescued: 2}) {
		t.Fatalf("second pass = %+v, %v; want 2 rescued", r, err)
	}
	s := snapshot(t, q)
	if s.counts() != [3]int{2, 1, 0} || len(s.unleased) != 0 {
		t.Fatalf("state = %+v", s)
	}
	for _, p := range s.pending {
		if p != `{"wait":15}` {
			t.Errorf("rescued payload %q changed", p)
		}
	}
	if err := q.Ack(ctx, live); err != nil {
		t.Fatal(err)
	}
	// Both rescued events are claimable as two distinct events.
	a, b := claim(t, q), claim(t, q)
	if a.Event.ID == b.Event.ID {
		t.Errorf("identical payloads got one id %s", a.Event.ID)
	}
}

// Two identical payloads in flight are two events: one consumer dies, the
// other acks; the reaper must bring back exactly one.
func TestIdenticalPayloadsInFlight(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"wait": 15}`), []byte(`{"wait": 15}`)); err != nil {
		t.Fatal(err)
	}
	dies, acks := claim(t, q), claim(t, q)
	if dies.Event.ID == acks.Event.ID || dies.entry == acks.entry {
		t.Fatalf("identical payloads share id/entry: %s", dies.Event.ID)
	}
	if s := snapshot(t, q); len(s.leases) != 2 || len(s.attempts) != 2 {
		t.Fatalf("want two leases and two attempt records: %+v", s)
	}
	time.Sleep(600 * time.Millisecond)
	if err := q.Heartbeat(ctx, acks); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	r, err := q.Reap(ctx)
	if err != nil || r != (ReapResult{Requeued: 1}) {
		t.Fatalf("reap = %+v, %v; want exactly one requeued", r, err)
	}
	if err := q.Ack(ctx, acks); err != nil {
		t.Fatalf("ack of the live one: %v", err)
	}
	s := snapshot(t, q)
	if s.counts() != [3]int{1, 0, 0} || len(s.attempts) != 1 {
		t.Fatalf("state = %+v", s)
	}
	again := claim(t, q)
	if again.Event.ID != dies.Event.ID || again.Attempt != 2 {
		t.Errorf("requeued event = %s attempt %d, want %s attempt 2", again.Event.ID, again.Attempt, dies.Event.ID)
	}
}

func TestStats(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if s, err := q.Stats(ctx); err != nil || s != (Stats{}) {
		t.Fatalf("empty stats = %+v, %v", s, err)
	}
	if err := q.PublishRaw(ctx, []byte(`{"wait":1}`), []byte(`{"wait":2}`), []byte(`{"wait":3}`), []byte(`nope`)); err != nil {
		t.Fatal(err)
	}
	claim(t, q)
	time.Sleep(200 * time.Millisecond)
	claim(t, q)
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 2 || s.Processing != 2 || s.Dead != 0 {
		t.Errorf("stats = %+v", s)
	}
	if s.OldestInFlight < 200*time.Millisecond || s.OldestInFlight > 5*time.Second {
		t.Errorf("oldest in flight = %v, want the first claim's age (~200ms)", s.OldestInFlight)
	}
}

func TestRedisRestartWithAOFKeepsEverything(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	q, err := New(srv.Client(), Config{Name: "events", LeaseDuration: 5 * time.Second, MaxAttempts: 3, MaxWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := q.Publish(ctx, Event{ID: "a", Wait: time.Second}, Event{ID: "b", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	srv.Restart() // SIGKILL, then start on the same AOF
	// The same client reconnects; scripts are reloaded (EVALSHA -> NOSCRIPT -> EVAL).
	if err := Retry(ctx, func() error { return q.Heartbeat(ctx, d) }); err != nil {
		t.Fatalf("heartbeat after restart: %v", err)
	}
	if err := q.Ack(ctx, d); err != nil {
		t.Fatalf("ack after restart: %v", err)
	}
	d2 := claim(t, q)
	if d2.Event.ID != "b" {
		t.Errorf("after restart claimed %s, want b", d2.Event.ID)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"empty name", func(c *Config) { c.Name = "" }, "QUEUE"},
		{"short lease", func(c *Config) { c.LeaseDuration = time.Millisecond }, "LEASE_DURATION"},
		{"zero attempts", func(c *Config) { c.MaxAttempts = 0 }, "MAX_ATTEMPTS"},
		{"zero max wait", func(c *Config) { c.MaxWait = 0 }, "MAX_WAIT"},
		{"empty hash tag", func(c *Config) { c.Name = "a{}b" }, "hash tag"},
		{"only braces", func(c *Config) { c.Name = "{}" }, "hash tag"},
		{"stray closing brace", func(c *Config) { c.Name = "a}b" }, "hash tag"},
		{"unclosed brace", func(c *Config) { c.Name = "{x" }, "hash tag"},
		{"cluster tag", func(c *Config) { c.Name = "{events}" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
