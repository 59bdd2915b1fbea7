package publisher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap/zaptest"
)

// The publisher runs the mover beside the reaper: an event published for
// later reaches pending once due, and not before (its due time by Redis's
// clock is compared with the server time at which it was seen pending). The
// mover wakes at the due time it knows of, so with MOVE_INTERVAL=1m the
// event still arrives: the control that the wake-up at the due time, not the
// interval, moved it.
func TestPublisherMovesDueEvents(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0", "MOVE_INTERVAL": "1m"})
	rdb := srv.Client()
	q, err := queue.New(rdb, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	evs, err := q.PublishIn(ctx, 700*time.Millisecond, queue.Event{ID: "later", Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	due := rdb.ZRangeWithScores(ctx, "{events}:scheduled", 0, 0).Val()[0].Score
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(rctx, zaptest.NewLogger(t), c) }()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a speed bound
	for rdb.LLen(ctx, "events").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the due event never reached pending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := rdb.Time(ctx).Val().UnixMilli()
	if float64(seen) < due {
		t.Fatalf("pending at server time %d, before its due time %.0f", seen, due)
	}
	if got := rdb.LRange(ctx, "events", 0, -1).Val(); len(got) != 1 || got[0] != string(evs[0].Marshal()) {
		t.Fatalf("pending = %q, want %q", got, evs[0].Marshal())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMoveIntervalValidation(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"0s", "invalid configuration: MOVE_INTERVAL=0s must be from 1ms to 1m (due events wait up to that long), such as 500ms"},
		{"2m", "invalid configuration: MOVE_INTERVAL=2m0s must be from 1ms to 1m (due events wait up to that long), such as 500ms"},
		{"1s", ""},
	} {
		var c Config
		err := config.ParseFrom(&c, map[string]string{"MOVE_INTERVAL": tc.v})
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("MOVE_INTERVAL=%s: err = %v, want %q", tc.v, err, tc.want)
		}
	}
	var c Config
	if err := config.ParseFrom(&c, map[string]string{}); err != nil || c.MoveInterval != 500*time.Millisecond {
		t.Errorf("default MOVE_INTERVAL = %s (%v), want 500ms", c.MoveInterval, err)
	}
}
