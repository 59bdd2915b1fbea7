package queue

import (
	"context"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// A release on shutdown is bounded by its ReleaseTimeout (SHUTDOWN_TIMEOUT)
// even when Redis is frozen (SIGSTOP): the client's own timeout is a minute
// here, so only the context deadline can end it (ContextTimeoutEnabled).
// Redis is resumed only after Work returned: the control that it returned
// while Redis was frozen.
func TestReleaseIsBoundedWhileRedisIsFrozen(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := RedisConfig{Addr: RedisAddr(srv.Addr), Timeout: time.Minute}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	q, err := New(rdb, Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := q.Publish(ctx, Event{ID: "frozen", Wait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	type result struct {
		o    Outcome
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		o, err := q.Work(ctx, d, func(ctx context.Context, _ Event) error { <-ctx.Done(); return ctx.Err() },
			WorkOptions{ReleaseTimeout: 2 * time.Second})
		done <- result{o, err, 0}
	}()
	srv.Pause()
	start := time.Now()
	cancel() // SIGTERM
	var r result
	select {
	case r = <-done:
		r.took = time.Since(start)
	case <-time.After(40 * time.Second):
		srv.Resume()
		t.Fatal("Work did not return within 40s of SIGTERM with Redis frozen; the release bound is 2s")
	}
	srv.Resume()
	if r.o != Released || r.err == nil {
		t.Errorf("Work = %s, %v; want released with an error (Redis frozen)", r.o, r.err)
	}
	t.Logf("Redis frozen: Work returned %v after SIGTERM (ReleaseTimeout 2s): %v", r.took.Round(time.Millisecond), r.err)
}
