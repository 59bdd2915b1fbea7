package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverMs reads Redis's clock in Unix ms.
func serverMs(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	tm, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMilli()
}

func scheduledMembers(t testing.TB, q *Queue) []redis.Z {
	t.Helper()
	z, err := q.rdb.ZRangeWithScores(context.Background(), scheduledKey(q.cfg.Name), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// Two identical payloads scheduled for the same time stay two events: two
// members (their nonces differ), two pending entries, two deliveries.
func TestPublishRawAtIdenticalPayloadsStayTwo(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	p := []byte(`{"wait":3}`)
	at := time.UnixMilli(serverMs(t, rdb) - 1) // due already
	if err := q.PublishRawAt(ctx, at, p, p); err != nil {
		t.Fatal(err)
	}
	z := scheduledMembers(t, q)
	if len(z) != 2 {
		t.Fatalf("scheduled set holds %d members, want 2: %v", len(z), z)
	}
	for _, m := range z {
		nonce, rest, ok := strings.Cut(m.Member.(string), " ")
		if !ok || !validNonce(nonce) || rest != string(p) || int64(m.Score) != at.UnixMilli() {
			t.Fatalf("member %q score %v, want <nonce> %s at %d", m.Member, m.Score, p, at.UnixMilli())
		}
	}
	res, err := q.MoveDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res != (MoveResult{Moved: 2, Dead: 0, Next: -1}) {
		t.Fatalf("MoveDue = %+v, want 2 moved, nothing left", res)
	}
	s := snapshot(t, q)
	if !slices.Equal(s.pending, []string{string(p), string(p)}) {
		t.Fatalf("pending = %q, want the payload twice", s.pending)
	}
	ids := map[string]bool{}
	for range 2 {
		d, err := q.ClaimWith(ctx, ClaimOptions{Timeout: time.Second, AnyPayload: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Payload()) != string(p) {
			t.Fatalf("payload %q, want %q", d.Payload(), p)
		}
		ids[d.Event.ID] = true
		if err := q.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("two deliveries got ids %v, want two distinct", ids)
	}
}

// PublishAt keeps a future event out of pending (so KEDA starts no Job),
// and MoveDue says when it is due; an event at a past time is moved at once.
func TestPublishAtFutureAndPast(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	now := serverMs(t, rdb)
	later := time.UnixMilli(now + 3_600_000)
	evs, err := q.PublishAt(ctx, later, Event{ID: "later", Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].ID != "later" || evs[0].PublishedAt.IsZero() {
		t.Fatalf("PublishAt returned %+v", evs)
	}
	res, err := q.MoveDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 0 || res.Dead != 0 || res.Next <= 59*time.Minute || res.Next > time.Hour {
		t.Fatalf("MoveDue = %+v, want nothing moved, next due in just under 1h", res)
	}
	if n := rdb.LLen(ctx, q.pending).Val(); n != 0 {
		t.Fatalf("pending holds %d entries, want 0 before the due time", n)
	}
	z := scheduledMembers(t, q)
	if len(z) != 1 || int64(z[0].Score) != later.UnixMilli() {
		t.Fatalf("scheduled = %v, want one member at %d", z, later.UnixMilli())
	}
	_, payload, _ := strings.Cut(z[0].Member.(string), " ")
	if payload != string(evs[0].Marshal()) {
		t.Fatalf("scheduled payload %q, want %q", payload, evs[0].Marshal())
	}

	if _, err := q.PublishAt(ctx, time.UnixMilli(now-1000), Event{ID: "past", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	res, err = q.MoveDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 1 {
		t.Fatalf("MoveDue = %+v, want the past event moved", res)
	}
	d, err := q.Claim(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Event.ID != "past" || d.Attempt != 1 {
		t.Fatalf("claimed %s attempt %d, want past attempt 1", d.Event.ID, d.Attempt)
	}
}

// PublishIn's due time is Redis's TIME at the store plus the delay.
func TestPublishInUsesServerClock(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	before := serverMs(t, rdb)
	if err := q.PublishRawIn(ctx, 90*time.Second, []byte("x")); err != nil {
		t.Fatal(err)
	}
	after := serverMs(t, rdb)
	z := scheduledMembers(t, q)
	if len(z) != 1 {
		t.Fatalf("scheduled = %v", z)
	}
	if s := int64(z[0].Score); s < before+90_000 || s > after+90_000 {
		t.Fatalf("due %d, want server time + 90000 in [%d, %d]", s, before+90_000, after+90_000)
	}
}

// The mover reads members by the documented format: what Go writes
// (ScheduledMember) and what redis-cli users write move; anything else is
// dead-lettered whole with the format in the reason, never dropped.
func TestScheduledMemberFormat(t *testing.T) {
	long := strings.Repeat("n", 64)
	tests := []struct {
		member string
		moves  string // pending entry; "" = dead-lettered
	}{
		{"abc {\"wait\":1}", `{"wait":1}`},
		{"a-b_c.d:e x", "x"},
		{long + " y", "y"},
		{"n1 ", ""}, // valid nonce, empty payload: moved (then dead-lettered at claim as empty)
		{`{"wait": 3}`, ""},
		{"no-space", ""},
		{" leading", ""},
		{long + "n z", ""},
		{"bad/nonce z", ""},
		{"\xff\xfe z", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.member), func(t *testing.T) {
			q, rdb := newTestQueue(t)
			ctx := context.Background()
			if err := rdb.ZAdd(ctx, scheduledKey("events"), redis.Z{Score: 0, Member: tt.member}).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := q.MoveDue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			nonce, _, _ := strings.Cut(tt.member, " ")
			valid := strings.Contains(tt.member, " ") && validNonce(nonce)
			s := snapshot(t, q)
			if valid {
				_, want, _ := strings.Cut(tt.member, " ")
				if res != (MoveResult{Moved: 1, Next: -1}) || !slices.Equal(s.pending, []string{want}) || len(s.dead) != 0 {
					t.Fatalf("MoveDue = %+v, pending %q, dead %q; want moved as %q", res, s.pending, s.dead, want)
				}
				if tt.moves != want {
					t.Fatalf("table says %q, Go's validNonce says it moves as %q", tt.moves, want)
				}
				return
			}
			if tt.moves != "" {
				t.Fatalf("table says it moves, Go's validNonce refuses it")
			}
			if res != (MoveResult{Dead: 1, Next: -1}) || len(s.pending) != 0 || len(s.dead) != 1 {
				t.Fatalf("MoveDue = %+v, pending %q, dead %q; want it dead-lettered", res, s.pending, s.dead)
			}
			dl, err := parseDeadLetter(s.dead[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(dl.Payload) != tt.member || dl.Reason != scheduledFormat || dl.Attempts != 0 || dl.Size != len(tt.member) {
				t.Fatalf("dead letter %+v payload %q, want the member whole with the format as reason", dl, dl.Payload)
			}
			if s.counters["scheduled_dead"] != "1" || s.counters["dead"] != "1" {
				t.Fatalf("counters %v", s.counters)
			}
		})
	}
}

// Due events enter pending earliest due first (ties: by member bytes), at
// the back (behind what is already pending), so the earliest due is
// claimed first among them.
func TestMoveDueOrder(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	if err := rdb.LPush(ctx, q.pending, "already").Err(); err != nil {
		t.Fatal(err)
	}
	for _, z := range []redis.Z{{Score: 3, Member: "c third"}, {Score: 1, Member: "z first"}, {Score: 2, Member: "a second"}} {
		if err := rdb.ZAdd(ctx, scheduledKey("events"), z).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.MoveDue(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		v, err := rdb.RPop(ctx, q.pending).Result()
		if err == redis.Nil {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if want := []string{"already", "first", "second", "third"}; !slices.Equal(got, want) {
		t.Fatalf("consumed order %q, want %q", got, want)
	}
}

// Several movers at once (each its own connection) move every due member
// exactly once; batches bigger than moveBatch are all moved.
func TestConcurrentMoversMoveEachOnce(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	const n = 3*moveBatch + 17
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"i":%d}`, i))
	}
	if err := q.PublishRawAt(ctx, time.UnixMilli(0), payloads...); err != nil {
		t.Fatal(err)
	}
	const movers = 6
	var wg sync.WaitGroup
	moved := make([]int, movers)
	errs := make([]error, movers)
	for i := range movers {
		c := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr})
		t.Cleanup(func() { _ = c.Close() })
		mq, err := New(c, q.cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			res, err := mq.MoveDue(ctx)
			moved[i], errs[i] = res.Moved, err
		})
	}
	wg.Wait()
	total := 0
	for i := range movers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += moved[i]
	}
	if total != n {
		t.Fatalf("movers report %d moved, want %d", total, n)
	}
	s := snapshot(t, q)
	if len(s.pending) != n {
		t.Fatalf("pending holds %d, want %d", len(s.pending), n)
	}
	seen := map[string]int{}
	for _, e := range s.pending {
		seen[e]++
	}
	for _, p := range payloads {
		if seen[string(p)] != 1 {
			t.Fatalf("%s is pending %d times, want once", p, seen[string(p)])
		}
	}
	if s.counters["scheduled_moved"] != fmt.Sprint(n) {
		t.Fatalf("counters %v", s.counters)
	}
	if z := scheduledMembers(t, q); len(z) != 0 {
		t.Fatalf("%d members left scheduled", len(z))
	}
}

// PublishRawAt refuses what PublishRaw refuses, and stores nothing of the
// call.
func TestPublishRawAtRefuses(t *testing.T) {
	q, _ := newTestQueue(t, func(c *Config) { c.MaxPayloadBytes = 64 })
	ctx := context.Background()
	err := q.PublishRawAt(ctx, time.Now(), []byte("ok"), []byte(strings.Repeat("x", 65)))
	want := "payload too large: payload 2 of 2 is 65 bytes, above MAX_PAYLOAD_BYTES (64); store large data elsewhere and publish a reference"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	err = q.PublishRawIn(ctx, time.Second, []byte("rkq1 {}\nx"))
	if err == nil || !strings.Contains(err.Error(), `payload 1 of 1 starts with "rkq1 "`) {
		t.Fatalf("err = %v", err)
	}
	if z := scheduledMembers(t, q); len(z) != 0 {
		t.Fatalf("scheduled %v, want nothing", z)
	}
}

// Everything that shows the queue shows the scheduled set: Snapshot
// (count, overdue, oldest overdue due time), Peek (earliest due first, with
// due times), RedriveScheduled by id (made due now, moved by the mover,
// attempts kept), RedriveScheduledAll, Purge.
func TestScheduledAdmin(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	now := serverMs(t, rdb)
	past := time.UnixMilli(now - 5000)
	if _, err := q.PublishAt(ctx, past, Event{ID: "late", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	a, err := q.PublishAt(ctx, time.UnixMilli(now+3_600_000), Event{ID: "a", Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.PublishAt(ctx, time.UnixMilli(now+7_200_000), Event{ID: "b", Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.PublishRawAt(ctx, time.UnixMilli(now+10_800_000), []byte("raw"), []byte("raw")); err != nil {
		t.Fatal(err)
	}
	s, err := q.Snapshot(ctx, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Scheduled != 5 || s.Overdue != 1 || !s.OldestOverdue.Equal(past) || s.Pending != 0 {
		t.Fatalf("snapshot scheduled %d overdue %d oldest %v pending %d; want 5, 1, %v, 0", s.Scheduled, s.Overdue, s.OldestOverdue, s.Pending, past)
	}
	if age, _ := s.Age(s.OldestOverdue); age < 5*time.Second {
		t.Fatalf("oldest overdue age %s, want at least 5s", age)
	}
	es, err := q.Peek(ctx, LocScheduled, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%d %s %d %s %d", e.Position, e.ID, e.DueAt.UnixMilli()-now, e.Payload, e.Attempts))
	}
	want := []string{
		fmt.Sprintf("1 late -5000 %s 0", mustEvent(t, q, "late")),
		fmt.Sprintf("2 a 3600000 %s 0", a[0].Marshal()),
		fmt.Sprintf("3 b 7200000 %s 0", b[0].Marshal()),
		"4  10800000 raw 0", "5  10800000 raw 0",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("peek scheduled\n got %q\nwant %q", got, want)
	}
	sel, _ := ParseSelector("b")
	moved, err := q.RedriveScheduled(ctx, []Selector{sel})
	if err != nil || len(moved) != 1 || moved[0].ID != "b" {
		t.Fatalf("RedriveScheduled(b) = %+v, %v", moved, err)
	}
	if res, err := q.MoveDue(ctx); err != nil || res.Moved != 2 {
		t.Fatalf("MoveDue = %+v, %v; want late and b", res, err)
	}
	if p := rdb.LRange(ctx, q.pending, 0, -1).Val(); len(p) != 2 || p[0] != string(b[0].Marshal()) {
		t.Fatalf("pending %q, want b at the back after late", p)
	}
	if n, err := q.RedriveScheduledAll(ctx); err != nil || n != 3 {
		t.Fatalf("RedriveScheduledAll = %d, %v; want 3", n, err)
	}
	s, _ = q.Snapshot(ctx, SnapshotOptions{})
	if s.Scheduled != 3 || s.Overdue != 3 || s.Counters["scheduled_redriven"] != 4 {
		t.Fatalf("after redrive all: scheduled %d overdue %d counters %v", s.Scheduled, s.Overdue, s.Counters)
	}
	if n, err := q.Purge(ctx, LocScheduled); err != nil || n != 3 {
		t.Fatalf("Purge(scheduled) = %d, %v", n, err)
	}
	s, _ = q.Snapshot(ctx, SnapshotOptions{})
	if s.Scheduled != 0 || s.Counters["purged_scheduled"] != 3 || !s.OldestOverdue.IsZero() {
		t.Fatalf("after purge: %+v", s)
	}
}

// mustEvent is the payload of the scheduled event with that id.
func mustEvent(t *testing.T, q *Queue, id string) string {
	t.Helper()
	for _, z := range scheduledMembers(t, q) {
		_, p, _ := strings.Cut(z.Member.(string), " ")
		if strings.Contains(p, `"id":"`+id+`"`) {
			return p
		}
	}
	t.Fatalf("no scheduled event %s", id)
	return ""
}
