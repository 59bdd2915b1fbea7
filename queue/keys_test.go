package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// QUEUE names: "{orders}" (the hash tag of "orders", whose derived keys it
// shared while its pending list differed) and any name shaped like another
// queue's key are refused, with the exact message.
func TestQueueNamesThatShareKeysAreRefused(t *testing.T) {
	ok := Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
	const seg = "; a queue name must not have a segment :leases, :claimed, :dead, :counters, :finished, :claim, :scheduled or :done after its tag"
	for _, tc := range []struct{ name, want string }{
		{"{orders}", `invalid queue configuration: QUEUE="{orders}" is the hash tag of QUEUE=orders, whose keys are already {orders}:* (same Redis Cluster slot): the two spellings would share every key but the pending list; use QUEUE=orders and listName orders in the KEDA trigger (move pending events once with redis-cli RENAME {orders} orders)`},
		{"{events}:dead", `invalid queue configuration: QUEUE="{events}:dead" is shaped like a key of another queue (":dead" follows the hash tag)` + seg},
		{"{events}:leases", `invalid queue configuration: QUEUE="{events}:leases" is shaped like a key of another queue (":leases" follows the hash tag)` + seg},
		{"{events}:claimed", `invalid queue configuration: QUEUE="{events}:claimed" is shaped like a key of another queue (":claimed" follows the hash tag)` + seg},
		{"{events}:counters", `invalid queue configuration: QUEUE="{events}:counters" is shaped like a key of another queue (":counters" follows the hash tag)` + seg},
		{"{events}:finished", `invalid queue configuration: QUEUE="{events}:finished" is shaped like a key of another queue (":finished" follows the hash tag)` + seg},
		{"{events}:claim:0123abcd", `invalid queue configuration: QUEUE="{events}:claim:0123abcd" is shaped like a key of another queue (":claim" follows the hash tag)` + seg},
		{"{events}:scheduled", `invalid queue configuration: QUEUE="{events}:scheduled" is shaped like a key of another queue (":scheduled" follows the hash tag)` + seg},
		{"{events}:claim", `invalid queue configuration: QUEUE="{events}:claim" is shaped like a key of another queue (":claim" follows the hash tag)` + seg},
		{"{events}:done", `invalid queue configuration: QUEUE="{events}:done" is shaped like a key of another queue (":done" follows the hash tag)` + seg},
		{"{events}:done:order", `invalid queue configuration: QUEUE="{events}:done:order" is shaped like a key of another queue (":done" follows the hash tag)` + seg},
		{"{events}:high:dead", `invalid queue configuration: QUEUE="{events}:high:dead" is shaped like a key of another queue (":dead" follows the hash tag)` + seg},
		{"x{events}:dead", `invalid queue configuration: QUEUE="x{events}:dead" is shaped like a key of another queue (":dead" follows the hash tag)` + seg},
		{"events", ""},
		{"events:dead", ""}, // untagged: its keys are {events:dead}:..., no other queue's
		{"{events}:high", ""},
		{"{events}:deadline", ""},
		{"x{events}", ""},
	} {
		c := ok
		c.Name = tc.name
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("QUEUE=%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidConfig)):
			t.Errorf("QUEUE=%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

// Queues whose names share a hash tag — one slot, one server — keep
// separate keys: each one's abandoned event, once its lease expired, is
// brought back by its own reaper into its own pending list (the list KEDA
// watches for it), and the other queues' reapers never touch it. With
// QUEUE=orders and QUEUE={orders} (accepted before) the reaper of "orders"
// moved the expired event of "{orders}" into "orders".
func TestQueuesSharingATagKeepTheirOwnEvents(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	names := []string{"orders", "{orders}:high", "x{orders}", "orders:low"}
	if _, err := New(srv.Client(), Config{Name: "{orders}", LeaseDuration: time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}); err == nil {
		t.Error("QUEUE={orders} accepted beside QUEUE=orders; what its reaper does follows")
		names = append(names, "{orders}")
	}
	qs := make([]*Queue, len(names))
	for i, n := range names {
		qs[i], _ = newQueueOn(t, srv.Client(), func(c *Config) { c.Name = n })
		if _, err := qs[i].Publish(ctx, Event{ID: "ev-" + n}); err != nil {
			t.Fatal(err)
		}
		d, err := qs[i].Claim(ctx, time.Second)
		if err != nil || d.Event.ID != "ev-"+n {
			t.Fatalf("%s: claimed %+v, %v", n, d, err)
		}
		// abandoned: the job died holding it
	}
	// Reap every queue, in turn, until each has requeued its one event (its
	// 1s lease expires on the server's clock); the control arm is that each
	// reaper did requeue exactly one.
	requeued := make([]int, len(qs))
	deadline := time.Now().Add(30 * time.Second)
	for slices.Contains(requeued, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("requeued per queue %v after 30s", requeued)
		}
		for i, q := range qs {
			res, err := q.Reap(ctx)
			if err != nil {
				t.Fatal(err)
			}
			requeued[i] += res.Requeued + res.Rescued
		}
		time.Sleep(100 * time.Millisecond)
	}
	if slices.ContainsFunc(requeued, func(n int) bool { return n != 1 }) {
		t.Errorf("requeued per queue %v, want one each", requeued)
	}
	for i, q := range qs {
		if n := srv.Do("LLEN", names[i]).(int64); n != 1 {
			t.Errorf("%s holds %d entries, want its own event only", names[i], n)
		}
		d, err := q.Claim(ctx, time.Second)
		if err != nil || d.Event.ID != "ev-"+names[i] || d.Attempt != 2 {
			t.Errorf("%s: claimed %+v, %v; want its own event, second attempt", names[i], d, err)
		}
	}
}
