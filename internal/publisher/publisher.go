// Package publisher is the long-running Deployment's process: synthetic load,
// the reaper, the probes. The binaries publisher/ and cmd/redis-keda run it.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/redis-keda/redis-keda/internal/ui"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Summary says what the publisher program does, for its --help.
const Summary = `publishes BATCH_SIZE synthetic events every PUBLISH_INTERVAL (0 = none),
runs the reaper every REAP_INTERVAL (it brings back the events of jobs that
died) and the mover (due scheduled events and retries to pending, checked every
MOVE_INTERVAL and at each due time), serves /healthz, /readyz and /metrics on
HTTP_ADDR and the dashboard on UI_ADDR (127.0.0.1:8081: loopback, reach it
with kubectl port-forward; off to disable) until SIGTERM.`

// Config is the publisher's configuration (environment variables).
type Config struct {
	Redis queue.RedisConfig
	Queue queue.Config
	// UI is the dashboard (internal/ui): UI_ADDR and the UI_* variables.
	UI ui.Config

	PublishInterval time.Duration `env:"PUBLISH_INTERVAL" envDefault:"10s"`
	BatchSize       int           `env:"BATCH_SIZE" envDefault:"10"`
	WaitMin         int           `env:"WAIT_MIN" envDefault:"10"` // seconds
	WaitMax         int           `env:"WAIT_MAX" envDefault:"20"` // seconds
	// BatchSize 0 publishes nothing: reaper and probes only.
	// PublishLimit stops publishing after that many events (0 = never);
	// the reaper and HTTP keep running until the process is terminated.
	PublishLimit int           `env:"PUBLISH_LIMIT" envDefault:"0"`
	ReapInterval time.Duration `env:"REAP_INTERVAL" envDefault:"15s"`
	// MoveInterval bounds how long an event that became due waits in the
	// scheduled set: the mover also wakes at the next due time it knows of,
	// so this matters for events scheduled while it sleeps.
	MoveInterval    time.Duration `env:"MOVE_INTERVAL" envDefault:"500ms"`
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:":8080"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	LogLevel        zapcore.Level `env:"LOG_LEVEL" envDefault:"info"`

	// Version is the build's version (main.version), for
	// redis_keda_build_info; not read from the environment.
	Version string
}

// Validate reports the first unusable setting, naming its variable. With
// BATCH_SIZE=0 (reaper only) the publishing settings (PUBLISH_INTERVAL,
// WAIT_MIN, WAIT_MAX, PUBLISH_LIMIT) are not used, so not checked.
func (c *Config) Validate() error {
	if c.BatchSize < 0 {
		return fmt.Errorf("BATCH_SIZE=%d must be 0 (reaper only, no publishing) or more", c.BatchSize)
	}
	if c.BatchSize > 0 {
		if err := c.validatePublishing(); err != nil {
			return err
		}
	}
	switch {
	case c.ReapInterval <= 0:
		return errors.New("REAP_INTERVAL must be positive, such as 15s")
	case c.MoveInterval < time.Millisecond || c.MoveInterval > time.Minute:
		return fmt.Errorf("MOVE_INTERVAL=%s must be from 1ms to 1m (due events wait up to that long), such as 500ms", c.MoveInterval)
	case c.ShutdownTimeout <= 0:
		return errors.New("SHUTDOWN_TIMEOUT must be positive, such as 10s")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("HTTP_ADDR=%q is not [host]:port, such as :8080", c.HTTPAddr)
	}
	return nil
}

// validatePublishing checks the settings only publishing uses.
func (c *Config) validatePublishing() error {
	switch {
	case c.PublishInterval <= 0:
		return errors.New("PUBLISH_INTERVAL must be positive, such as 10s")
	case c.WaitMin < 0 || c.WaitMax < c.WaitMin:
		return fmt.Errorf("WAIT_MIN=%d and WAIT_MAX=%d must satisfy 0 <= WAIT_MIN <= WAIT_MAX (seconds)", c.WaitMin, c.WaitMax)
	case time.Duration(c.WaitMax)*time.Second > c.Queue.MaxWait:
		return fmt.Errorf("WAIT_MAX=%d is above MAX_WAIT=%s: such events would be dead-lettered", c.WaitMax, c.Queue.MaxWait)
	case c.PublishLimit < 0:
		return fmt.Errorf("PUBLISH_LIMIT=%d must be 0 (unlimited) or more", c.PublishLimit)
	}
	return nil
}

// Level is the configured log level.
func (c *Config) Level() zapcore.Level { return c.LogLevel }

// Run publishes, reaps and serves the probes until ctx ends; the batch in
// progress finishes first.
func Run(ctx context.Context, log *zap.Logger, c Config) error {
	q, err := queue.Open(c.Redis, c.Queue)
	if err != nil {
		return err
	}
	defer q.Close()

	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", c.HTTPAddr, err)
	}
	m := newMetrics(q, c, log)
	srv := &http.Server{Handler: routes(q, m.handler()), ReadHeaderTimeout: 5 * time.Second}
	log.Info("starting", zap.Stringer("redis", c.Redis), zap.String("queue", c.Queue.Name),
		zap.String("http", ln.Addr().String()), zap.Duration("publish_interval", c.PublishInterval),
		zap.Int("batch_size", c.BatchSize), zap.Int("publish_limit", c.PublishLimit))

	if c.Queue.MinReplicas > 0 {
		warnFewReplicas(ctx, log, q, c)
	}

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			select {
			case errc <- fmt.Errorf("http server: %w", err):
			default:
			}
		}
	})
	if c.UI.Enabled() {
		dash, err := ui.New(q, c.Redis, c.UI, log.Named("ui"))
		if err != nil {
			return errors.Join(err, shutdown(ctx, srv, &wg, c))
		}
		uln, err := net.Listen("tcp", c.UI.Addr)
		if err != nil {
			return errors.Join(fmt.Errorf("listen on UI_ADDR %s: %w", c.UI.Addr, err), shutdown(ctx, srv, &wg, c))
		}
		log.Info("dashboard", zap.String("ui", uln.Addr().String()), zap.Bool("read_only", c.UI.ReadOnly))
		wg.Go(func() {
			if err := dash.Serve(ctx, uln); err != nil {
				select {
				case errc <- fmt.Errorf("dashboard: %w", err):
				default:
				}
			}
		})
	}
	if c.BatchSize > 0 {
		wg.Go(func() { publishLoop(ctx, log, q, c, m) })
	} else {
		log.Info("BATCH_SIZE=0: not publishing; running the reaper and probes only")
	}
	wg.Go(func() { reapLoop(ctx, log, q, c.ReapInterval, m) })
	wg.Go(func() { moveLoop(ctx, log, q, c.MoveInterval, m) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown signal received; finishing")
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", zap.Error(err))
	}
	wg.Wait() // the loops stop on ctx; a batch in progress finishes first
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// shutdown stops the probes' server when Run fails after starting it.
func shutdown(ctx context.Context, srv *http.Server, wg *sync.WaitGroup, c Config) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	wg.Wait()
	return err
}

// warnFewReplicas warns at start when the queue's master has fewer replicas
// than REDIS_MIN_REPLICAS: every batch will then wait for them (pushed
// once; /metrics shows redis_keda_redis_replicas and
// redis_keda_unreplicated_events meanwhile).
func warnFewReplicas(ctx context.Context, log *zap.Logger, q *queue.Queue, c Config) {
	ctx, cancel := context.WithTimeout(ctx, c.ShutdownTimeout)
	defer cancel()
	n, err := q.AckingReplicas(ctx, c.Queue.MinReplicasTimeout)
	switch {
	case err != nil:
		log.Warn("could not count the Redis master's replicas (REDIS_MIN_REPLICAS is set)", zap.Error(err))
	case n < c.Queue.MinReplicas:
		log.Warn(fmt.Sprintf("the Redis master has %d acknowledging replicas, REDIS_MIN_REPLICAS=%d: each batch is pushed once and waits until enough replicas have it", n, c.Queue.MinReplicas),
			zap.Int("replicas", n), zap.Int("min_replicas", c.Queue.MinReplicas))
	}
}

func routes(q *queue.Queue, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := q.Ping(ctx); err != nil {
			http.Error(w, "redis unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// publishLoop publishes one batch now and one every interval until ctx ends
// or the limit is reached. A batch that fails to publish is kept and retried
// at the next tick with the same ids, so the generated load is not silently
// short — unless it is known to be on the master: with REDIS_MIN_REPLICAS,
// a batch whose LPUSH ran is never pushed again while the publisher waits
// for the replicas (only the WAIT is repeated: a missing replica used to
// make a copy of the batch every interval); it is pushed again only when
// the master stopped answering before the replicas had it (it may be lost
// with that master).
//
// "Published" (the published_total metric, PUBLISH_LIMIT, the log) counts
// each event once, when its LPUSH ran on the master; with
// REDIS_MIN_REPLICAS the batch is reported "published batch" once the
// replicas have it too, and redis_keda_unreplicated_events counts the
// events pushed but not yet on enough replicas.
func publishLoop(ctx context.Context, log *zap.Logger, q *queue.Queue, c Config, m *metrics) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	t := time.NewTicker(c.PublishInterval)
	defer t.Stop()
	var published int
	var batch []queue.Event
	counted := false // batch's events are in published (its LPUSH ran)
	for {
		if c.PublishLimit > 0 && published >= c.PublishLimit && batch == nil {
			log.Info("publish limit reached; publishing stops, reaper keeps running", zap.Int("published", published))
			return
		}
		if batch == nil {
			batch, counted = newBatch(rng, c, published), false
		}
		ids := []zap.Field{zap.String("first_id", batch[0].ID), zap.String("last_id", batch[len(batch)-1].ID)}
		pushed := func() {
			if !counted {
				counted = true
				published += len(batch)
				m.published.Add(float64(len(batch)))
			}
		}
		var lastWarn time.Time
		keepWaiting := func(nr *queue.NotReplicatedError) bool {
			pushed() // the WAIT answered: the LPUSH ran
			m.unreplicated.Set(float64(len(batch)))
			if time.Since(lastWarn) >= c.PublishInterval {
				lastWarn = time.Now()
				log.Warn("batch pushed, waiting for replicas; not pushing it again", append(ids, zap.Int("events", len(batch)),
					zap.Int("replicas", nr.Replicas), zap.Int("min_replicas", nr.Want), zap.String("master", nr.Master))...)
			}
			return ctx.Err() == nil
		}
		// The batch in progress finishes even if a signal arrives meanwhile,
		// within SHUTDOWN_TIMEOUT of it; a wait for replicas ends with the
		// signal (keepWaiting).
		start := time.Now()
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() { time.AfterFunc(c.ShutdownTimeout, cancel) })
		out, err := q.PublishAwaitingReplicas(pctx, keepWaiting, batch...)
		stop()
		cancel()
		var nr *queue.NotReplicatedError
		switch {
		case err == nil:
			pushed()
			m.unreplicated.Set(0)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
			stats, _ := q.Stats(sctx) // informative only
			cancel()
			waits := make([]float64, len(out))
			for i, ev := range out {
				waits[i] = ev.Wait.Seconds()
			}
			log.Info("published batch", append(ids, zap.Int("events", len(out)), zap.Int("published_total", published),
				zap.Float64s("waits", waits), zap.Duration("took", time.Since(start)),
				zap.Int64("pending", stats.Pending), zap.Int64("processing", stats.Processing), zap.Int64("dead", stats.Dead))...)
			batch = nil
		case errors.As(err, &nr) && nr.Replicas >= 0:
			// Stopped waiting (shutdown): on the master, not confirmed on
			// the replicas.
			pushed()
			log.Warn("batch pushed but not confirmed on enough replicas at shutdown; it is on the master", append(ids,
				zap.Int("events", len(batch)), zap.Int("published_total", published), zap.Error(err))...)
			batch = nil
		case nr != nil:
			pushed()
			log.Error("batch pushed, then the master stopped answering before enough replicas had it; will push it again with the same ids",
				append(ids, zap.Int("events", len(batch)), zap.Error(err))...)
		default:
			log.Error("publish failed; will retry the batch with the same ids", append(ids, zap.Int("events", len(batch)), zap.Error(err))...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// newBatch makes BATCH_SIZE events (fewer if PUBLISH_LIMIT is near) with
// waits uniform in [WAIT_MIN, WAIT_MAX] seconds. Each gets its id here, so a
// batch retried after a failed publish re-sends the same ids: if the failed
// attempt did reach Redis (its reply was lost), the duplicates are
// recognisable by id.
func newBatch(rng *rand.Rand, c Config, published int) []queue.Event {
	n := c.BatchSize
	if c.PublishLimit > 0 {
		n = min(n, c.PublishLimit-published)
	}
	batch := make([]queue.Event, n)
	for i := range batch {
		secs := c.WaitMin + rng.IntN(c.WaitMax-c.WaitMin+1)
		batch[i] = queue.Event{ID: queue.NewEventID(), Wait: time.Duration(secs) * time.Second}
	}
	return batch
}

// reapLoop recovers events of dead jobs every interval until ctx ends.
func reapLoop(ctx context.Context, log *zap.Logger, q *queue.Queue, every time.Duration, m *metrics) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := q.Reap(ctx)
		if err == nil {
			m.reaperLastRun.SetToCurrentTime()
			if merr := q.MarkRun(ctx, "reaper"); merr != nil && ctx.Err() == nil {
				log.Debug("could not record the reaper's run for the dashboard", zap.Error(merr))
			}
		}
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reap failed; will retry", zap.Error(err))
		case res.Requeued+res.Rescued+res.Dead+res.Stale > 0:
			log.Info("reaped orphaned events", zap.Int("requeued", res.Requeued), zap.Int("rescued", res.Rescued),
				zap.Int("dead", res.Dead), zap.Int("stale_claims", res.Stale), zap.Int("batches", res.Batches), zap.Duration("took", time.Since(start)))
		}
	}
}

// moveLoop moves due scheduled events (delayed events, retries) to the
// pending list until ctx ends (queue.RunMover: every interval, and at the
// next due time the last run saw). While it is down (no publisher running,
// Redis unreachable) due events wait in the scheduled set; nothing is lost,
// they are moved at its next run.
func moveLoop(ctx context.Context, log *zap.Logger, q *queue.Queue, every time.Duration, m *metrics) {
	var marked time.Time // the run last recorded for the dashboard: at most one write per 5 s
	q.RunMover(ctx, every, func(res queue.MoveResult, err error) {
		if err != nil {
			log.Warn("moving due events failed; will retry", zap.Error(err), zap.Duration("in", every))
			return
		}
		m.moverLastRun.SetToCurrentTime()
		if time.Since(marked) >= 5*time.Second {
			if merr := q.MarkRun(ctx, "mover"); merr != nil && ctx.Err() == nil {
				log.Debug("could not record the mover's run for the dashboard", zap.Error(merr))
			} else {
				marked = time.Now()
			}
		}
		if res.Dead > 0 {
			log.Error("malformed scheduled members dead-lettered; fix the producer (see README, Delayed events)", zap.Int("dead", res.Dead))
		}
		if res.Moved > 0 {
			log.Debug("moved due events to pending", zap.Int("moved", res.Moved))
		}
	})
}
