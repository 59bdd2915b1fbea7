package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// deadLetters makes dead letters of each payload the way a job does: claim
// it; it is invalid, so the claim script dead-letters it.
func deadLetters(t *testing.T, q *Queue, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := q.PublishRaw(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Claim(context.Background(), time.Second); !errors.Is(err, ErrInvalidEvent) {
			t.Fatalf("claim of %q: %v, want an invalid event", p, err)
		}
	}
}

func redisNow(t *testing.T, rdb *redis.Client) time.Time {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func TestSnapshot(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.LeaseDuration = 30 * time.Second })
	ctx := context.Background()

	empty, err := q.Snapshot(ctx, SnapshotOptions{OldestDead: true})
	if err != nil {
		t.Fatal(err)
	}
	zero := map[string]int64{}
	for _, n := range CounterNames() {
		zero[n] = 0
	}
	if empty.Pending+empty.Processing+empty.Claiming+empty.Dead+empty.LeasesExpired+empty.LeasesExpiring != 0 ||
		!empty.OldestPending.IsZero() || empty.OldestPendingUnknown || !empty.OldestProcessing.IsZero() || !empty.OldestDead.IsZero() ||
		!reflect.DeepEqual(empty.Counters, zero) || empty.ExpiringWithin != 15*time.Second {
		t.Fatalf("empty queue: %+v", empty)
	}

	deadLetters(t, q, `not json`, `{"wait":"soon"}`)
	now := redisNow(t, rdb)
	old := now.Add(-90 * time.Second).UTC().Truncate(time.Millisecond)
	// The oldest pending event (rightmost) was published 90 s ago; the
	// newer ones have no timestamp.
	if err := q.PublishRaw(ctx, []byte(fmt.Sprintf(`{"id":"a","published_at":%q,"wait":1}`, old.Format(time.RFC3339Nano)))); err != nil {
		t.Fatal(err)
	}
	if err := q.PublishRaw(ctx, []byte(`{"id":"b","wait":1}`), []byte(`{"id":"c","wait":1}`), []byte(`{"id":"d","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	// Pending is d c b a: LPUSH puts each at the head, the tail (next to
	// claim) is a.
	d := claim(t, q) // a: in flight
	if d.Event.ID != "a" {
		t.Fatalf("claimed %s, want a", d.Event.ID)
	}
	orphan(t, q, -time.Second)  // b: claimed, never leased, already past its deadline
	orphan(t, q, 5*time.Second) // c: claimed, never leased, deadline in 5 s
	_ = rdb.HIncrBy(ctx, q.counters, "acked", 7).Err()

	s, err := q.Snapshot(ctx, SnapshotOptions{ExpiringWithin: 10 * time.Second, OldestDead: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 1 || s.Processing != 1 || s.Claiming != 2 || s.Dead != 2 {
		t.Errorf("lengths pending %d processing %d claiming %d dead %d, want 1 1 2 2", s.Pending, s.Processing, s.Claiming, s.Dead)
	}
	if s.LeasesExpired != 1 || s.LeasesExpiring != 1 || s.ExpiringWithin != 10*time.Second {
		t.Errorf("leases expired %d expiring %d within %s, want 1 1 10s", s.LeasesExpired, s.LeasesExpiring, s.ExpiringWithin)
	}
	// d, the next pending event, has no published_at.
	if !s.OldestPending.IsZero() || !s.OldestPendingUnknown {
		t.Errorf("oldest pending %v unknown=%v, want zero and unknown", s.OldestPending, s.OldestPendingUnknown)
	}
	if age, ok := s.Age(s.OldestProcessing); !ok || age < 0 || age > 2*time.Second {
		t.Errorf("oldest in flight age %s (%v), want 0..2s", age, ok)
	}
	if age, ok := s.Age(s.OldestDead); !ok || age < 0 || age > 5*time.Second {
		t.Errorf("oldest dead age %s (%v), want 0..5s", age, ok)
	}
	want := map[string]int64{}
	for k, v := range zero {
		want[k] = v
	}
	want["dead"], want["acked"] = 2, 7
	if !reflect.DeepEqual(s.Counters, want) {
		t.Errorf("counters %v, want %v", s.Counters, want)
	}

	// With a timestamped event next in line, its age is known.
	if _, err := q.Nack(ctx, d, "x"); err != nil { // a goes to the back (head) in an envelope
		t.Fatal(err)
	}
	if err := rdb.RPop(ctx, q.pending).Err(); err != nil { // drop d: a is next
		t.Fatal(err)
	}
	s, err = q.Snapshot(ctx, SnapshotOptions{OldestDead: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.OldestPending.Equal(old) || s.OldestPendingUnknown {
		t.Errorf("oldest pending %v unknown=%v, want %v (published_at inside the envelope)", s.OldestPending, s.OldestPendingUnknown, old)
	}
	if age, _ := s.Age(s.OldestPending); age < 90*time.Second || age > 95*time.Second {
		t.Errorf("oldest pending age %s, want 90..95s", age)
	}
}

// A scrape must not read a huge oldest entry: Redis cuts it to 4 KiB.
func TestSnapshotReadsABoundedPrefix(t *testing.T) {
	srv := redistest.Start(t)
	q, rdb := newQueueOn(t, srv.Client())
	ctx := context.Background()
	big := append([]byte(`{"id":"big","published_at":"2026-01-02T03:04:05Z","pad":"`), bytes.Repeat([]byte("x"), 16<<20)...)
	big = append(big, `"}`...)
	if err := rdb.LPush(ctx, q.pending, big).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.LPush(ctx, q.dead, deadRecord("", "r", 1, big)).Err(); err != nil {
		t.Fatal(err)
	}
	out0 := netOutput(t, rdb)
	s, err := q.Snapshot(ctx, SnapshotOptions{OldestDead: true})
	if err != nil {
		t.Fatal(err)
	}
	sent := netOutput(t, rdb) - out0
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !s.OldestPending.Equal(want) {
		t.Errorf("oldest pending %v, want %v", s.OldestPending, want)
	}
	if s.OldestDead.IsZero() {
		t.Error("oldest dead_at not read from the record's prefix")
	}
	if sent > 12<<10 {
		t.Errorf("Redis sent %d bytes for a snapshot with a 16 MiB oldest entry, want < 12 KiB", sent)
	}
	t.Logf("snapshot with 16 MiB oldest pending and dead entries: Redis sent %d bytes", sent)
}

func netOutput(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO")
	return 0
}

func TestPeekAndFind(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.LeaseDuration = 30 * time.Second })
	ctx := context.Background()
	deadLetters(t, q, "not json \xff", `{"id":"poison","wait":"soon"}`)
	if err := q.PublishRaw(ctx, []byte(`{"id":"e1","wait":1}`), []byte(`{"id":"e2","wait":2}`), []byte(`{"wait":3}`)); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q) // e1
	if d.Event.ID != "e1" {
		t.Fatalf("claimed %s", d.Event.ID)
	}
	tok := orphan(t, q, time.Minute) // e2: claimed, not leased

	pending, err := q.Peek(ctx, LocPending, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != "" || string(pending[0].Payload) != `{"wait":3}` || pending[0].Position != 1 ||
		pending[0].Attempts != 0 || pending[0].Size != 10 || pending[0].Ref != "@"+sha1hex(`{"wait":3}`)[:12] {
		t.Errorf("peek pending = %+v", pending)
	}
	proc, err := q.Peek(ctx, LocProcessing, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(proc) != 1 || proc[0].ID != "e1" || proc[0].Token != d.Token || proc[0].Attempts != 1 || string(proc[0].Payload) != `{"id":"e1","wait":1}` ||
		proc[0].Location != LocProcessing || proc[0].LeaseDeadline.Sub(proc[0].ClaimedAt) != 30*time.Second {
		t.Errorf("peek processing = %+v", proc)
	}
	dead, err := q.Peek(ctx, LocDead, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].ID != "poison" || dead[0].Position != 1 || !strings.HasPrefix(dead[0].Reason, `field "wait" is "soon"`) ||
		dead[1].ID != "" || string(dead[1].Payload) != "not json \xff" || dead[1].Position != 2 || dead[1].Attempts != 1 {
		t.Errorf("peek dead = %+v", dead)
	}
	if got, err := q.Peek(ctx, LocDead, 1); err != nil || len(got) != 1 || got[0].ID != "poison" {
		t.Errorf("peek dead -n 1 = %+v, %v", got, err)
	}

	for _, tc := range []struct {
		sel   string
		where []Location
	}{
		{"e1", []Location{LocProcessing}},
		{"e2", []Location{LocClaimed}},
		{"poison", []Location{LocDead}},
		{pending[0].Ref, []Location{LocPending}},
		{strings.ToUpper(dead[1].Ref[:8]), []Location{LocDead}},
		{"nothing", nil},
	} {
		got, err := q.Find(ctx, sel(t, tc.sel))
		if err != nil {
			t.Fatalf("find %s: %v", tc.sel, err)
		}
		var where []Location
		for _, e := range got {
			where = append(where, e.Location)
			if e.Truncated {
				t.Errorf("find %s: payload truncated", tc.sel)
			}
		}
		if !reflect.DeepEqual(where, tc.where) {
			t.Errorf("find %s: in %v, want %v", tc.sel, where, tc.where)
		}
	}
	if got, _ := q.Find(ctx, sel(t, "e2")); len(got) == 1 && (got[0].Token != tok || got[0].Attempts != 1 || got[0].LeaseDeadline.IsZero()) {
		t.Errorf("claimed entry %+v", got[0])
	}
	for _, bad := range []string{"", "@", "@abc", "@xyz123", "@" + strings.Repeat("a", 41)} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("selector %q: no error", bad)
		}
	}
	_ = rdb
}

// A payload above the scan prefix is named by Redis and fetched whole only
// when asked for.
func TestFindLargePayloads(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxPayloadBytes = 1 << 20 })
	ctx := context.Background()
	big := append([]byte(`{"id":"big","wait":1,"pad":"`), bytes.Repeat([]byte("é"), 100<<10)...)
	big = append(big, `"}`...)
	if err := rdb.LPush(ctx, q.pending, big).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.LPush(ctx, q.dead, deadRecord("bigdead", "r", 1, big)).Err(); err != nil {
		t.Fatal(err)
	}
	peek, err := q.Peek(ctx, LocDead, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(peek) != 1 || !peek[0].Truncated || peek[0].ID != "bigdead" || peek[0].Size != len(big) || !bytes.HasPrefix(big, peek[0].Payload) || len(peek[0].Payload) < 60<<10 {
		t.Errorf("peek of a large dead letter: id %q size %d truncated %v payload %d bytes", peek[0].ID, peek[0].Size, peek[0].Truncated, len(peek[0].Payload))
	}
	if s, ok := peek[0].PayloadText(); !ok || !strings.HasPrefix(string(big), s) {
		t.Error("a cut UTF-8 payload is not shown as text")
	}
	for _, id := range []string{"big", "bigdead"} {
		got, err := q.Find(ctx, sel(t, id))
		if err != nil || len(got) != 1 || !bytes.Equal(got[0].Payload, big) || got[0].Truncated {
			t.Errorf("find %s: %d entries, %v", id, len(got), err)
		}
	}
}

func TestRedrive(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxPayloadBytes = 100; c.MaxAttempts = 2 })
	ctx := context.Background()
	// Dead letters of every kind: Go-written (invalid JSON, invalid UTF-8 as
	// payload_base64, an id), Lua-written by the reaper (expired lease on the
	// last attempt), and one above MAX_PAYLOAD_BYTES.
	binary := "\xff\x00{\"wait\": 1}\x80"
	deadLetters(t, q, `{"id":"x1","wait":"soon"}`, binary, `plain <text> & "quotes" / é`)
	if err := q.PublishRaw(ctx, []byte(`{"id":"r1","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // two deliveries whose leases expire: the second is the last
		claim(t, q)
		time.Sleep(1100 * time.Millisecond)
		if _, err := q.Reap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	huge := `{"id":"huge","wait":1,"pad":"` + strings.Repeat("x", 200) + `"}`
	if err := rdb.LPush(ctx, q.dead, deadRecord("huge", "r", 1, []byte(huge))).Err(); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Peek(ctx, LocDead, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 5 || dead[1].ID != "r1" || !strings.HasPrefix(dead[1].Reason, "lease expired") {
		t.Fatalf("dead list %+v", dead)
	}
	binRef := dead[3].Ref
	if string(dead[3].Payload) != binary {
		t.Fatalf("dead[3] = %q", dead[3].Payload)
	}

	// Bad arguments change nothing.
	before := snapshot(t, q)
	for _, tc := range []struct {
		sels []string
		want error
	}{
		{[]string{"x1", "nope"}, ErrNotFound},
		{[]string{"@000000"}, ErrNotFound},
		{[]string{"x1", "huge"}, ErrRedriveRefused},
	} {
		_, err := q.Redrive(ctx, sels(t, tc.sels...), false)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("redrive %v: %v, want %v", tc.sels, err, tc.want)
		}
		if after := snapshot(t, q); !reflect.DeepEqual(before, after) {
			t.Fatalf("redrive %v changed the queue", tc.sels)
		}
	}
	res, err := q.Redrive(ctx, sels(t, "x1", binRef, "r1"), true)
	if err != nil || len(res.Moved) != 3 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if after := snapshot(t, q); !reflect.DeepEqual(before, after) {
		t.Fatal("a dry run changed the queue")
	}

	res, err = q.Redrive(ctx, sels(t, "x1", binRef, "r1"), false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range res.Moved {
		ids = append(ids, label(e))
	}
	if len(res.Moved) != 3 || len(res.Gone) != 0 || res.Moved[0].ID != "x1" || res.Moved[2].ID != "r1" {
		t.Errorf("moved %v gone %d, want x1, the binary one, r1 (oldest first)", ids, len(res.Gone))
	}
	after := snapshot(t, q)
	// Byte for byte, no envelope, in the order they died: LPUSHed oldest
	// first, so the oldest is claimed first.
	wantPending := []string{`{"id":"r1","wait":1}`, binary, `{"id":"x1","wait":"soon"}`}
	if !reflect.DeepEqual(after.pending, wantPending) {
		t.Errorf("pending %q, want %q", after.pending, wantPending)
	}
	if len(after.dead) != 2 || after.counters["redriven"] != "3" {
		t.Errorf("dead %d, redriven %q; want 2 and 3", len(after.dead), after.counters["redriven"])
	}
	// Attempts start again: the two invalid ones die again on their first
	// delivery, r1 (which died on its second) is delivered as attempt 1.
	for _, id := range []string{"x1", ""} {
		_, err := q.Claim(ctx, time.Second)
		var inv *InvalidEventError
		if !errors.As(err, &inv) {
			t.Fatalf("claim of redriven %q: %v, want invalid again", id, err)
		}
	}
	again, err := q.Peek(ctx, LocDead, 2)
	if err != nil || len(again) != 2 || again[0].Attempts != 1 || again[1].Attempts != 1 || again[1].ID != "x1" {
		t.Errorf("dead again: %+v, %v; want attempts 1 each", again, err)
	}
	if d := claim(t, q); d.Event.ID != "r1" || d.Attempt != 1 {
		t.Errorf("redriven event %s delivered as attempt %d, want r1 as attempt 1", d.Event.ID, d.Attempt)
	}
	// r1 is in flight, not dead: nothing to redrive under its id.
	if _, err := q.Redrive(ctx, sels(t, "r1"), false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second redrive of r1: %v", err)
	}
}

func TestRedriveAll(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxPayloadBytes = 100 })
	ctx := context.Background()
	var want []string
	for i := range 250 {
		p := fmt.Sprintf(`{"n":%d}`, i)
		rec := deadRecord("", "r", 1, []byte(p))
		if i == 7 || i == 140 {
			p = fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("y", 120))
			rec = deadRecord("", "r", 1, []byte(p))
		} else {
			want = append([]string{p}, want...)
		}
		if err := rdb.LPush(ctx, q.dead, rec).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.LPush(ctx, q.dead, `{"not a dead letter"`).Err(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, q)
	dry, err := q.RedriveAll(ctx, true)
	if err != nil || len(dry.Moved) != 248 || len(dry.Skipped) != 3 {
		t.Fatalf("dry run: moved %d skipped %d, %v", len(dry.Moved), len(dry.Skipped), err)
	}
	if !reflect.DeepEqual(before, snapshot(t, q)) {
		t.Fatal("a dry run changed the queue")
	}
	res, err := q.RedriveAll(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Moved) != 248 || len(res.Skipped) != 3 || len(res.Gone) != 0 {
		t.Fatalf("moved %d skipped %d gone %d", len(res.Moved), len(res.Skipped), len(res.Gone))
	}
	after := snapshot(t, q)
	if !reflect.DeepEqual(after.pending, want) {
		t.Errorf("pending holds %d entries, not the 248 payloads oldest-first", len(after.pending))
	}
	if len(after.dead) != 3 || after.counters["redriven"] != "248" {
		t.Errorf("dead %d redriven %s", len(after.dead), after.counters["redriven"])
	}
	if !strings.Contains(res.Skipped[0].Reason, "above MAX_PAYLOAD_BYTES (100)") || !strings.Contains(res.Skipped[2].Reason, "not JSON") {
		t.Errorf("skip reasons %q / %q", res.Skipped[0].Reason, res.Skipped[2].Reason)
	}
}

func TestPurge(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	deadLetters(t, q, "a", "b")
	if err := q.PublishRaw(ctx, []byte(`{"wait":1}`), []byte(`{"wait":1}`), []byte(`{"wait":1}`)); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	if n, err := q.Purge(ctx, LocDead); n != 2 || err != nil {
		t.Errorf("purge dead = %d, %v", n, err)
	}
	if n, err := q.Purge(ctx, LocPending); n != 2 || err != nil {
		t.Errorf("purge pending = %d, %v", n, err)
	}
	if n, err := q.Purge(ctx, LocPending); n != 0 || err != nil {
		t.Errorf("purge of an empty list = %d, %v", n, err)
	}
	if _, err := q.Purge(ctx, LocProcessing); err == nil {
		t.Error("purge processing: no error")
	}
	s := snapshot(t, q)
	if c := s.counts(); c != [3]int{0, 1, 0} || s.counters["purged_dead"] != "2" || s.counters["purged_pending"] != "2" {
		t.Errorf("after purges: counts %v counters %v", c, s.counters)
	}
	if err := q.Ack(ctx, d); err != nil { // in flight is untouched
		t.Error(err)
	}
}

// The documented application ACL user can run every operator command.
func TestDocumentedACLUserCanOperate(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	for _, args := range aclCommands(t, map[string]string{"APP_PASSWORD": "app-pw", "KEDA_PASSWORD": "keda-pw"}) {
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	app := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "redis-keda", Password: "app-pw"})
	defer app.Close()
	q, _ := newQueueOn(t, app, func(c *Config) { c.LeaseDuration = 30 * time.Second; c.MaxPayloadBytes = 4 << 20 })
	deadLetters(t, q, `{"id":"d1"}`, `{"id":"d2"}`)
	// A dead letter above redriveBatchBytes is redriven by a transaction
	// (WATCH, MULTI, EXEC), not a script.
	large := `{"id":"large","wait":1,"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	if err := admin.LPush(ctx, q.dead, deadRecord("large", "r", 1, []byte(large))).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Publish(ctx, Event{ID: "p1", Wait: time.Second}, Event{ID: "p2", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	claim(t, q)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the documented app user: %v", what, err)
		}
	}
	_, err := q.Snapshot(ctx, SnapshotOptions{OldestDead: true})
	must("snapshot", err)
	for _, loc := range []Location{LocPending, LocProcessing, LocDead} {
		_, err := q.Peek(ctx, loc, 10)
		must("peek "+string(loc), err)
	}
	_, err = q.Find(ctx, sel(t, "p2"))
	must("find", err)
	_, err = q.Redrive(ctx, sels(t, "d1"), false)
	must("redrive", err)
	res, err := q.Redrive(ctx, sels(t, "large"), false)
	must("redrive of a large dead letter", err)
	if len(res.Moved) != 1 || admin.LIndex(ctx, q.pending, 0).Val() != large {
		t.Fatalf("redrive of a large dead letter: moved %d, pending head is not its payload", len(res.Moved))
	}
	_, err = q.RedriveAll(ctx, false)
	must("redrive all", err)
	_, err = q.Purge(ctx, LocDead)
	must("purge dead", err)
	_, err = q.Purge(ctx, LocPending)
	must("purge pending", err)
}

// Two operators redriving everything at once: every dead letter moves
// exactly once (each move re-checks, in its script, that the record is still
// there).
func TestConcurrentRedrivesMoveEachDeadLetterOnce(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	want := map[string]int{}
	for i := range 500 {
		p := fmt.Sprintf(`{"n":%d}`, i)
		want[p]++
		if err := rdb.LPush(ctx, q.dead, deadRecord("", "r", 1, []byte(p))).Err(); err != nil {
			t.Fatal(err)
		}
	}
	results := make(chan RedriveResult, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			res, err := q.RedriveAll(ctx, false)
			results <- res
			errs <- err
		}()
	}
	moved, gone := 0, 0
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		r := <-results
		moved += len(r.Moved)
		gone += len(r.Gone)
	}
	got := map[string]int{}
	for _, p := range rdb.LRange(ctx, q.pending, 0, -1).Val() {
		got[p]++
	}
	if !reflect.DeepEqual(got, want) || moved != 500 || rdb.LLen(ctx, q.dead).Val() != 0 || rdb.HGet(ctx, q.counters, "redriven").Val() != "500" {
		t.Errorf("pending holds %d distinct payloads (want 500 once each), moved %d (gone %d), dead %d, redriven %s",
			len(got), moved, gone, rdb.LLen(ctx, q.dead).Val(), rdb.HGet(ctx, q.counters, "redriven").Val())
	}
	t.Logf("two concurrent redrives: %d moved, %d found gone by the other's script", moved, gone)
}
