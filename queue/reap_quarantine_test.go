package queue

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// One unreadable claim list (its first element is not a delivery header)
// among expired good ones: the reaper rescues the good ones exactly,
// quarantines the corrupt one — every element in the dead list byte for
// byte, with UnreadableClaimReason —, forgets its lease, and inspect keeps
// working. Before, cjson.decode failed the whole batch at every run, and
// inspect exited 1.
func TestReaperQuarantinesAnUnreadableClaim(t *testing.T) {
	q, rdb := newTestQueue(t) // lease 1 s, MaxAttempts 3
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"id":"g1","wait":1}`), []byte(`{"id":"g2","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	g1, g2 := claim(t, q), claim(t, q)
	if err := q.PublishRaw(ctx, []byte(`{"id":"g3","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	g3 := orphan(t, q, -time.Second) // claimed, never leased, due

	// The corrupt claim list: "not a header", then an entry that is not
	// UTF-8, registered and leased long ago.
	const bad = "corrupt-token"
	elems := []string{"not a header", "\xff\x00{\"id\":\"x\"}"}
	if err := rdb.RPush(ctx, q.claimPrefix+bad, elems[0], elems[1]).Err(); err != nil {
		t.Fatal(err)
	}
	past := float64(time.Now().Add(-time.Hour).UnixMilli())
	if err := rdb.ZAdd(ctx, q.leases, redis.Z{Score: past, Member: bad}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, q.claimed, redis.Z{Score: past, Member: bad}).Err(); err != nil {
		t.Fatal(err)
	}

	// inspect and peek work while it is there.
	if got, err := q.Find(ctx, sel(t, "g1")); err != nil || len(got) != 1 || got[0].Location != LocProcessing {
		t.Fatalf("inspect g1 with an unreadable claim list present: %+v, %v", got, err)
	}
	proc, err := q.Peek(ctx, LocProcessing, 10)
	if err != nil || len(proc) != 3 {
		t.Fatalf("peek processing: %d entries, %v", len(proc), err)
	}
	var shown bool
	for _, e := range proc {
		if e.Token == bad {
			shown = strings.HasPrefix(e.Reason, "unreadable claim list (2 elements")
		}
	}
	if !shown {
		t.Errorf("peek processing does not show the unreadable claim list with its reason: %+v", proc)
	}

	time.Sleep(1100 * time.Millisecond) // g1's and g2's leases expire
	res, err := q.Reap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReapResult{Requeued: 2, Rescued: 1, Dead: 2, Unreadable: 1}); moved(res) != want {
		t.Errorf("reap = %+v, want %+v", moved(res), want)
	}
	s := snapshot(t, q)
	var pending []string
	for _, e := range s.pending {
		p, h := payloadOf(t, e)
		pending = append(pending, fmt.Sprintf("%s attempts=%d", p, h.Attempts))
	}
	// Each back in pending once, with the delivery counted (the order of g1
	// and g2 follows their deadlines, which may be the same millisecond).
	sort.Strings(pending)
	wantPending := []string{
		`{"id":"g1","wait":1} attempts=1`,
		`{"id":"g2","wait":1} attempts=1`,
		`{"id":"g3","wait":1} attempts=1`,
	}
	if !reflect.DeepEqual(pending, wantPending) {
		t.Errorf("pending %q, want %q", pending, wantPending)
	}
	_, _, _ = g1, g2, g3 // g1 and g2 leased, g3 claimed only
	if len(s.dead) != 2 {
		t.Fatalf("dead list holds %d records, want the 2 elements", len(s.dead))
	}
	for i, rec := range s.dead { // newest first: element 2 is at the head
		j := 2 - i
		dl, err := parseDeadLetter(rec)
		if err != nil {
			t.Fatal(err)
		}
		wantReason := fmt.Sprintf(UnreadableClaimReason, bad, j, 2)
		if string(dl.Payload) != elems[j-1] || dl.Reason != wantReason || dl.Size != len(elems[j-1]) {
			t.Errorf("dead letter %d: payload %q reason %q size %d, want %q %q %d", i, dl.Payload, dl.Reason, dl.Size, elems[j-1], wantReason, len(elems[j-1]))
		}
	}
	if n := rdb.Exists(ctx, q.claimPrefix+bad).Val(); n != 0 || len(s.leases) != 0 || len(s.claimed) != 0 {
		t.Errorf("after the reap: claim list exists=%d, leases %v, claimed %v", n, s.leases, s.claimed)
	}
	if s.counters["dead"] != "2" || s.counters["reaped_dead"] != "2" {
		t.Errorf("counters %v: want dead 2, reaped_dead 2", s.counters)
	}
	if got, err := q.Find(ctx, sel(t, "g1")); err != nil || len(got) != 1 || got[0].Location != LocPending {
		t.Errorf("inspect g1 after the reap: %+v, %v", got, err)
	}
}
