package publisher

import (
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
)

// metrics is what the publisher exports on /metrics; every metric of the
// queue has the label queue (QUEUE). The queue's numbers are
// read from Redis at scrape time (queueCollector): they are the queue's, not
// this process's, so every replica reports the same values and they survive
// restarts. The process's own: events it published, when its reaper last
// finished a run.
type metrics struct {
	registry      *prometheus.Registry
	published     prometheus.Counter
	unreplicated  prometheus.Gauge
	reaperLastRun prometheus.Gauge
	moverLastRun  prometheus.Gauge
}

// scrapeTimeout bounds the Redis read of one scrape (Prometheus's default
// scrape timeout is 10s).
const scrapeTimeout = 3 * time.Second

// replicasWithin bounds the WAIT that counts the acknowledging replicas in
// a scrape (it returns at once when REDIS_MIN_REPLICAS of them answer).
const replicasWithin = 500 * time.Millisecond

func newMetrics(q *queue.Queue, c Config, log *zap.Logger) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redis_keda_published_total",
			Help: "Events this publisher pushed onto the pending list (each once, when its LPUSH ran on the master; with REDIS_MIN_REPLICAS, before the replicas confirmed it: see redis_keda_unreplicated_events).",
		}),
		unreplicated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redis_keda_unreplicated_events",
			Help: "Events this publisher pushed on the master that fewer than REDIS_MIN_REPLICAS replicas have acknowledged yet (it waits for them and never pushes them again); 0 without REDIS_MIN_REPLICAS.",
		}),
		reaperLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redis_keda_reaper_last_run_timestamp_seconds",
			Help: "When this publisher's reaper last finished a run without error (Unix seconds); the process start until the first run.",
		}),
	}
	m.moverLastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "redis_keda_mover_last_run_timestamp_seconds",
		Help: "When this publisher's mover (scheduled events and retries to pending) last finished a run without error (Unix seconds); the process start until the first run.",
	})
	m.reaperLastRun.SetToCurrentTime()
	m.moverLastRun.SetToCurrentTime()
	interval := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "redis_keda_reaper_interval_seconds",
		Help: "REAP_INTERVAL: the reaper runs this often.",
	})
	interval.Set(c.ReapInterval.Seconds())
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "redis_keda_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion"})
	version := c.Version
	if version == "" {
		version = "dev"
	}
	build.WithLabelValues(version, runtime.Version()).Set(1)
	// Every metric about the queue carries queue=QUEUE, so the queues of one
	// namespace (one publisher each) are told apart and alert separately;
	// the build and the Go runtime's metrics are the process's.
	perQueue := prometheus.WrapRegistererWith(prometheus.Labels{"queue": c.Queue.Name}, m.registry)
	perQueue.MustRegister(m.published, m.unreplicated, m.reaperLastRun, m.moverLastRun, interval, newQueueCollector(q, c.Queue, log))
	m.registry.MustRegister(build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// queueCollector reads the queue with one Snapshot script per scrape: its
// cost does not depend on how many events are queued (a few list and set
// lengths, a ZCOUNT, and the first 4 KiB of the oldest pending entry and
// oldest dead letter, cut by Redis).
type queueCollector struct {
	q               *queue.Queue
	leaseDuration   time.Duration
	log             *zap.Logger
	up, items, age  *prometheus.Desc
	events, reaped  *prometheus.Desc
	expired, expiry *prometheus.Desc
	replicas        *prometheus.Desc
	minReplicas     int
	overdue         *prometheus.Desc
	overdueAge      *prometheus.Desc
}

func newQueueCollector(q *queue.Queue, qc queue.Config, log *zap.Logger) *queueCollector {
	return &queueCollector{
		q: q, leaseDuration: qc.LeaseDuration, log: log, minReplicas: qc.MinReplicas,
		replicas: prometheus.NewDesc("redis_keda_redis_replicas",
			"kind=acking: replicas of the queue's master that acknowledged its writes within 500ms at scrape time (WAIT; counted up to at least min); kind=min: REDIS_MIN_REPLICAS. Only with REDIS_MIN_REPLICAS > 0. Below min, every batch waits (redis_keda_unreplicated_events).",
			[]string{"kind"}, nil),
		up: prometheus.NewDesc("redis_keda_redis_up",
			"1 when this scrape read the queue from Redis, 0 when Redis did not answer (the queue's other metrics are then missing).", nil, nil),
		items: prometheus.NewDesc("redis_keda_queue_items",
			"Entries of the queue: pending (waiting), processing (leased by a job), scheduled (waiting for their due time: retries, delayed events), dead (dead letters).", []string{"state"}, nil),
		age: prometheus.NewDesc("redis_keda_queue_oldest_age_seconds",
			"Age of the oldest entry: pending, since the published_at of the next event to be claimed (no sample when it has none); processing, since the oldest delivery in flight was leased.",
			[]string{"state"}, nil),
		events: prometheus.NewDesc("redis_keda_events_total",
			"Outcomes counted by the queue's scripts in Redis, for every job and operator: acked, retried, dead, released, snoozed, redriven, purged_dead, purged_pending, purged_scheduled, scheduled_moved (by the mover), scheduled_redriven (made due by an operator).",
			[]string{"outcome"}, nil),
		reaped: prometheus.NewDesc("redis_keda_reaped_total",
			"Events the reapers recovered, counted in Redis: requeued (lease expired), rescued (claimed, never leased), dead (on the last attempt).",
			[]string{"result"}, nil),
		overdue: prometheus.NewDesc("redis_keda_scheduled_overdue",
			"Scheduled events (retries, delayed events) already due but not moved to pending yet: the mover's next work.", nil, nil),
		overdueAge: prometheus.NewDesc("redis_keda_scheduled_overdue_age_seconds",
			"How long the earliest overdue scheduled event has been due (0 when none): a running mover keeps it under MOVE_INTERVAL; it grows while no mover runs.", nil, nil),
		expired: prometheus.NewDesc("redis_keda_leases_expired",
			"Claims past their deadline, waiting for the reaper.", nil, nil),
		expiry: prometheus.NewDesc("redis_keda_leases_expiring",
			"Claims whose deadline is within LEASE_DURATION/2: a heartbeat is overdue, or a job died right after claiming.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.items, c.age, c.events, c.reaped, c.expired, c.expiry, c.replicas, c.overdue, c.overdueAge} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s, err := c.q.Snapshot(ctx, queue.SnapshotOptions{ExpiringWithin: c.leaseDuration / 2})
	if err != nil {
		c.log.Debug("metrics: reading the queue failed", zap.Error(err))
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for state, n := range map[string]int64{"pending": s.Pending, "processing": s.Processing, "scheduled": s.Scheduled, "dead": s.Dead} {
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(n), state)
	}
	for state, t := range map[string]time.Time{"pending": s.OldestPending, "processing": s.OldestProcessing} {
		if a, ok := s.Age(t); ok {
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, a.Seconds(), state)
		}
	}
	overdueAge, _ := s.Age(s.OldestOverdue)
	ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, float64(s.Overdue))
	ch <- prometheus.MustNewConstMetric(c.overdueAge, prometheus.GaugeValue, overdueAge.Seconds())
	for _, o := range []string{"acked", "retried", "dead", "released", "snoozed", "redriven", "purged_dead", "purged_pending", "purged_scheduled", "scheduled_moved", "scheduled_redriven"} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Counters[o]), o)
	}
	for _, r := range []string{"requeued", "rescued", "dead"} {
		ch <- prometheus.MustNewConstMetric(c.reaped, prometheus.CounterValue, float64(s.Counters["reaped_"+r]), r)
	}
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.GaugeValue, float64(s.LeasesExpired))
	ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(s.LeasesExpiring))
	if c.minReplicas > 0 {
		ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(c.minReplicas), "min")
		if n, err := c.q.AckingReplicas(ctx, replicasWithin); err == nil {
			ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(n), "acking")
		} else {
			c.log.Debug("metrics: counting the replicas failed", zap.Error(err))
		}
	}
}
