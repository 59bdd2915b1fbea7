// Package worker runs your Go code once per event of a redis-keda queue,
// with the queue's guarantees: it claims an event (one per process by
// default: one Kubernetes Job per event), keeps its lease alive while your
// handler runs, and finishes it exactly once by what the handler returns:
//
//   - nil: the event is acked (done);
//   - an error: the event is retried after the retry schedule's delay
//     (RETRY_BASE, RETRY_FACTOR, RETRY_MAX, RETRY_JITTER; the attempt
//     counted), and dead-lettered with the error as reason after
//     MAX_ATTEMPTS deliveries;
//   - an error wrapping SkipRetry: dead-lettered now, on any attempt (the
//     event can never succeed);
//   - RetryAfter(d, err): retried after d instead of the retry schedule's
//     delay (the attempt counted; dead-lettered with err after
//     MAX_ATTEMPTS);
//   - Snooze(d): run again after d, the attempt not counted (River's
//     JobSnooze);
//   - an error wrapping NotStarted: released (front of the queue, the
//     attempt not counted) and Run stops — for a fault that is not the
//     event's, such as a missing program;
//   - on SIGTERM (pod deleted, node drain) the handler's context is
//     cancelled: return nil if the work got done anyway (acked), anything
//     else releases the event (front, not counted).
//
// A program's main is one line:
//
//	func main() { worker.Main(worker.HandlerFunc(handle)) }
//
// It reads the same environment as the redis-keda jobs (REDIS_ADDR,
// REDIS_PASSWORD, QUEUE, MAX_EVENTS, CLAIM_TIMEOUT, MAX_ATTEMPTS,
// LEASE_DURATION, SHUTDOWN_TIMEOUT, REDIS_RETRY_TIMEOUT, LOG_LEVEL …; see the
// README's Configuration).
//
// The built-in sleep (`redis-keda jobs`) and the command runner
// (`redis-keda run -- CMD`) are two handlers of this package: there is one
// consumer loop.
package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/service"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Job is one delivery of an event, as a handler sees it.
type Job struct {
	// ID identifies the event across redeliveries: the payload's "id" when
	// it is a JSON object with a usable one, else an id the queue assigned.
	ID string
	// Payload is the event exactly as the producer published it (any bytes).
	Payload []byte
	// Attempt is this delivery's number: 1 the first time.
	Attempt int
	// MaxAttempts is MAX_ATTEMPTS: a failure on this attempt dead-letters.
	MaxAttempts int
	// Queue is the pending list's name (QUEUE).
	Queue string
	// PublishedAt is the payload's "published_at" (RFC 3339); zero when
	// absent.
	PublishedAt time.Time
}

// Handler processes one job. It must return when ctx is done.
type Handler interface {
	Handle(ctx context.Context, job *Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job *Job) error { return f(ctx, job) }

// Verdicts besides nil (ack) and a plain error (retry); wrap them:
// fmt.Errorf("%w: no such customer %q", worker.SkipRetry, id).
var (
	// SkipRetry dead-letters the event now, whatever its attempt; the
	// error's text is the dead letter's reason.
	SkipRetry = queue.ErrSkipRetry
	// NotStarted releases the event untouched (front of the queue, the
	// attempt not counted) and stops Run, which returns an error wrapping
	// it (Main exits with ExitNotStarted): for faults that are not the
	// event's, such as a program that is missing from the image.
	NotStarted = queue.ErrNotStarted
)

// RetryAfter is the verdict "failed with err; retry after d" (instead of
// the retry schedule's delay). The attempt counts: on the MAX_ATTEMPTS-th the
// event is dead-lettered with err's text. Return it, or wrap it.
func RetryAfter(d time.Duration, err error) error { return queue.RetryAfter(d, err) }

// Snooze is the verdict "not now: run again after d", which does not count
// as an attempt (River's JobSnooze): for work that waits on something else,
// not for failures (a snoozing event is never dead-lettered).
func Snooze(d time.Duration) error { return queue.Snooze(d) }

// RetryAfterError and SnoozeError are the verdicts RetryAfter and Snooze
// return, for errors.As.
type (
	RetryAfterError = queue.RetryAfterError
	SnoozeError     = queue.SnoozeError
)

// Exit codes of Main.
const (
	ExitOK         = 0 // events finished (acked, retried, dead-lettered or released), or nothing to claim
	ExitFailure    = 1 // invalid configuration, Redis unreachable past REDIS_RETRY_TIMEOUT, an event not finished
	ExitNotStarted = 3 // the handler could not start (NotStarted); the event was released
)

// Config is a worker's configuration (environment variables).
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
	// meanwhile) — before the worker gives up with exit code 1.
	RedisRetryTimeout time.Duration `env:"REDIS_RETRY_TIMEOUT" envDefault:"60s"`
	LogLevel          zapcore.Level `env:"LOG_LEVEL" envDefault:"info"`
	// PodName names this process in the lease (inspect shows it for an
	// event in flight; the done record keeps the pod that acked): the pod's
	// name from the downward API (the manifests set POD_NAME from
	// fieldRef metadata.name). Empty: the hostname, which is the pod name
	// in Kubernetes too unless the pod sets spec.hostname.
	PodName string `env:"POD_NAME"`

	// RequireWait accepts only the built-in sleep's events (a JSON object
	// with a valid "wait", at most MAX_WAIT); others are dead-lettered at
	// their claim. False (the default): any payload up to MAX_PAYLOAD_BYTES.
	// Not an environment variable: the program decides.
	RequireWait bool
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
	case len(c.PodName) > 253:
		return fmt.Errorf("POD_NAME is %d bytes, above 253 (a Kubernetes pod name is at most 253 characters); set it from the downward API (fieldRef metadata.name)", len(c.PodName))
	}
	return nil
}

// Level is the configured log level.
func (c *Config) Level() zapcore.Level { return c.LogLevel }

// ConfigFromEnv reads the configuration from the environment; the error
// names the variable and the accepted form.
func ConfigFromEnv() (Config, error) {
	var c Config
	err := config.Parse(&c)
	return c, err
}

// Main runs h with the configuration from the environment, a JSON logger
// and SIGTERM/SIGINT handling, and exits with one of the Exit codes. It
// returns only when everything went well (exit code 0 is then up to the
// caller's main returning).
func Main(h Handler) {
	name := filepath.Base(os.Args[0])
	version := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	service.Main(name, version, (*Config).Level, func(ctx context.Context, log *zap.Logger, c Config) error {
		return Run(ctx, log, c, h)
	})
}

// exitCode carries Main's exit code with the error.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string { return e.err.Error() }
func (e *exitCode) Unwrap() error { return e.err }
func (e *exitCode) ExitCode() int { return e.code }

// Run claims up to MAX_EVENTS events, one at a time, and runs h on each while
// heartbeating its lease, then finishes it by h's verdict (see the package
// documentation). It returns nil when there is nothing (more) to claim, on
// shutdown (the in-flight event released), and after dead-lettering an event
// the queue cannot accept; an error when Redis stayed unreachable, an event
// could not be finished (the reaper recovers it), or h returned NotStarted
// (wrapped; the event was released).
func Run(ctx context.Context, log *zap.Logger, c Config, h Handler) error {
	q, err := queue.Open(c.Redis, c.Queue)
	if err != nil {
		return err
	}
	defer q.Close()
	if c.PodName == "" {
		c.PodName, _ = os.Hostname() // "" when unknown: the header leaves it out
	}
	log.Debug("starting", zap.Stringer("redis", c.Redis), zap.String("queue", c.Queue.Name), zap.String("pod", c.PodName))

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
			if c.Redis.DefaultUser() { // an ACL user's denied read would fill Redis's ACL LOG
				warnPersistence(ctx, log, q)
			}
		}

		start := time.Now()
		job := &Job{
			ID: d.Event.ID, Payload: d.Payload(), Attempt: d.Attempt, MaxAttempts: c.Queue.MaxAttempts,
			Queue: c.Queue.Name, PublishedAt: d.Event.PublishedAt,
		}
		var herr error
		var replyLost bool
		outcome, err := q.Work(ctx, d, func(hctx context.Context, _ queue.Event) error {
			herr = h.Handle(hctx, job)
			return herr
		}, queue.WorkOptions{
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
		}
		if c.RequireWait {
			fields = append(fields, zap.Float64("wait", d.Event.Wait.Seconds()))
		}
		fields = append(fields, zap.Int("attempt", d.Attempt), zap.Duration("duration", time.Since(start)))
		if !d.Event.PublishedAt.IsZero() {
			fields = append(fields, zap.Duration("latency", d.ClaimedAt.Sub(d.Event.PublishedAt)))
		}
		if replyLost {
			// The first attempt ran; its reply was lost and the retry found
			// the delivery finished by this job: the outcome is true.
			fields = append(fields, zap.Bool("reply_lost", true))
		}
		if herr != nil && outcome != queue.Acked {
			fields = append(fields, zap.String("reason", herr.Error()))
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
		case errors.Is(herr, queue.ErrNotStarted) && ctx.Err() == nil:
			log.Error("handler could not start; event released (attempt not counted)", fields...)
			return &exitCode{code: ExitNotStarted, err: fmt.Errorf("event %s: %w", d.Event.ID, herr)}
		case outcome == queue.Released:
			log.Info("shutting down; event requeued", fields...)
			return nil
		case outcome == queue.Acked:
			log.Info("event acked", fields...)
		default:
			log.Warn("event "+string(outcome), fields...)
		}
	}
	return nil
}

// finishing names what Work was doing for each outcome it returns with an
// error.
var finishing = map[queue.Outcome]string{
	queue.Acked: "ack", queue.Retried: "nack", queue.Dead: "dead-letter", queue.Released: "release",
	queue.Cancelled: "dead-letter",
}

// retryBound is how long finishing outcome was retried.
func retryBound(c Config, outcome queue.Outcome) time.Duration {
	if outcome == queue.Released {
		return c.ShutdownTimeout
	}
	return c.RedisRetryTimeout
}

// warnPersistence says, once, what a Redis restart would cost when the
// server reports weak persistence. Run only as Redis's default user (an ACL
// user such as the documented one may not read it, and a denied command
// lands in the ACL LOG); if the read fails anyway it says so at debug level.
func warnPersistence(ctx context.Context, log *zap.Logger, q *queue.Queue) {
	// Bounded so that a stalled Redis delays the event little (the lease is
	// not yet heartbeating); 3 s holds on a loaded 2-core machine.
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
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
		AnyPayload: !c.RequireWait, Pod: c.PodName,
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

// truncate keeps log lines bounded for huge bad payloads (the dead letter
// keeps the whole payload).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}
