package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// claimAs claims the next event with the pod name pod.
func claimAs(t testing.TB, q *Queue, pod string) *Delivery {
	t.Helper()
	d, err := q.ClaimWith(context.Background(), ClaimOptions{Timeout: 10 * time.Second, Pod: pod, AnyPayload: true})
	if err != nil {
		t.Fatalf("claim as %q: %v", pod, err)
	}
	return d
}

func withDone(n int, age time.Duration) func(*Config) {
	return func(c *Config) { c.DoneMaxRecords, c.DoneMaxAge = n, age }
}

// score reads one member's score, failing the test when it is missing.
func score(t testing.TB, q *Queue, key, member string) int64 {
	t.Helper()
	f, err := q.rdb.ZScore(context.Background(), key, member).Result()
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", key, member, err)
	}
	return int64(f)
}

// The pod name travels in the delivery header, byte for byte as the lease
// wrote it, and inspect (Find) shows it for the event in flight.
func TestPodNameInTheLease(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"id":"evt-1","x":1}`)); err != nil {
		t.Fatal(err)
	}
	d := claimAs(t, q, "redis-keda-jobs-x7k2p-8c9dz")
	h, err := q.rdb.LIndex(ctx, q.claimPrefix+d.Token, 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"attempt":1,"off":0,"utf8":true,"assigned":false,"id":"evt-1","token":"%s","claimed_at":"%s","size":20,"pod":"redis-keda-jobs-x7k2p-8c9dz"}`,
		d.Token, d.ClaimedAt.UTC().Format(time.RFC3339Nano))
	if h != want {
		t.Errorf("header\n got %s\nwant %s", h, want)
	}
	es, err := q.Find(ctx, mustID(t, "evt-1"))
	if err != nil || len(es) != 1 || es[0].Location != LocProcessing || es[0].Pod != "redis-keda-jobs-x7k2p-8c9dz" {
		t.Errorf("Find = %+v, %v; want one processing entry with its pod", es, err)
	}
}

// A pod name the header must not carry is refused before anything moves,
// with the exact message.
func TestPodNameChecked(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"id":"evt-1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ pod, want string }{
		{strings.Repeat("a", 254), "invalid queue configuration: pod name is 254 bytes, above 253 (a Kubernetes pod name is at most 253 characters); set POD_NAME from the downward API (fieldRef metadata.name)"},
		{"pod\x1b[2J", `invalid queue configuration: pod name "pod\x1b[2J" has bytes that are not printable UTF-8; set POD_NAME from the downward API (fieldRef metadata.name)`},
		{"pod\xff", `invalid queue configuration: pod name "pod\xff" has bytes that are not printable UTF-8; set POD_NAME from the downward API (fieldRef metadata.name)`},
	} {
		_, err := q.ClaimWith(ctx, ClaimOptions{Timeout: time.Second, Pod: tc.pod})
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("pod %q: got %v\nwant %s", tc.pod, err, tc.want)
		}
	}
	if n := q.rdb.LLen(ctx, q.pending).Val(); n != 1 {
		t.Errorf("pending %d after refused claims, want 1 (nothing moved)", n)
	}
	d := claimAs(t, q, strings.Repeat("a", 253)) // the bound itself is fine
	if d.Event.ID != "evt-1" {
		t.Errorf("claimed %q", d.Event.ID)
	}
}

func mustID(t testing.TB, id string) Selector {
	t.Helper()
	s, err := IDSelector(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The ack writes the done record, exact bytes: acked and leased on the
// Redis clock, the acked attempt, the pod. The same id acked again keeps
// one record, the latest, with acks counted on; a job that did not know its
// pod leaves "pod" out.
func TestDoneRecordExactBytes(t *testing.T) {
	q, rdb := newTestQueue(t, withDone(100, time.Hour))
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"id":"evt-1"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Nack(ctx, claimAs(t, q, "pod-a"), "first try fails"); err != nil {
		t.Fatal(err)
	}
	d := claimAs(t, q, "pod-b")
	leased := score(t, q, q.claimed, d.Token)
	if err := q.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	acked := score(t, q, q.doneOrder, "evt-1")
	after := redisNow(t, rdb).UnixMilli()
	got := q.rdb.HGet(ctx, q.done, "evt-1").Val()
	want := fmt.Sprintf(`{"acked_ms":%d,"leased_ms":%d,"attempt":2,"acks":1,"pod":"pod-b"}`, acked, leased)
	if got != want {
		t.Errorf("done record\n got %s\nwant %s", got, want)
	}
	if acked < leased || acked > after {
		t.Errorf("acked_ms %d not between leased_ms %d and the server's time after the ack %d", acked, leased, after)
	}

	// Published and acked again, by a job without a pod name.
	if err := q.PublishRaw(ctx, []byte(`{"id":"evt-1","again":true}`)); err != nil {
		t.Fatal(err)
	}
	d = claimAs(t, q, "")
	leased = score(t, q, q.claimed, d.Token)
	if err := q.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	acked = score(t, q, q.doneOrder, "evt-1")
	got = q.rdb.HGet(ctx, q.done, "evt-1").Val()
	want = fmt.Sprintf(`{"acked_ms":%d,"leased_ms":%d,"attempt":1,"acks":2}`, acked, leased)
	if got != want {
		t.Errorf("done record after a second ack\n got %s\nwant %s", got, want)
	}
	if n := q.rdb.HLen(ctx, q.done).Val(); n != 1 {
		t.Errorf("%d done records, want 1", n)
	}
	rec, ok, err := q.Done(ctx, "evt-1")
	wantRec := DoneRecord{ID: "evt-1", AckedAt: time.UnixMilli(acked), LeasedAt: time.UnixMilli(leased), Attempt: 1, Acks: 2}
	if err != nil || !ok || rec != wantRec || rec.Duration() != time.Duration(acked-leased)*time.Millisecond {
		t.Errorf("Done = %+v, %v, %v; want %+v", rec, ok, err, wantRec)
	}
}

// ackIDs publishes, claims and acks one event per id, in order.
func ackIDs(t testing.TB, q *Queue, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		if err := q.PublishRaw(ctx, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
		if err := q.Ack(ctx, claimAs(t, q, "p")); err != nil {
			t.Fatal(err)
		}
	}
}

// doneIDs is the done records' ids, oldest first, checking that the hash
// and the order zset hold the same ids.
func doneIDs(t testing.TB, q *Queue) []string {
	t.Helper()
	ctx := context.Background()
	order := q.rdb.ZRange(ctx, q.doneOrder, 0, -1).Val()
	fields := q.rdb.HKeys(ctx, q.done).Val()
	slices.Sort(fields)
	sorted := slices.Sorted(slices.Values(order))
	if !slices.Equal(fields, sorted) {
		t.Fatalf("done hash ids %q, order zset ids %q: they differ", fields, sorted)
	}
	return order
}

// DONE_MAX_RECORDS: each ack trims up to two of the oldest beyond it, so
// the records stay within the bound, and a lowered bound converges two per
// ack. 0 writes no record at all.
func TestDoneRecordsTrimmedByCount(t *testing.T) {
	q, rdb := newTestQueue(t, withDone(3, 0))
	ackIDs(t, q, "a", "b", "c", "d", "e", "f")
	if got, want := doneIDs(t, q), []string{"d", "e", "f"}; !slices.Equal(got, want) {
		t.Errorf("done records %q, want %q", got, want)
	}

	// Ten records kept under a bound of 10, then the bound lowered to 3:
	// 10+1-2 = 9, then 8, 7, ... down to 3, where it stays.
	big, _ := newQueueOn(t, rdb, withDone(10, 0), func(c *Config) { c.Name = "big" })
	ackIDs(t, big, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
	small, _ := newQueueOn(t, rdb, withDone(3, 0), func(c *Config) { c.Name = "big" })
	var sizes []int
	for i := range 8 {
		ackIDs(t, small, fmt.Sprintf("n%d", i))
		sizes = append(sizes, len(doneIDs(t, small)))
	}
	if want := []int{9, 8, 7, 6, 5, 4, 3, 3}; !slices.Equal(sizes, want) {
		t.Errorf("records after each ack %v, want %v", sizes, want)
	}
	if got, want := doneIDs(t, small), []string{"n5", "n6", "n7"}; !slices.Equal(got, want) {
		t.Errorf("done records %q, want %q", got, want)
	}

	off, _ := newQueueOn(t, rdb, withDone(0, time.Hour), func(c *Config) { c.Name = "off" })
	ackIDs(t, off, "x")
	if n := rdb.Exists(context.Background(), off.done, off.doneOrder).Val(); n != 0 {
		t.Errorf("DONE_MAX_RECORDS=0 wrote %d done keys", n)
	}
	if s := snapshot(t, off); s.counters["acked"] != "1" {
		t.Errorf("acked counter %q, want 1", s.counters["acked"])
	}
}

// DONE_MAX_AGE: once the Redis clock is past a record's ack + the age, the
// next ack trims it. Control arm: with no age bound the same sequence keeps
// every record.
func TestDoneRecordsTrimmedByAge(t *testing.T) {
	for _, tc := range []struct {
		age  time.Duration
		want []string
	}{
		{300 * time.Millisecond, []string{"new"}},
		{0, []string{"old1", "old2", "new"}},
	} {
		t.Run(fmt.Sprint(tc.age), func(t *testing.T) {
			q, rdb := newTestQueue(t, withDone(100, tc.age))
			ackIDs(t, q, "old1", "old2")
			last := score(t, q, q.doneOrder, "old2")
			// Wait for the condition (the server clock past old2's age),
			// not for a wall-clock time.
			for redisNow(t, rdb).UnixMilli() <= last+300 {
				time.Sleep(50 * time.Millisecond)
			}
			ackIDs(t, q, "new")
			if got := doneIDs(t, q); !slices.Equal(got, tc.want) {
				t.Errorf("done records %q, want %q", got, tc.want)
			}
		})
	}
}

// Inspect answers for every state: pending (position), in flight (pod,
// since), claimed but not leased, dead (reason), done (acked, attempt,
// pod); an id found nowhere is ErrNotFound with the exact message.
func TestInspectEveryState(t *testing.T) {
	q, rdb := newTestQueue(t, withDone(100, time.Hour), func(c *Config) { c.MaxAttempts = 1; c.LeaseDuration = 30 * time.Second; c.RetryBase = 0 })
	ctx := context.Background()
	pub := func(ids ...string) {
		for _, id := range ids {
			if err := q.PublishRaw(ctx, []byte(`{"id":"`+id+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub("done-1", "dead-1", "flight-1")
	d := claimAs(t, q, "pod-done")
	doneLeased := score(t, q, q.claimed, d.Token)
	if err := q.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Nack(ctx, claimAs(t, q, "pod-dead"), "boom"); err != nil {
		t.Fatal(err)
	}
	inflight := claimAs(t, q, "pod-flight")
	pub("pend-1", "pend-2", "claimed-1")
	orphan(t, q, time.Minute) // takes pend-1, the oldest
	// 250 scheduled events over 3 pages, the one looked for last, due in
	// an hour by the server's clock.
	var later [][]byte
	for i := range 249 {
		later = append(later, []byte(fmt.Sprintf(`{"id":"other-%d"}`, i)))
	}
	later = append(later, []byte(`{"id":"sched-1"}`))
	before := redisNow(t, rdb).UnixMilli()
	if err := q.PublishRawIn(ctx, time.Hour, later...); err != nil {
		t.Fatal(err)
	}
	after := redisNow(t, rdb).UnixMilli()

	type want struct {
		loc      Location
		pos      int64
		attempts int
		pod      string
		reason   string
	}
	for id, w := range map[string]want{
		"pend-2":   {loc: LocPending, pos: 1},
		"pend-1":   {loc: LocClaimed, attempts: 1},
		"flight-1": {loc: LocProcessing, attempts: 1, pod: "pod-flight"},
		"dead-1":   {loc: LocDead, pos: 1, attempts: 1, reason: "failed on attempt 1 of 1 (MAX_ATTEMPTS): boom"},
		"done-1":   {loc: LocDone, attempts: 1, pod: "pod-done"},
		"sched-1":  {loc: LocScheduled},
	} {
		es, err := q.Inspect(ctx, mustID(t, id))
		if err != nil || len(es) != 1 {
			t.Errorf("Inspect(%s) = %d entries, %v; want 1", id, len(es), err)
			continue
		}
		e := es[0]
		if e.Location != w.loc || e.Position != w.pos || e.Attempts != w.attempts || e.Pod != w.pod || e.Reason != w.reason || e.ID != id {
			t.Errorf("Inspect(%s) = %s pos %d attempts %d pod %q reason %q; want %+v", id, e.Location, e.Position, e.Attempts, e.Pod, e.Reason, w)
		}
		switch w.loc {
		case LocProcessing:
			if e.ClaimedAt.UnixMilli() != score(t, q, q.claimed, inflight.Token) || e.LeaseDeadline.IsZero() {
				t.Errorf("in flight since %v (lease until %v), want the claimed score", e.ClaimedAt, e.LeaseDeadline)
			}
		case LocDone:
			if e.ClaimedAt.UnixMilli() != doneLeased || e.AckedAt.UnixMilli() != score(t, q, q.doneOrder, id) || e.Acks != 1 {
				t.Errorf("done entry %+v: leased %d, acked %d", e, doneLeased, score(t, q, q.doneOrder, id))
			}
		case LocScheduled:
			if due := e.DueAt.UnixMilli(); due < before+3600_000 || due > after+3600_000 || string(e.Payload) != `{"id":"sched-1"}` {
				t.Errorf("scheduled entry due %d (want in [%d, %d]), payload %q", due, before+3600_000, after+3600_000, e.Payload)
			}
		case LocDead:
			if e.DeadAt.IsZero() {
				t.Errorf("dead entry without dead_at")
			}
		}
	}
	_, err := q.Inspect(ctx, mustID(t, "nowhere"))
	wantErr := "not found: no event has id or reference nowhere in queue events (scheduled, pending, in flight, dead or done); an event acked more than DONE_MAX_AGE (1h0m0s) ago, or before the last DONE_MAX_RECORDS (100) acks, has no record left"
	if !errors.Is(err, ErrNotFound) || err.Error() != wantErr {
		t.Errorf("Inspect(nowhere) = %v\nwant %s", err, wantErr)
	}
}
