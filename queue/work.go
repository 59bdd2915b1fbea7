package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Outcome is how a delivery ended.
type Outcome string

const (
	Acked    Outcome = "acked"    // processed and removed
	Retried  Outcome = "retried"  // handler failed; back in pending
	Dead     Outcome = "dead"     // handler failed on the last attempt; dead-lettered
	Released Outcome = "released" // shutdown; back at the front of pending, not counted
	Lost     Outcome = "lost"     // lease expired; the reaper gave it to someone else
	// Vanished: the delivery's claim list and lease disappeared while the
	// lease was still valid, which no queue operation does: Redis lost the
	// data (a restart without persistence, a flush, or a failover to a
	// replica that lacked those writes). See ErrVanished.
	Vanished Outcome = "vanished"
)

// Handler processes one event. It must return when ctx is done.
type Handler func(ctx context.Context, ev Event) error

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
//   - h failed: Nack — retried later, or dead-lettered on the last attempt;
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
			case err == nil:
				mu.Lock()
				extended = sent
				mu.Unlock()
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
	case herr == nil:
		o, err := settle(Acked, finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error { return q.ack(c, d, ttl) }))
		if errors.Is(err, ErrLeaseLost) {
			return Lost, err
		}
		return o, err
	case ctx.Err() != nil:
		return settle(Released, finish(opt.ReleaseTimeout, func(c context.Context, ttl time.Duration) error { return q.release(c, d, ttl) }))
	default:
		var dead bool
		err := finish(opt.FinishTimeout, func(c context.Context, ttl time.Duration) error {
			var err error
			dead, err = q.nack(c, d, herr.Error(), ttl)
			return err
		})
		if dead {
			return settle(Dead, err)
		}
		return settle(Retried, err)
	}
}

// Retry calls fn until it succeeds, ctx ends, or fn fails with an error that
// retrying cannot fix (IsPermanent). Waits grow from 100ms to 5s with jitter.
// It returns fn's last error.
func Retry(ctx context.Context, fn func() error) error {
	r := retrier{timeout: -1}
	for {
		err := fn()
		if err == nil || !r.again(ctx, err) {
			return err
		}
	}
}

// IsPermanent reports whether retrying cannot change err's outcome: the
// queue's own verdicts and Redis error replies other than the transient ones
// (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY, NOREPLICAS,
// MOVED, ASK, UNBLOCKED). Network errors — timeouts included: a dial or TLS
// handshake that times out matches context.DeadlineExceeded — and
// ErrReplyLost are not permanent. Neither are context errors as such: only
// the caller's own context ends a retry (Retry checks ctx.Err()), never an
// error that merely wraps context.DeadlineExceeded.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrNoEvent) ||
		errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrClaimInterrupted) || errors.Is(err, ErrPayloadTooLarge) ||
		errors.Is(err, ErrVanished) || errors.Is(err, errFinished) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) { // a reply from Redis (redis.Nil included)
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOREPLICAS", "MOVED", "ASK", "UNBLOCKED"} {
			if strings.HasPrefix(msg, p) {
				return false
			}
		}
		return true
	}
	return false
}

// retrier retries transient errors with backoff for at most timeout since
// the first failure of a streak (a negative timeout: until ctx ends; 0: no
// retries).
type retrier struct {
	timeout time.Duration
	since   time.Time
	wait    time.Duration
	// onRetry, if set, sees each error that is about to be retried;
	// onRecover, how long a streak of failures lasted once it ends.
	onRetry   func(error)
	onRecover func(time.Duration)
}

// ok ends a streak of failures.
func (r *retrier) ok() {
	if !r.since.IsZero() && r.onRecover != nil {
		r.onRecover(time.Since(r.since))
	}
	r.since, r.wait = time.Time{}, 0
}

// again reports whether to try again after err, having waited the backoff.
func (r *retrier) again(ctx context.Context, err error) bool {
	if r.timeout == 0 || IsPermanent(err) || ctx.Err() != nil {
		return false
	}
	if r.since.IsZero() {
		r.since, r.wait = time.Now(), 100*time.Millisecond
	}
	left := time.Duration(1<<62 - 1)
	if r.timeout > 0 {
		if left = r.timeout - time.Since(r.since); left <= 0 {
			return false
		}
	}
	if r.onRetry != nil {
		r.onRetry(err)
	}
	pause := min(r.wait+time.Duration(rand.Int64N(int64(r.wait)/2)), left)
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	r.wait = min(r.wait*2, 5*time.Second)
	return true
}

// do calls fn, retrying as again allows.
func (r *retrier) do(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			r.ok()
			return nil
		}
		if !r.again(ctx, err) {
			return err
		}
	}
}
