// Retries of Redis commands for the claim path, the finish path and the
// replica wait: which errors are worth another try and how long to wait.

package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

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
