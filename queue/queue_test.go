package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	return newQueueOn(t, srv.Client(), mod...)
}

func newQueueOn(t *testing.T, rdb *redis.Client, mod ...func(*Config)) (*Queue, *redis.Client) {
	t.Helper()
	cfg := Config{Name: "events", LeaseDuration: time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
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
	pending, dead   []string
	leases, claimed []redis.Z
	claims          map[string][]string // token -> claim list
	counters        map[string]string
	stray           []string // keys that belong to no known structure
}

func snapshot(t testing.TB, q *Queue) state {
	t.Helper()
	ctx := context.Background()
	s := state{claims: map[string][]string{}}
	var err error
	must := func(e error) {
		if e != nil && !errors.Is(e, redis.Nil) {
			t.Fatal(e)
		}
	}
	s.pending, err = q.rdb.LRange(ctx, q.pending, 0, -1).Result()
	must(err)
	s.dead, err = q.rdb.LRange(ctx, q.dead, 0, -1).Result()
	must(err)
	s.leases, err = q.rdb.ZRangeWithScores(ctx, q.leases, 0, -1).Result()
	must(err)
	s.claimed, err = q.rdb.ZRangeWithScores(ctx, q.claimed, 0, -1).Result()
	must(err)
	s.counters, err = q.rdb.HGetAll(ctx, q.counters).Result()
	must(err)
	keys, err := q.rdb.Keys(ctx, "*").Result()
	must(err)
	registered := map[string]bool{}
	for _, z := range s.leases {
		registered[z.Member.(string)] = true
	}
	for _, k := range keys {
		switch {
		case k == q.pending || k == q.leases || k == q.claimed || k == q.dead || k == q.counters || k == q.finished || k == scheduledKey(q.cfg.Name) || k == q.done || k == q.doneOrder:
		case strings.HasPrefix(k, q.claimPrefix) && registered[strings.TrimPrefix(k, q.claimPrefix)]:
			tok := strings.TrimPrefix(k, q.claimPrefix)
			s.claims[tok], err = q.rdb.LRange(ctx, k, 0, -1).Result()
			must(err)
		default:
			s.stray = append(s.stray, k)
		}
	}
	for _, z := range s.claimed {
		if !registered[z.Member.(string)] {
			s.stray = append(s.stray, "claimed without lease: "+z.Member.(string))
		}
	}
	return s
}

// counts is pending, in flight (leased), dead.
func (s state) counts() [3]int {
	inflight := 0
	for _, c := range s.claims {
		if len(c) == 2 {
			inflight++
		}
	}
	return [3]int{len(s.pending), inflight, len(s.dead)}
}

// clean fails when a key or registration is left that no event accounts for.
func (s state) clean(t testing.TB) {
	t.Helper()
	if len(s.stray) > 0 {
		t.Errorf("stray keys: %q", s.stray)
	}
	for tok, c := range s.claims {
		if len(c) > 2 {
			t.Errorf("claim list %s holds %d entries", tok, len(c))
		}
	}
}

func claim(t testing.TB, q *Queue) *Delivery {
	t.Helper()
	// 10 s, not 1 s: Claim gives up without a BRPOPLPUSH when its timeout
	// has passed by the time its registration returns, which on a loaded
	// machine happened with events pending ("no event to claim"). It
	// returns at once when one is.
	d, err := q.Claim(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return d
}

// payloadOf returns a pending entry's payload (its envelope removed) and its
// envelope header.
func payloadOf(t testing.TB, entry string) (string, envelopeHeader) {
	t.Helper()
	h, p, _, err := splitEntry(entry)
	if err != nil {
		t.Fatalf("pending entry %q: %v", entry, err)
	}
	return p, h
}

// orphan claims one entry the way a job killed between BRPOPLPUSH and the
// lease leaves it: registered with a deadline of `in`, moved, never leased.
func orphan(t testing.TB, q *Queue, in time.Duration) string {
	t.Helper()
	ctx := context.Background()
	tok := newID()
	if err := registerScript.Run(ctx, q.rdb, []string{q.leases}, tok, in.Milliseconds()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := q.rdb.BRPopLPush(ctx, q.pending, q.claimPrefix+tok, time.Second).Err(); err != nil {
		t.Fatalf("orphan: %v", err)
	}
	return tok
}

// moved is what a reap moved (Batches left out).
func moved(r ReapResult) ReapResult { r.Batches = 0; return r }

func TestKeysShareOneClusterSlot(t *testing.T) {
	srv := redistest.Start(t, redistest.WithClusterMode())
	rdb := srv.Client()
	ctx := context.Background()
	for _, name := range []string{"events", "{events}:high", "jobs:{tenant-a}:in", "orders:v2"} {
		t.Run(name, func(t *testing.T) {
			want, err := rdb.ClusterKeySlot(ctx, pendingKey(name)).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{claimKey(name, "0123456789abcdef"), leasesKey(name), claimedKey(name), deadKey(name), countersKey(name)} {
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
	if got := claimKey("events", "t1"); got != "{events}:claim:t1" {
		t.Errorf("claimKey(events, t1) = %q", got)
	}
	if got := leasesKey("{events}"); got != "{events}:leases" {
		t.Errorf("leasesKey({events}) = %q", got)
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
	s := snapshot(t, q)
	s.clean(t)
	if len(s.leases) != 0 {
		t.Errorf("the claim's registration was left behind: %v", s.leases)
	}
}

func TestClaimLeasesAndCounts(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	raw := `{"wait": 17, "colour": "blue", "claim": "producer's", "claimed_at": 1}`
	if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	before, err := q.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	if d.Event.Wait != 17*time.Second || d.Attempt != 1 || !d.IDAssigned || d.Event.ID == "" {
		t.Fatalf("delivery = %+v", d)
	}
	if string(d.Payload()) != raw {
		t.Errorf("payload = %s, want the producer's bytes %s", d.Payload(), raw)
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{0, 1, 0} || len(s.leases) != 1 || len(s.claimed) != 1 {
		t.Fatalf("state = %+v", s)
	}
	c := s.claims[d.Token]
	if len(c) != 2 || c[1] != raw {
		t.Fatalf("claim list = %q, want [header, the raw entry]", c)
	}
	var h deliveryHeader
	if err := json.Unmarshal([]byte(c[0]), &h); err != nil {
		t.Fatal(err)
	}
	if h.Token != d.Token || h.ID != d.Event.ID || !h.Assigned || h.Attempt != 1 || h.Off != 0 || h.Size != len(raw) || !h.UTF8 {
		t.Errorf("header = %+v", h)
	}
	// The lease deadline is LeaseDuration after the claim, on Redis's clock
	// (read before and after it, to the millisecond).
	after, err := q.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	dl := time.UnixMilli(int64(s.leases[0].Score))
	if lo, hi := before.Truncate(time.Millisecond).Add(q.cfg.LeaseDuration), after.Add(q.cfg.LeaseDuration); dl.Before(lo) || dl.After(hi) {
		t.Errorf("lease deadline %v, want LeaseDuration (%s) after the claim: between %v and %v", dl, q.cfg.LeaseDuration, lo, hi)
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
		{"forged envelope", "rkq1 no header line", "no header line"},
		{"binary", "\xff\xfe<&>", "not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, rdb := newTestQueue(t)
			ctx := context.Background()
			// LPUSH: PublishRaw refuses the envelope marker, a producer's
			// own LPUSH cannot.
			if err := rdb.LPush(ctx, q.pending, tc.payload).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := q.Claim(ctx, time.Second)
			var inv *InvalidEventError
			if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &inv) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
			if !strings.Contains(inv.Reason, tc.reason) || inv.Payload != tc.payload || inv.Size != len(tc.payload) {
				t.Errorf("error %+v, want reason containing %q", inv, tc.reason)
			}
			s := snapshot(t, q)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 1} || len(s.leases) != 0 || s.counters["dead"] != "1" {
				t.Fatalf("state = %+v, want only one dead letter", s)
			}
			dls, err := q.DeadLetters(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if string(dls[0].Payload) != tc.payload || !strings.Contains(dls[0].Reason, tc.reason) || dls[0].DeadAt.IsZero() || dls[0].Attempts != 1 || dls[0].Size != len(tc.payload) {
				t.Errorf("dead letter = %+v", dls[0])
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	// Each case claims one event ({"wait":1}, no id) with MaxAttempts 3, then acts.
	type result struct {
		err                       error
		pending, processing, dead int
		nextAttempt               int    // attempt number of the next claim (0 = none)
		counter                   string // counter incremented to 1 ("" = none)
	}
	cases := []struct {
		name string
		step func(t *testing.T, q *Queue, d *Delivery) error
		want result
	}{
		{"ack", func(t *testing.T, q *Queue, d *Delivery) error { return q.Ack(context.Background(), d) },
			result{counter: "acked"}},
		{"ack twice", func(t *testing.T, q *Queue, d *Delivery) error {
			if err := q.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			return q.Ack(context.Background(), d) // as after a lost reply: done already, by this claim
		}, result{counter: "acked"}},
		{"heartbeat", func(t *testing.T, q *Queue, d *Delivery) error { return q.Heartbeat(context.Background(), d) },
			result{processing: 1}},
		{"nack requeues", func(t *testing.T, q *Queue, d *Delivery) error {
			dead, err := q.Nack(context.Background(), d, "boom")
			if dead {
				t.Error("dead on attempt 1 of 3")
			}
			return err
		}, result{pending: 1, nextAttempt: 2, counter: "retried"}},
		{"release does not count", func(t *testing.T, q *Queue, d *Delivery) error { return q.Release(context.Background(), d) },
			result{pending: 1, nextAttempt: 1, counter: "released"}},
		{"nack after ack", func(t *testing.T, q *Queue, d *Delivery) error {
			if err := q.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			_, err := q.Nack(context.Background(), d, "late")
			return err
		}, result{err: ErrLeaseLost, counter: "acked"}},
		{"heartbeat after reap", func(t *testing.T, q *Queue, d *Delivery) error {
			time.Sleep(1100 * time.Millisecond)
			if r, err := q.Reap(context.Background()); err != nil || moved(r) != (ReapResult{Requeued: 1}) {
				t.Fatalf("reap = %+v, %v", r, err)
			}
			return q.Heartbeat(context.Background(), d)
		}, result{err: ErrLeaseLost, pending: 1, nextAttempt: 2, counter: "reaped_requeued"}},
		{"ack after reap", func(t *testing.T, q *Queue, d *Delivery) error {
			time.Sleep(1100 * time.Millisecond)
			if _, err := q.Reap(context.Background()); err != nil {
				t.Fatal(err)
			}
			return q.Ack(context.Background(), d)
		}, result{err: ErrLeaseLost, pending: 1, nextAttempt: 2, counter: "reaped_requeued"}},
		{"reap spares a live lease", func(t *testing.T, q *Queue, d *Delivery) error {
			for range 3 {
				time.Sleep(500 * time.Millisecond)
				if err := q.Heartbeat(context.Background(), d); err != nil {
					return err
				}
				if r, err := q.Reap(context.Background()); err != nil || moved(r) != (ReapResult{}) {
					t.Fatalf("reap of a live lease = %+v, %v", r, err)
				}
			}
			return nil
		}, result{processing: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue(t)
			ctx := context.Background()
			const raw = `{"wait":1}`
			if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
				t.Fatal(err)
			}
			d := claim(t, q)
			err := tc.step(t, q, d)
			if !errors.Is(err, tc.want.err) {
				t.Fatalf("err = %v, want %v", err, tc.want.err)
			}
			s := snapshot(t, q)
			s.clean(t)
			if got := (s.counts()); got != [3]int{tc.want.pending, tc.want.processing, tc.want.dead} {
				t.Fatalf("pending/processing/dead = %v, want %d/%d/%d", got, tc.want.pending, tc.want.processing, tc.want.dead)
			}
			if len(s.leases) != tc.want.processing || len(s.claimed) != tc.want.processing {
				t.Errorf("%d leases, %d claimed for %d in flight", len(s.leases), len(s.claimed), tc.want.processing)
			}
			wantCounters := map[string]string{}
			if tc.want.counter != "" {
				wantCounters[tc.want.counter] = "1"
			}
			if fmt.Sprint(s.counters) != fmt.Sprint(wantCounters) {
				t.Errorf("counters = %v, want %v", s.counters, wantCounters)
			}
			if tc.want.pending > 0 {
				if p, _ := payloadOf(t, s.pending[0]); p != raw {
					t.Errorf("requeued payload %q, want the producer's %q", p, raw)
				}
			}
			if tc.want.nextAttempt > 0 {
				d2 := claim(t, q)
				if d2.Event.ID != d.Event.ID || d2.Attempt != tc.want.nextAttempt || string(d2.Payload()) != raw {
					t.Errorf("next claim: id %s attempt %d payload %s, want id %s attempt %d", d2.Event.ID, d2.Attempt, d2.Payload(), d.Event.ID, tc.want.nextAttempt)
				}
			}
		})
	}
}

func TestNackDeadLettersAfterMaxAttempts(t *testing.T) {
	q, _ := newTestQueue(t) // MaxAttempts 3
	ctx := context.Background()
	pub, err := q.Publish(ctx, Event{ID: "e1", Wait: time.Second})
	if err != nil {
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
	s.clean(t)
	if s.counts() != [3]int{0, 0, 1} || len(s.leases) != 0 {
		t.Fatalf("state = %+v", s)
	}
	dls, _ := q.DeadLetters(ctx, 1)
	if dls[0].ID != "e1" || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "handler exploded") || !strings.Contains(dls[0].Reason, "MAX_ATTEMPTS") {
		t.Errorf("dead letter = %+v", dls[0])
	}
	if string(dls[0].Payload) != string(pub[0].Marshal()) {
		t.Errorf("dead payload %q, want the published bytes %q", dls[0].Payload, pub[0].Marshal())
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
		if moved(r) != want {
			t.Fatalf("attempt %d: reap = %+v, want %+v", attempt, r, want)
		}
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{0, 0, 1} {
		t.Fatalf("state = %+v", s)
	}
	dls, _ := q.DeadLetters(ctx, 1)
	if !strings.Contains(dls[0].Reason, "lease expired on attempt 3 of 3") || dls[0].ID != "crashy" || dls[0].Attempts != 3 {
		t.Errorf("dead letter = %+v", dls[0])
	}
}

// A consumer that dies between BRPOPLPUSH and the lease leaves its entry in
// its claim list, unleased; the reaper returns it after the claim's deadline
// and counts that delivery.
func TestReapRescuesNeverLeasedEntries(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	// Two identical payloads, both orphaned, plus one that is properly leased.
	const raw = `{"wait":15}`
	if err := q.PublishRaw(ctx, []byte(raw), []byte(raw), []byte(raw)); err != nil {
		t.Fatal(err)
	}
	orphan(t, q, 500*time.Millisecond)
	orphan(t, q, 500*time.Millisecond)
	live := claim(t, q)

	r, err := q.Reap(ctx)
	if err != nil || moved(r) != (ReapResult{}) {
		t.Fatalf("pass before the deadline = %+v, %v; want nothing", r, err)
	}
	time.Sleep(600 * time.Millisecond)
	if err := q.Heartbeat(ctx, live); err != nil {
		t.Fatal(err)
	}
	r, err = q.Reap(ctx)
	if err != nil || moved(r) != (ReapResult{Rescued: 2}) {
		t.Fatalf("pass after = %+v, %v; want 2 rescued", r, err)
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{2, 1, 0} || s.counters["reaped_rescued"] != "2" {
		t.Fatalf("state = %+v", s)
	}
	for _, e := range s.pending {
		p, h := payloadOf(t, e)
		if p != raw || h.Attempts != 1 {
			t.Errorf("rescued entry %q: payload %q attempts %d, want %q and 1 (the delivery counts)", e, p, h.Attempts, raw)
		}
	}
	if err := q.Ack(ctx, live); err != nil {
		t.Fatal(err)
	}
	// Both rescued events are claimable as two distinct events, second delivery each.
	a, b := claim(t, q), claim(t, q)
	if a.Event.ID == b.Event.ID || a.Attempt != 2 || b.Attempt != 2 {
		t.Errorf("rescued: %s attempt %d, %s attempt %d", a.Event.ID, a.Attempt, b.Event.ID, b.Attempt)
	}
}

// An event with its own id whose job dies after every claim is dead-lettered
// by the reaper; its dead letter names that id (the record keeps only ids the
// queue assigned; DeadLetter reads the payload's). Found by the runner chaos
// test, which counted such an event as lost.
func TestNeverLeasedDeadLetterKeepsItsOwnID(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	const own = `{"id":"own-7","wait":1}`
	const anon = `{"wait":2}`
	if err := q.PublishRaw(ctx, []byte(own), []byte(anon)); err != nil {
		t.Fatal(err)
	}
	for range q.cfg.MaxAttempts {
		orphan(t, q, -time.Second)
		orphan(t, q, -time.Second)
		if _, err := q.Reap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dls, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters %+v, %v; want 2", dls, err)
	}
	byPayload := map[string]DeadLetter{}
	for _, dl := range dls {
		byPayload[string(dl.Payload)] = dl
	}
	if dl := byPayload[own]; dl.ID != "own-7" || dl.Attempts != q.cfg.MaxAttempts {
		t.Errorf("own-id dead letter: id %q attempts %d, want \"own-7\" and %d", dl.ID, dl.Attempts, q.cfg.MaxAttempts)
	}
	// An id-less payload gets its id at the lease, which never happened.
	if dl := byPayload[anon]; dl.ID != "" || dl.Attempts != q.cfg.MaxAttempts {
		t.Errorf("id-less dead letter: id %q attempts %d, want none (never leased, never named) and %d", dl.ID, dl.Attempts, q.cfg.MaxAttempts)
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
	if dies.Event.ID == acks.Event.ID || dies.Token == acks.Token {
		t.Fatalf("identical payloads share id/token: %s", dies.Event.ID)
	}
	time.Sleep(600 * time.Millisecond)
	if err := q.Heartbeat(ctx, acks); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	r, err := q.Reap(ctx)
	if err != nil || moved(r) != (ReapResult{Requeued: 1}) {
		t.Fatalf("reap = %+v, %v; want exactly one requeued", r, err)
	}
	if err := q.Ack(ctx, acks); err != nil {
		t.Fatalf("ack of the live one: %v", err)
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{1, 0, 0} {
		t.Fatalf("state = %+v", s)
	}
	again := claim(t, q)
	if again.Event.ID != dies.Event.ID || again.Attempt != 2 {
		t.Errorf("requeued event = %s attempt %d, want %s attempt 2", again.Event.ID, again.Attempt, dies.Event.ID)
	}
}

// Attempts belong to one entry's delivery chain: three events a producer
// gave the same id never share a count.
func TestAttemptsPerDeliveryChainNotPerID(t *testing.T) {
	q, _ := newTestQueue(t) // MaxAttempts 3
	ctx := context.Background()
	const raw = `{"id":"dup","wait":1}`
	if err := q.PublishRaw(ctx, []byte(raw), []byte(raw), []byte(raw)); err != nil {
		t.Fatal(err)
	}
	a, b, c := claim(t, q), claim(t, q), claim(t, q)
	for _, d := range []*Delivery{a, b, c} {
		if d.Event.ID != "dup" || d.Attempt != 1 || d.IDAssigned {
			t.Fatalf("delivery %+v", d)
		}
	}
	// a fails twice, b is acked, c fails once: nobody's count moves another's.
	if _, err := q.Nack(ctx, a, "x"); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Nack(ctx, c, "y"); err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for range 2 {
		d := claim(t, q)
		got[d.Attempt]++
		if dead, err := q.Nack(ctx, d, "z"); err != nil || dead {
			t.Fatalf("nack of attempt %d: dead=%v err=%v; attempt 2 of 3 must not be dead", d.Attempt, dead, err)
		}
	}
	if got[2] != 2 {
		t.Errorf("second claims: attempts %v, want both 2", got)
	}
	if s := snapshot(t, q); s.counts() != [3]int{2, 0, 0} {
		t.Errorf("state %v, want 2 pending and none dead", s.counts())
	}
}

func TestStats(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if s, err := q.Stats(ctx); err != nil || s.Pending+s.Processing+s.Claiming+s.Dead != 0 || s.OldestInFlight != 0 || len(s.Counters) != 0 {
		t.Fatalf("empty stats = %+v, %v", s, err)
	}
	if err := q.PublishRaw(ctx, []byte(`{"wait":1}`), []byte(`{"wait":2}`), []byte(`{"wait":3}`), []byte(`nope`)); err != nil {
		t.Fatal(err)
	}
	first := q.rdb.Time(ctx).Val() // Redis's clock, as Stats reads it
	claim(t, q)
	time.Sleep(200 * time.Millisecond)
	claim(t, q)
	orphan(t, q, time.Minute)
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	since := q.rdb.Time(ctx).Val().Sub(first) + time.Millisecond // ms rounding
	if s.Pending != 1 || s.Processing != 2 || s.Claiming != 1 || s.Dead != 0 {
		t.Errorf("stats = %+v", s)
	}
	if s.OldestInFlight < 200*time.Millisecond || s.OldestInFlight > since {
		t.Errorf("oldest in flight = %v, want the first claim's age (200ms..%s)", s.OldestInFlight, since)
	}
	if _, err := q.Claim(ctx, time.Second); !errors.Is(err, ErrInvalidEvent) {
		t.Fatal(err)
	}
	if s, _ = q.Stats(ctx); s.Dead != 1 || s.Counters["dead"] != 1 {
		t.Errorf("after the bad payload: %+v", s)
	}
}

func TestRedisRestartWithAOFKeepsEverything(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	q, _ := newQueueOn(t, srv.Client(), func(c *Config) { c.LeaseDuration = 5 * time.Second })
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
	ok := Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"empty name", func(c *Config) { c.Name = "" }, "QUEUE is empty"},
		{"short lease", func(c *Config) { c.LeaseDuration = time.Millisecond }, "LEASE_DURATION=1ms is below 1s"},
		{"zero attempts", func(c *Config) { c.MaxAttempts = 0 }, "MAX_ATTEMPTS=0 must be at least 1"},
		{"zero max wait", func(c *Config) { c.MaxWait = 0 }, "MAX_WAIT=0s must be positive"},
		{"tiny max payload", func(c *Config) { c.MaxPayloadBytes = 10 }, "MAX_PAYLOAD_BYTES=10 is below 64"},
		{"empty hash tag", func(c *Config) { c.Name = "a{}b" }, "hash tag"},
		{"only braces", func(c *Config) { c.Name = "{}" }, "hash tag"},
		{"stray closing brace", func(c *Config) { c.Name = "a}b" }, "hash tag"},
		{"unclosed brace", func(c *Config) { c.Name = "{x" }, "hash tag"},
		{"cluster tag", func(c *Config) { c.Name = "{events}:high" }, ""},
		{"negative min replicas", func(c *Config) { c.MinReplicas = -1 }, "REDIS_MIN_REPLICAS=-1 must be 0"},
		{"min replicas without timeout", func(c *Config) { c.MinReplicas = 1 }, "REDIS_MIN_REPLICAS_TIMEOUT=0s must be at least 1ms with REDIS_MIN_REPLICAS=1"},
		{"min replicas", func(c *Config) { c.MinReplicas, c.MinReplicasTimeout = 1, time.Second }, ""},
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
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
