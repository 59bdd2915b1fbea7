package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inspect lists every pending entry of an id exactly once while producers
// LPUSH (which shifted the old index pages: an entry was listed twice) and a
// consumer takes entries from the tail (which shifts indexes from the tail:
// the pages follow them). Each of the 1000 target entries still pending at
// the end is listed exactly once; none is listed twice.
func TestFindScansStablyWhileTheListMoves(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if err := rdb.LPush(ctx, q.pending, fmt.Sprintf(`{"id":"target","n":%d}`, i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pusher := q.rdb // another connection of the pool

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pushed, popped atomic.Int64
	var mu sync.Mutex
	gone := map[int]bool{} // targets the consumer took
	wg.Add(2)
	go func() { // producers
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if pusher.LPush(ctx, q.pending, fmt.Sprintf(`{"id":"noise-%d","wait":1}`, i)).Err() == nil {
				pushed.Add(1)
			}
		}
	}()
	go func() { // a consumer taking one entry every few pushes
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if pushed.Load() < 20*(popped.Load()+1) {
				continue
			}
			p, err := pusher.RPop(ctx, q.pending).Result()
			if err != nil {
				continue
			}
			popped.Add(1)
			var v struct {
				ID string `json:"id"`
				N  int    `json:"n"`
			}
			if json.Unmarshal([]byte(p), &v) == nil && v.ID == "target" {
				mu.Lock()
				gone[v.N] = true
				mu.Unlock()
			}
		}
	}()
	for pushed.Load() < 50 { // the control arm: the list is moving
	}
	before := pushed.Load()
	found, err := q.Find(ctx, sel(t, "target"))
	during := pushed.Load() - before
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if during == 0 || popped.Load() == 0 {
		t.Fatalf("the list did not move during the scan (%d pushed, %d taken): the test proves nothing", during, popped.Load())
	}
	listed := map[int]int{}
	for _, e := range found {
		var v struct{ N int }
		if err := json.Unmarshal(e.Payload, &v); err != nil || e.Location != LocPending {
			t.Fatalf("found %s %q: %v", e.Location, e.Payload, err)
		}
		listed[v.N]++
	}
	for i := range n {
		switch {
		case listed[i] > 1:
			t.Errorf("target %d listed %d times", i, listed[i])
		case listed[i] == 0 && !gone[i]:
			t.Errorf("target %d is still pending but was not listed", i)
		}
	}
	t.Logf("inspect of %d pending targets while %d entries were pushed and %d taken: %d listed, %d taken before the scan reached them",
		n, during, popped.Load(), len(found), n-len(found))
}

// The page script's anchor, deterministically: pages continue after the
// previous page's last entry when consumers took entries from the tail
// (even the anchor itself: then everything before it went too), when the
// reaper put one back at the tail, and refuse (ErrListMoved) when the
// anchor vanished from the middle of a list consumers do not take from.
func TestListPageFollowsItsAnchor(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	payloads := func(raws []rawEntry) []string {
		var out []string
		for _, r := range raws {
			out = append(out, r.prefix)
		}
		return out
	}
	fill := func(key string, n int) {
		t.Helper()
		rdb.Del(ctx, key)
		for i := range n {
			if err := rdb.LPush(ctx, key, fmt.Sprintf("e%d", i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	page := func(key string, first int64, anchor string) ([]string, error) {
		t.Helper()
		_, raws, _, err := q.listPage(ctx, key, first, -1, 3, scanPrefix, anchor)
		return payloads(raws), err
	}
	sum := func(s string) string { return sha1hex(s) }

	// Pending e0 (tail) .. e9; the first page read e0 e1 e2.
	for _, tc := range []struct {
		name   string
		change func()
		want   []string
	}{
		{"nothing moved", func() {}, []string{"e3", "e4", "e5"}},
		{"producers pushed", func() { rdb.LPush(ctx, q.pending, "new1", "new2") }, []string{"e3", "e4", "e5"}},
		{"a consumer took 2", func() { rdb.RPop(ctx, q.pending); rdb.RPop(ctx, q.pending) }, []string{"e3", "e4", "e5"}},
		{"a consumer took the anchor", func() { rdb.RPopCount(ctx, q.pending, 3) }, []string{"e3", "e4", "e5"}},
		{"the reaper put one back", func() { rdb.RPush(ctx, q.pending, "back") }, []string{"e3", "e4", "e5"}},
	} {
		fill(q.pending, 10)
		tc.change()
		got, err := page(q.pending, -4, sum("e2"))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: next page %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// The dead list: an anchor removed from the middle (a redrive) is an
	// error, not a restart that would list entries twice.
	fill(q.dead, 10)
	rdb.LRem(ctx, q.dead, 1, "e2")
	if got, err := page(q.dead, -4, sum("e2")); !errors.Is(err, ErrListMoved) {
		t.Errorf("dead list without its anchor: %q, %v; want ErrListMoved", got, err)
	}
}

// Pages are bounded in bytes as well as in entries: 30 deliveries in flight
// of 100 KiB each take more than one claims script (64 KiB of each, 1 MiB per
// reply), and peek processing still lists all 30, and inspect
// finds each.
func TestClaimsPagesAreBoundedInBytes(t *testing.T) {
	q, _ := newTestQueue(t, func(c *Config) { c.LeaseDuration = time.Minute })
	ctx := context.Background()
	pad := strings.Repeat("p", 100<<10)
	for i := range 30 {
		if err := q.PublishRaw(ctx, []byte(fmt.Sprintf(`{"id":"f%02d","wait":1,"pad":%q}`, i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	for range 30 {
		claim(t, q)
	}
	es, err := q.Peek(ctx, LocProcessing, 30)
	if err != nil || len(es) != 30 {
		t.Fatalf("peek processing: %d entries, %v", len(es), err)
	}
	ids := map[string]bool{}
	for i, e := range es {
		ids[e.ID] = true
		if !e.Truncated || len(e.Payload) != scanPrefix || e.Location != LocProcessing {
			t.Errorf("entry %d (%s): %s truncated %v payload %d bytes; want processing, truncated, %d bytes", i, e.ID, e.Location, e.Truncated, len(e.Payload), scanPrefix)
		}
	}
	for i := range 30 { // each once (leases of the same millisecond have no order)
		if id := fmt.Sprintf("f%02d", i); !ids[id] {
			t.Errorf("peek processing does not list %s", id)
		}
	}
	found, err := q.Find(ctx, sel(t, "f29"))
	if err != nil || len(found) != 1 || found[0].Truncated || len(found[0].Payload) != len(pad)+len(`{"id":"f29","wait":1,"pad":""}`) {
		t.Errorf("inspect f29: %d entries, %v", len(found), err)
	}
}
