package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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
