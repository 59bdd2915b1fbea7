package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// move measures the mover (schedule.go):
//
//   - -n events scheduled for one due time, all due at once: the wall time
//     of the MoveDue that puts them all on the pending list (checked:
//     LLEN = n, scheduled set empty), its script calls, and the worst PING
//     of another connection meanwhile;
//   - latency: -latency-events single events published with PublishIn
//     (0.1-1.5 s, one after the other) while queue.RunMover runs as the
//     publisher runs it (MOVE_INTERVAL -interval): how long after its due
//     time (Redis's clock) each reached pending, seen by a BRPOP on another
//     connection and stamped with Redis's TIME.
func move(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("move", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 100000, "events due at once")
	events := fs.Int("latency-events", 20, "single delayed events for the latency")
	interval := fs.Duration("interval", 500*time.Millisecond, "MOVE_INTERVAL of the mover loop")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q, rdb, err := c.open(ctx, 16)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}
	payload := sampleEvent().Marshal()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return err
	}
	due := now.Add(2 * time.Second)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = payload
	}
	for left := *n; left > 0; left -= len(batch) {
		if err := q.PublishRawAt(ctx, due, batch[:min(left, len(batch))]...); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
	}
	sched := "{" + c.queue + "}:scheduled"
	if z := rdb.ZCard(ctx, sched).Val(); z != int64(*n) {
		return fmt.Errorf("scheduled %d, want %d", z, *n)
	}
	for rdb.Time(ctx).Val().Before(due) {
		time.Sleep(10 * time.Millisecond)
	}
	stop := make(chan struct{})
	pingDone := make(chan time.Duration, 1)
	go func() {
		p := redis.NewClient(&redis.Options{Addr: c.addr, MaxRetries: -1})
		defer p.Close()
		var worst time.Duration
		for {
			select {
			case <-stop:
				pingDone <- worst
				return
			default:
			}
			t := time.Now()
			_ = p.Ping(ctx).Err()
			worst = max(worst, time.Since(t))
		}
	}()
	start := time.Now()
	res, err := q.MoveDue(ctx)
	took := time.Since(start)
	close(stop)
	worst := <-pingDone
	if err != nil {
		return err
	}
	if l, z := rdb.LLen(ctx, c.queue).Val(), rdb.ZCard(ctx, sched).Val(); res.Moved != *n || l != int64(*n) || z != 0 {
		return fmt.Errorf("after the move: moved %d, pending %d, scheduled %d; want %d, %d, 0", res.Moved, l, z, *n, *n)
	}
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}

	// Latency through the mover loop.
	mctx, cancel := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); q.RunMover(mctx, *interval, nil) }()
	defer func() { cancel(); <-loopDone }()
	var lat []time.Duration
	for i := range *events {
		d := 100*time.Millisecond + time.Duration(i%15)*100*time.Millisecond
		if err := q.PublishRawIn(ctx, d, payload); err != nil {
			return err
		}
		z := rdb.ZRangeWithScores(ctx, sched, 0, 0).Val()
		if len(z) != 1 {
			return errors.New("the delayed event is not scheduled")
		}
		dueMs := int64(z[0].Score)
		if _, err := rdb.BRPop(ctx, 10*time.Second, c.queue).Result(); err != nil {
			return fmt.Errorf("wait for the delayed event: %w", err)
		}
		seen := rdb.Time(ctx).Val().UnixMilli()
		if seen < dueMs {
			return fmt.Errorf("event pending at %d, before its due time %d", seen, dueMs)
		}
		lat = append(lat, time.Duration(seen-dueMs)*time.Millisecond)
	}
	slices.Sort(lat)
	fmt.Fprintf(out, "n=%d wall_ms=%.1f per_sec=%.0f worst_ping_ms=%.2f latency_median_ms=%d latency_p90_ms=%d latency_max_ms=%d interval_ms=%d\n",
		*n, float64(took.Microseconds())/1000, float64(*n)/took.Seconds(), float64(worst.Microseconds())/1000,
		lat[len(lat)/2].Milliseconds(), lat[len(lat)*9/10].Milliseconds(), lat[len(lat)-1].Milliseconds(), interval.Milliseconds())
	return nil
}
