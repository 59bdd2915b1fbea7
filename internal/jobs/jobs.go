// Package jobs is the consumer that runs in each Kubernetes Job: claim one
// event, process it, ack it. The binaries jobs/ and cmd/redis-keda run it.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is the jobs process's configuration (environment variables).
type Config struct {
	Redis queue.RedisConfig
	Queue queue.Config

	// ClaimTimeout is how long to block waiting for an event.
	ClaimTimeout time.Duration `env:"CLAIM_TIMEOUT" envDefault:"10s"`
	// MaxEvents is how many events one process claims before exiting.
	MaxEvents int `env:"MAX_EVENTS" envDefault:"1"`
	// ShutdownTimeout bounds the release of the in-flight (or just claimed)
	// event on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// RedisRetryTimeout is how long Redis may stay unreachable — while
	// claiming, or while acking a finished event (the lease is kept alive
	// meanwhile) — before the job gives up with exit code 1.
	RedisRetryTimeout time.Duration `env:"REDIS_RETRY_TIMEOUT" envDefault:"60s"`
	LogLevel          zapcore.Level `env:"LOG_LEVEL" envDefault:"info"`
}

// Validate reports the first unusable setting, naming its variable.
func (c *Config) Validate() error {
	switch {
	case c.ClaimTimeout < time.Second:
		return errors.New("CLAIM_TIMEOUT must be at least 1s (BRPOPLPUSH blocks in whole seconds), such as 10s")
	case c.MaxEvents < 1:
		return fmt.Errorf("MAX_EVENTS=%d must be at least 1", c.MaxEvents)
	case c.ShutdownTimeout <= 0:
		return errors.New("SHUTDOWN_TIMEOUT must be positive, such as 10s")
	case c.RedisRetryTimeout <= 0:
		return errors.New("REDIS_RETRY_TIMEOUT must be positive, such as 60s")
	}
	return nil
}

// Level is the configured log level.
func (c *Config) Level() zapcore.Level { return c.LogLevel }

// Run claims up to MAX_EVENTS events, one at a time, and processes each:
// sleep its wait while heartbeating, then ack. It returns nil when there is
// nothing (more) to claim, on shutdown (the in-flight event released), and
// after dead-lettering an invalid payload; an error when Redis stayed
// unreachable or an event could not be finished (the reaper recovers it).
func Run(ctx context.Context, log *zap.Logger, c Config) error {
	q, err := queue.Open(c.Redis, c.Queue)
	if err != nil {
		return err
	}
	defer q.Close()
	log.Debug("starting", zap.Stringer("redis", c.Redis), zap.String("queue", c.Queue.Name))

	checked := false
	for n := 0; n < c.MaxEvents && ctx.Err() == nil; n++ {
		d, err := claim(ctx, log, q, c)
		switch {
		case errors.Is(err, queue.ErrNoEvent):
			// Claim waits CLAIM_TIMEOUT from the moment Redis last answered
			// after an outage (logged), so this wait did happen.
			log.Info("no event to claim", zap.Duration("waited", c.ClaimTimeout), zap.Int("processed", n))
			return nil
		case errors.Is(err, queue.ErrInvalidEvent):
			var inv *queue.InvalidEventError
			errors.As(err, &inv)
			log.Error("invalid event dead-lettered; fix the producer",
				zap.String("outcome", string(queue.Dead)), zap.String("reason", inv.Reason),
				zap.Int("size", inv.Size), zap.String("payload", truncate(inv.Payload, 1024)))
			continue
		case errors.Is(err, queue.ErrClaimInterrupted):
			var ci *queue.ClaimInterruptedError
			errors.As(err, &ci)
			switch {
			case ci.Err != nil:
				log.Error("shutting down during the claim; could not put the claimed event back, the reaper will", zap.Error(ci.Err))
			case ci.Released >= 0:
				log.Info("shutting down during the claim; claimed event put back at the front of the queue",
					zap.String("outcome", string(queue.Released)), zap.Int("size", ci.Released))
			default:
				log.Info("shutting down while waiting for an event; nothing claimed", zap.Int("processed", n))
			}
			return nil
		case err != nil:
			return err
		}
		if !checked { // after the claim: pop first, initialise after
			checked = true
			warnPersistence(ctx, log, q)
		}

		start := time.Now()
		var replyLost bool
		outcome, err := q.Work(ctx, d, sleep, queue.WorkOptions{
			FinishTimeout:    c.RedisRetryTimeout,
			ReleaseTimeout:   c.ShutdownTimeout,
			OnHeartbeatError: func(err error) { log.Warn("heartbeat failed; retrying", zap.String("id", d.Event.ID), zap.Error(err)) },
			OnFinishError: func(err error) {
				log.Warn("finishing the event failed; retrying (REDIS_RETRY_TIMEOUT), lease kept alive", zap.String("id", d.Event.ID), zap.Error(err))
			},
			OnReplyLost: func(queue.Outcome) { replyLost = true },
		})
		fields := []zap.Field{
			zap.String("outcome", string(outcome)),
			zap.String("id", d.Event.ID),
			zap.Bool("id_assigned", d.IDAssigned),
			zap.Float64("wait", d.Event.Wait.Seconds()),
			zap.Int("attempt", d.Attempt),
			zap.Duration("duration", time.Since(start)),
		}
		if !d.Event.PublishedAt.IsZero() {
			fields = append(fields, zap.Duration("latency", d.ClaimedAt.Sub(d.Event.PublishedAt)))
		}
		if replyLost {
			// The first attempt ran; its reply was lost and the retry found
			// the delivery finished by this job: the outcome is true.
			fields = append(fields, zap.Bool("reply_lost", true))
		}
		switch {
		case errors.Is(err, queue.ErrVanished):
			log.Error("event lost by Redis: its claim list and lease vanished while the lease was valid — Redis restarted without persistence, was flushed, or failed over to a replica that lacked them; see README, Guarantees",
				fields...)
		case err != nil && errors.Is(err, queue.ErrLeaseLost):
			log.Warn("event lease lost; another job will process it", append(fields, zap.Error(err))...)
		case err != nil:
			// Still in its claim list: the reaper will recover it.
			return fmt.Errorf("could not finish event %s (%s; the reaper will recover it after its lease): %w",
				d.Event.ID, finishing[outcome], c.Redis.Failure(err, retryBound(c, outcome)))
		case outcome == queue.Released:
			log.Info("shutting down; event requeued", fields...)
			return nil
		default:
			log.Info("event "+string(outcome), fields...)
		}
	}
	return nil
}

// finishing names what Work was doing for each outcome it returns with an
// error.
var finishing = map[queue.Outcome]string{
	queue.Acked: "ack", queue.Retried: "nack", queue.Dead: "dead-letter", queue.Released: "release",
}

// retryBound is how long finishing outcome was retried.
func retryBound(c Config, outcome queue.Outcome) time.Duration {
	if outcome == queue.Released {
		return c.ShutdownTimeout
	}
	return c.RedisRetryTimeout
}

// warnPersistence says, once, what a Redis restart would cost when the
// server reports weak persistence; where the ACL user may not read it (the
// documented user may not), it says so at debug level only.
func warnPersistence(ctx context.Context, log *zap.Logger, q *queue.Queue) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p, err := q.Persistence(pctx)
	switch {
	case err != nil:
		log.Debug("could not read Redis's persistence settings", zap.Error(err))
	case p.Risk != "":
		log.Warn(p.Risk, zap.String("appendonly", p.AppendOnly), zap.String("appendfsync", p.AppendFsync), zap.String("save", p.Save))
	}
}

// claim waits for one event; Redis errors are retried with backoff for at
// most RedisRetryTimeout (with the same claim token, so a lost reply loses
// nothing), and a signal puts back whatever the claim had moved. Once Redis
// answers again after an outage, the claim waits CLAIM_TIMEOUT afresh.
func claim(ctx context.Context, log *zap.Logger, q *queue.Queue, c Config) (*queue.Delivery, error) {
	failing := false
	d, err := q.ClaimWith(ctx, queue.ClaimOptions{
		Timeout: c.ClaimTimeout, RetryTimeout: c.RedisRetryTimeout, ReleaseTimeout: c.ShutdownTimeout,
		OnRetry: func(err error) {
			if !failing { // once per outage
				failing = true
				log.Warn("redis unreachable while claiming; retrying (REDIS_RETRY_TIMEOUT)",
					zap.Duration("retry_timeout", c.RedisRetryTimeout), zap.Error(err))
			}
		},
		OnRecover: func(outage time.Duration) {
			failing = false
			log.Info("redis answers again; waiting for an event (CLAIM_TIMEOUT)",
				zap.Duration("outage", outage), zap.Duration("claim_timeout", c.ClaimTimeout))
		},
	})
	if err != nil {
		retried := c.RedisRetryTimeout
		if queue.IsPermanent(err) {
			retried = 0
		}
		return nil, c.Redis.Failure(err, retried)
	}
	return d, nil
}

// sleep is the job's work: wait the event's seconds, or stop early on ctx.
func sleep(ctx context.Context, ev queue.Event) error {
	t := time.NewTimer(ev.Wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// truncate keeps log lines bounded for huge bad payloads (the dead letter
// keeps the whole payload).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}
