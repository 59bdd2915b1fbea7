package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Outcome is how a delivery ended.
type Outcome string

const (
	Acked    Outcome = "acked"    // processed and removed
	Retried  Outcome = "retried"  // handler failed; back in pending
	Dead     Outcome = "dead"     // handler failed on the last attempt; dead-lettered
	Released Outcome = "released" // shutdown; back at the front of pending, not counted
	Lost     Outcome = "lost"     // lease expired; the reaper gave it to someone else
)

// Handler processes one event. It must return when ctx is done.
type Handler func(ctx context.Context, ev Event) error

// WorkOptions tune Work.
type WorkOptions struct {
	// HeartbeatEvery is the lease extension period; default LeaseDuration/3.
	HeartbeatEvery time.Duration
	// FinishTimeout bounds the final ack/nack/release, which runs on a fresh
	// context when ctx was cancelled (SIGTERM). Default 10s.
	FinishTimeout time.Duration
	// OnHeartbeatError, if set, sees transient heartbeat failures (Redis
	// trouble); Work keeps trying until the lease is lost.
	OnHeartbeatError func(error)
}

// Work runs h on the delivery while heartbeating its lease, then finishes
// the delivery exactly once:
//
//   - h returned nil: Ack (retried with backoff within FinishTimeout, since
//     the work is done);
//   - ctx was cancelled (shutdown): Release — back to the front of pending,
//     not counted as an attempt;
//   - h failed: Nack — retried later, or dead-lettered on the last attempt;
//   - the lease was lost: nothing (h's context is cancelled; the event is
//     already someone else's).
//
// The error is non-nil when the delivery could not be finished; the event is
// then still in the processing list, and the reaper will recover it.
func (q *Queue) Work(ctx context.Context, d *Delivery, h Handler, opt WorkOptions) (Outcome, error) {
	if opt.HeartbeatEvery <= 0 {
		opt.HeartbeatEvery = q.cfg.LeaseDuration / 3
	}
	if opt.FinishTimeout <= 0 {
		opt.FinishTimeout = 10 * time.Second
	}

	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(opt.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			err := q.Heartbeat(hctx, d)
			switch {
			case err == nil, hctx.Err() != nil:
			case errors.Is(err, ErrLeaseLost):
				cancel(err)
				return
			case opt.OnHeartbeatError != nil:
				opt.OnHeartbeatError(err)
			}
		}
	})
	herr := h(hctx, d.Event)
	lost := errors.Is(context.Cause(hctx), ErrLeaseLost)
	cancel(nil)
	wg.Wait()

	// Finish on a context that survives the shutdown signal but not forever.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), opt.FinishTimeout)
	defer fcancel()
	switch {
	case lost:
		return Lost, fmt.Errorf("process event %s: %w", d.Event.ID, ErrLeaseLost)
	case herr == nil:
		if err := Retry(fctx, func() error { return q.Ack(fctx, d) }); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				return Lost, err
			}
			return Acked, err
		}
		return Acked, nil
	case ctx.Err() != nil:
		if err := Retry(fctx, func() error { return q.Release(fctx, d) }); err != nil {
			return Released, err
		}
		return Released, nil
	default:
		var dead bool
		err := Retry(fctx, func() error {
			var err error
			dead, err = q.Nack(fctx, d, herr.Error())
			return err
		})
		if err != nil {
			return Retried, err
		}
		if dead {
			return Dead, nil
		}
		return Retried, nil
	}
}

// Retry calls fn until it succeeds, ctx ends, or fn fails with an error that
// retrying cannot fix (ErrLeaseLost, ErrInvalidEvent, ErrNoEvent). Waits grow
// from 100ms to 5s with jitter. It returns fn's last error.
func Retry(ctx context.Context, fn func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || IsPermanent(err) {
			return err
		}
		jitter := time.Duration(rand.Int64N(int64(wait) / 2))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait + jitter):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// IsPermanent reports whether retrying cannot change err's outcome.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrInvalidEvent) ||
		errors.Is(err, ErrNoEvent) || errors.Is(err, ErrInvalidConfig)
}
