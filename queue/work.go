package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Outcome is how a delivery ended.
type Outcome string

const (
	Acked    Outcome = "acked"    // processed and removed
	Retried  Outcome = "retried"  // handler failed; scheduled for its retry (or back in pending)
	Snoozed  Outcome = "snoozed"  // handler asked to run again later; scheduled, not counted
	Dead     Outcome = "dead"     // handler failed on the last attempt; dead-lettered
	Released Outcome = "released" // shutdown; back at the front of pending, not counted
	Lost     Outcome = "lost"     // lease expired; the reaper gave it to someone else
	// Vanished: the delivery's claim list and lease disappeared while the
	// lease was still valid, which no queue operation does: Redis lost the
	// data (a restart without persistence, a flush, or a failover to a
	// replica that lacked those writes). See ErrVanished.
	Vanished Outcome = "vanished"
	// Cancelled: an operator cancelled the event (Cancel); the handler's
	// context was cancelled with cause ErrCancelled and the event
	// dead-lettered with reason CancelReason.
	Cancelled Outcome = "cancelled"
)

// Handler processes one event. It must return when ctx is done.
type Handler func(ctx context.Context, ev Event) error

// Verdicts a Handler can give besides nil (ack) and a plain error (retry).
var (
	// ErrSkipRetry, wrapped by a handler's error, dead-letters the event at
	// once, whatever its attempt: the event can never succeed (asynq's
	// SkipRetry). The dead letter's reason is the error's text.
	ErrSkipRetry = errors.New("skip retry")
	// ErrNotStarted, wrapped by a handler's error, means the handler could
	// not start on the event for a reason that is not the event's (a missing
	// program, a broken deployment): the event is released like on shutdown
	// — back at the front of pending, the attempt not counted.
	ErrNotStarted = errors.New("handler could not start")
)

// WorkOptions tune Work.
type WorkOptions struct {
	// HeartbeatEvery is the lease extension period; default LeaseDuration/3.
	HeartbeatEvery time.Duration
	// FinishTimeout bounds the retries of the final ack or nack when Redis
	// is unreachable (REDIS_RETRY_TIMEOUT); the lease keeps being extended
	// meanwhile, so a short outage costs neither a duplicate nor a failed
	// Job. Default 60s.
	FinishTimeout time.Duration
	// ReleaseTimeout bounds the release on shutdown (SHUTDOWN_TIMEOUT: it
	// must finish before the kubelet's SIGKILL). Default 10s.
	ReleaseTimeout time.Duration
	// OnHeartbeatError, if set, sees transient heartbeat failures (Redis
	// trouble); Work keeps trying until the lease is lost.
	OnHeartbeatError func(error)
	// OnFinishError, if set, sees each failed attempt to ack, nack or
	// release before it is retried.
	OnFinishError func(error)
	// OnReplyLost, if set, is called when an earlier attempt to finish had
	// in fact run and only its reply was lost: the retry found the delivery
	// finished by this very claim (the outcome Work returns is true).
	OnReplyLost func(Outcome)
}

// Work runs h on the delivery while heartbeating its lease, then finishes
// the delivery exactly once:
//
//   - h returned nil: Ack;
//   - ctx was cancelled (shutdown): Release — back to the front of pending,
//     not counted as an attempt;
//   - h failed: Nack — retried after the retry schedule's delay (or the
//     delay of a *RetryAfterError in h's error: NackAfter), or
//     dead-lettered on the last attempt;
//   - h's error wraps ErrSkipRetry: dead-lettered now (Bury);
//   - h's error wraps a *SnoozeError: Snooze — run again after its delay,
//     the attempt not counted;
//   - h's error wraps ErrNotStarted: Release, as on shutdown;
//   - an operator cancelled the event (Cancel; seen by a heartbeat): h's
//     context is cancelled with cause ErrCancelled, and once h returns the
//     event is dead-lettered with reason CancelReason (Cancelled);
//   - the lease was lost: nothing (h's context is cancelled; the event is
//     already someone else's);
//   - the claim list and lease vanished while the lease was valid (Redis
//     lost data): Vanished with ErrVanished.
//
// A finishing command whose reply was lost is retried, and the retry knows
// it ran (OnReplyLost): the outcome is the true one either way.
//
// Finishing retries Redis errors with backoff (FinishTimeout for ack and
// nack, ReleaseTimeout for release) and keeps heartbeating until it is done.
// The error is non-nil when the delivery could not be finished; the event is
// then still in its claim list, and the reaper will recover it.
func (q *Queue) Work(ctx context.Context, d *Delivery, h Handler, opt WorkOptions) (Outcome, error) {
	if opt.HeartbeatEvery <= 0 {
		opt.HeartbeatEvery = q.cfg.LeaseDuration / 3
	}
	if opt.FinishTimeout <= 0 {
		opt.FinishTimeout = 60 * time.Second
	}
	if opt.ReleaseTimeout <= 0 {
		opt.ReleaseTimeout = 10 * time.Second
	}

	// The heartbeat outlives ctx (it keeps the lease while finishing) and
	// stops when Work returns.
	hbctx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopHB()
	// extended is when the lease was last extended (a heartbeat or the lease
	// sent then succeeded): until extended+LeaseDuration no reaper may take
	// the delivery, so finding it gone before then means Redis lost it.
	var mu sync.Mutex
	extended := d.ClaimedAt
	gone := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(extended) < q.cfg.LeaseDuration {
			return fmt.Errorf("event %s: %w", d.Event.ID, ErrVanished)
		}
		return err
	}
	wg.Go(func() {
		t := time.NewTicker(opt.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-hbctx.Done():
				return
			case <-t.C:
			}
			sent := time.Now()
			err := q.Heartbeat(hbctx, d)
			switch {
			case err == nil, errors.Is(err, ErrCancelled):
				mu.Lock()
				extended = sent
				mu.Unlock()
				if err != nil {
					cancel(ErrCancelled) // the heartbeat goes on while h stops
				}
			case hbctx.Err() != nil:
			case errors.Is(err, ErrLeaseLost):
				cancel(gone(err))
				return
			case opt.OnHeartbeatError != nil:
				opt.OnHeartbeatError(err)
			}
		}
	})
	herr := h(hctx, d.Event)
	switch cause := context.Cause(hctx); {
	case errors.Is(cause, ErrVanished):
		return Vanished, cause
	case errors.Is(cause, ErrLeaseLost):
		return Lost, fmt.Errorf("process event %s: %w", d.Event.ID, ErrLeaseLost)
	}

	// Finish on a context that survives the shutdown signal but not forever.
	// A finishing script run again after a lost reply says so (errFinished)
	// rather than "not in flight".
	finish := func(timeout time.Duration, fn func(context.Context, time.Duration) error) error {
		fctx, fcancel := context.WithTimeout(hbctx, timeout)
		defer fcancel()
		// The marker that recognises a retry must outlive every retry.
		ttl := timeout + q.cfg.LeaseDuration
		return Retry(fctx, func() error {
			err := fn(fctx, ttl)
			if err != nil && !IsPermanent(err) && opt.OnFinishError != nil {
				opt.OnFinishError(err)
			}
			return err
		})
	}
	settle := func(o Outcome, err error) (Outcome, error) {
		switch {
		case errors.Is(err, errFinished):
			if opt.OnReplyLost != nil {
				opt.OnReplyLost(o)
			}
			return o, nil
		case errors.Is(err, ErrLeaseLost):
			if err := gone(err); errors.Is(err, ErrVanished) {
				return Vanished, err
			}
		}
		return o, err
	}
	switch {
	case errors.Is(context.Cause(hctx), ErrCancelled):
		o, err := settle(Cancelled, finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error { return q.cancelled(c, d, ttl) }))
		if errors.Is(err, ErrLeaseLost) {
			return Lost, err
		}
		return o, err
	case herr == nil:
		o, err := settle(Acked, finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error { return q.ack(c, d, ttl) }))
		if errors.Is(err, ErrLeaseLost) {
			return Lost, err
		}
		return o, err
	case ctx.Err() != nil, errors.Is(herr, ErrNotStarted):
		return settle(Released, finish(opt.ReleaseTimeout, func(c context.Context, ttl time.Duration) error { return q.release(c, d, ttl) }))
	case errors.Is(herr, ErrSkipRetry):
		o, err := settle(Dead, finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error { return q.bury(c, d, herr.Error(), ttl) }))
		if errors.Is(err, ErrLeaseLost) {
			return Lost, err
		}
		return o, err
	case errors.As(herr, new(*SnoozeError)):
		return settle(Snoozed, finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error { return q.snooze(c, d, snoozeDelay(herr), ttl) }))
	default:
		var dead bool
		err := finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error {
			var err error
			dead, err = q.nack(c, d, herr.Error(), retryDelay(herr), ttl)
			return err
		})
		if dead {
			return settle(Dead, err)
		}
		return settle(Retried, err)
	}
}
