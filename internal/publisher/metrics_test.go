package publisher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// startPublisher runs the publisher until the test ends and waits for its
// HTTP server.
func startPublisher(t *testing.T, c Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zaptest.NewLogger(t), c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("http://" + c.HTTPAddr + "/healthz"); code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("publisher HTTP server not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape returns /metrics' body and its parsed families.
func scrape(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return string(body), fams
}

// values renders a family's samples as "label=value ... = number" lines,
// sorted, for exact comparison.
func values(fams map[string]*dto.MetricFamily, name string) []string {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []string
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		out = append(out, strings.Join(labels, ",")+" "+fmt.Sprint(v))
	}
	sort.Strings(out)
	return out
}

// label is the value of a sample's label name ("" when it has none).
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// promtool returns promtool's path, or fails with how to install it: CI
// must run these checks, never skip them.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found on PATH: install Prometheus's tools (Debian: apt-get install -y prometheus; go tool task deps GROUPS=promtool does it); the metrics and alert rules are checked with it")
	}
	return p
}

func TestMetricsScrape(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0", "REAP_INTERVAL": "1h", "LEASE_DURATION": "30s"})
	c.Version = "v1.2.3"
	rdb := srv.Client()
	q, err := queue.New(rdb, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := rdb.Time(ctx).Val()
	// Pending: the next event was published 90 s ago. In flight: one,
	// leased 45 s ago. Dead: one, dead for 2 minutes. Counters: known.
	if err := q.PublishRaw(ctx, []byte(fmt.Sprintf(`{"id":"a","published_at":%q,"wait":1}`, now.Add(-90*time.Second).UTC().Format(time.RFC3339Nano))),
		[]byte(`{"id":"b","wait":1}`), []byte(`{"id":"c","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	d, err := q.Claim(ctx, time.Second) // a
	if err != nil {
		t.Fatal(err)
	}
	rdb.ZAdd(ctx, "{events}:claimed", redis.Z{Score: float64(now.Add(-45 * time.Second).UnixMilli()), Member: d.Token})
	// The next to be claimed (the tail) was published 90 s ago.
	rdb.RPush(ctx, "events", fmt.Sprintf(`{"id":"next","published_at":%q,"wait":1}`, now.Add(-90*time.Second).UTC().Format(time.RFC3339Nano)))
	rdb.LPush(ctx, "{events}:dead", fmt.Sprintf(`{"id":"x","reason":"r","attempts":1,"dead_at":%q,"size":2,"payload":"{}"}`, now.Add(-2*time.Minute).UTC().Format(time.RFC3339Nano)))
	for i, name := range []string{"acked", "retried", "dead", "released", "reaped_requeued", "reaped_rescued", "reaped_dead", "reaped_stale", "redriven", "purged_dead", "purged_pending",
		"snoozed", "purged_scheduled", "scheduled_moved", "scheduled_redriven"} {
		rdb.HSet(ctx, "{events}:counters", name, 10+i)
	}
	// Scheduled: one event due in an hour (the mover leaves it).
	rdb.ZAdd(ctx, "{events}:scheduled", redis.Z{Score: float64(now.Add(time.Hour).UnixMilli()), Member: `n1 {"wait":1}`})

	before := time.Now()
	startPublisher(t, c)
	body, fams := scrape(t, c.HTTPAddr)

	for name, want := range map[string][]string{
		"redis_keda_redis_up":                      {"queue=events 1"},
		"redis_keda_queue_items":                   {"queue=events,state=dead 1", "queue=events,state=pending 3", "queue=events,state=processing 1", "queue=events,state=scheduled 1"},
		"redis_keda_scheduled_overdue":             {"queue=events 0"},
		"redis_keda_scheduled_overdue_age_seconds": {"queue=events 0"},
		"redis_keda_published_total":               {"queue=events 0"},
		"redis_keda_unreplicated_events":           {"queue=events 0"},
		"redis_keda_reaper_interval_seconds":       {"queue=events 3600"},
		"redis_keda_build_info":                    {"goversion=" + runtime.Version() + ",version=v1.2.3 1"},
		"redis_keda_events_total": {"outcome=acked,queue=events 10", "outcome=dead,queue=events 12", "outcome=purged_dead,queue=events 19", "outcome=purged_pending,queue=events 20",
			"outcome=purged_scheduled,queue=events 22", "outcome=redriven,queue=events 18", "outcome=released,queue=events 13", "outcome=retried,queue=events 11",
			"outcome=scheduled_moved,queue=events 23", "outcome=scheduled_redriven,queue=events 24", "outcome=snoozed,queue=events 21"},
		"redis_keda_reaped_total":    {"queue=events,result=dead 16", "queue=events,result=requeued 14", "queue=events,result=rescued 15"},
		"redis_keda_leases_expired":  {"queue=events 0"},
		"redis_keda_leases_expiring": {"queue=events 0"},
		"redis_keda_redis_replicas":  nil, // REDIS_MIN_REPLICAS=0
	} {
		if got := values(fams, name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The ages grew by the time the scrape took, no more (Redis's clock,
	// ms rounding): bounds from the clock, not a guess at how slow a loaded
	// machine is.
	took := rdb.Time(ctx).Val().Sub(now).Seconds() + 0.002
	ages := map[string][2]float64{"pending": {90 - 0.002, 90 + took}, "processing": {45 - 0.002, 45 + took}}
	for _, m := range fams["redis_keda_queue_oldest_age_seconds"].GetMetric() {
		state, v := label(m, "state"), m.GetGauge().GetValue()
		if r, ok := ages[state]; !ok || v < r[0] || v > r[1] || label(m, "queue") != "events" {
			t.Errorf("redis_keda_queue_oldest_age_seconds{state=%q} = %v, want within %v", state, v, r)
		}
		delete(ages, state)
	}
	if len(ages) != 0 {
		t.Errorf("no oldest age for %v", ages)
	}
	last := values(fams, "redis_keda_reaper_last_run_timestamp_seconds")
	var ts float64
	if len(last) == 1 && strings.HasPrefix(last[0], "queue=events ") {
		fmt.Sscan(strings.TrimPrefix(last[0], "queue=events "), &ts)
	}
	if ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("reaper last run = %q, want the process start (no run yet)", last)
	}
	if !strings.Contains(body, "# TYPE redis_keda_events_total counter") || !strings.Contains(body, "# TYPE redis_keda_queue_items gauge") {
		t.Error("metric types missing from the scrape")
	}

	// promtool lints the real scrape.
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Without a published_at on the next event, the pending age has no
	// sample (the queue never stamps the producers' bytes).
	rdb.RPush(ctx, "events", `{"wait":1}`)
	_, fams = scrape(t, c.HTTPAddr)
	for _, m := range fams["redis_keda_queue_oldest_age_seconds"].GetMetric() {
		if label(m, "state") == "pending" {
			t.Error("oldest pending age exported for an event without published_at")
		}
	}

	// Redis down: the scrape still answers, says so, and keeps the
	// process's own metrics.
	srv.Stop()
	_, fams = scrape(t, c.HTTPAddr)
	if got := values(fams, "redis_keda_redis_up"); !slices.Equal(got, []string{"queue=events 0"}) {
		t.Errorf("redis_keda_redis_up with Redis down = %q", got)
	}
	if fams["redis_keda_queue_items"] != nil || fams["redis_keda_published_total"] == nil || fams["redis_keda_build_info"] == nil {
		t.Errorf("with Redis down: queue metrics %v, own metrics %v", fams["redis_keda_queue_items"] != nil, fams["redis_keda_published_total"] != nil)
	}
}

func TestMetricsCountPublishedAndReaperRuns(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "4", "PUBLISH_LIMIT": "10", "REAP_INTERVAL": "100ms"})
	startPublisher(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, fams := scrape(t, c.HTTPAddr)
		pub := values(fams, "redis_keda_published_total")
		items := values(fams, "redis_keda_queue_items")
		if slices.Equal(pub, []string{"queue=events 10"}) && slices.Contains(items, "queue=events,state=pending 10") {
			var ts float64
			fmt.Sscan(strings.TrimPrefix(values(fams, "redis_keda_reaper_last_run_timestamp_seconds")[0], "queue=events "), &ts)
			if age := float64(time.Now().UnixMilli())/1000 - ts; age > 1 {
				t.Errorf("reaper last run %.1fs ago with REAP_INTERVAL=100ms", age)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("published_total %q, items %q; want 10 and 10 pending", pub, items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A scrape's cost does not grow with the queue: measured with 100,000
// pending events, 100,000 dead letters and 1,000 deliveries in flight, with
// the next event to be claimed 100 B, 1 MiB and 16 MiB.
func TestScrapeCostAt100k(t *testing.T) {
	if testing.Short() {
		t.Skip("fills Redis with 200k entries")
	}
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0", "REAP_INTERVAL": "1h", "MOVE_INTERVAL": "1m"}) // only the scrapes run scripts
	rdb := srv.Client()
	ctx := context.Background()
	fill := func(key string, n int, entry func(i int) string) {
		for i := 0; i < n; i += 1000 {
			pipe := rdb.Pipeline()
			for j := i; j < i+1000 && j < n; j++ {
				pipe.LPush(ctx, key, entry(j))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill("events", 100_999, func(i int) string {
		return fmt.Sprintf(`{"id":"e%06d","published_at":"2026-01-01T00:00:00Z","wait":17}`, i)
	})
	fill("{events}:dead", 100_000, func(i int) string {
		return fmt.Sprintf(`{"id":"d%06d","reason":"payload is not a JSON object","attempts":1,"dead_at":"2026-01-01T00:00:00Z","size":8,"payload":"not json"}`, i)
	})
	q, err := queue.New(rdb, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 { // in flight
		if _, err := q.Claim(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	startPublisher(t, c)

	// The next event to be claimed: small, at MAX_PAYLOAD_BYTES, and a
	// 16 MiB one a producer pushed by hand.
	for _, size := range []int{100, 1 << 20, 16 << 20} {
		next := append([]byte(`{"id":"next","published_at":"2026-01-01T00:00:00Z","wait":1,"pad":"`), bytes.Repeat([]byte("x"), size-70)...)
		next = append(next, `"}`...)
		if err := rdb.RPush(ctx, "events", next).Err(); err != nil {
			t.Fatal(err)
		}
		scrape(t, c.HTTPAddr) // loads the script
		const scrapes = 20
		rdb.ConfigResetStat(ctx)
		out0 := netOutput(t, rdb)
		var walls []time.Duration
		var body string
		for range scrapes {
			start := time.Now()
			b, fams := scrape(t, c.HTTPAddr)
			walls = append(walls, time.Since(start))
			body = b
			if got := values(fams, "redis_keda_queue_items"); !slices.Equal(got, []string{"queue=events,state=dead 100000", "queue=events,state=pending 100000", "queue=events,state=processing 1000", "queue=events,state=scheduled 0"}) {
				t.Fatalf("queue_items = %q", got)
			}
		}
		perScrape := (netOutput(t, rdb) - out0) / scrapes
		calls, usec := scriptStats(t, rdb)
		slices.Sort(walls)
		t.Logf("scrape, 100k pending (the next one %d bytes) + 100k dead + 1000 in flight: GET /metrics median %s, max %s (%d bytes); Redis: %d script calls, %.0f µs each, %d bytes sent per scrape",
			len(next), walls[scrapes/2].Round(10*time.Microsecond), walls[scrapes-1].Round(10*time.Microsecond), len(body), calls, usec, perScrape)
		if perScrape > 16<<10 {
			t.Errorf("Redis sent %d bytes per scrape, want < 16 KiB whatever the queue holds", perScrape)
		}
		if calls != scrapes {
			t.Errorf("%d script calls for %d scrapes, want one each", calls, scrapes)
		}
		if err := rdb.RPop(ctx, "events").Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func netOutput(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info := rdb.Info(context.Background(), "stats").Val()
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_net_output_bytes:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no total_net_output_bytes")
	return 0
}

// scriptStats sums EVAL and EVALSHA calls since CONFIG RESETSTAT, with
// Redis's own time per call.
func scriptStats(t *testing.T, rdb *redis.Client) (calls int64, usecPerCall float64) {
	t.Helper()
	info := rdb.Info(context.Background(), "commandstats").Val()
	var usec float64
	for _, l := range strings.Split(info, "\r\n") {
		if !strings.HasPrefix(l, "cmdstat_evalsha:") && !strings.HasPrefix(l, "cmdstat_eval:") {
			continue
		}
		_, fields, _ := strings.Cut(l, ":")
		for _, kv := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				var n int64
				fmt.Sscan(v, &n)
				calls += n
			case "usec":
				var n float64
				fmt.Sscan(v, &n)
				usec += n
			}
		}
	}
	if calls == 0 {
		return 0, 0
	}
	return calls, usec / float64(calls)
}

// Two queues in one Redis, one publisher each (as two Deployments in one
// namespace): each scrape carries its own queue's label and numbers, so
// Prometheus keeps them apart (they used to be identical series but for the
// pod, and the alerts' by (namespace) mixed them).
func TestMetricsTellQueuesApart(t *testing.T) {
	srv := redistest.Start(t)
	orders := testConfig(t, srv, map[string]string{"QUEUE": "orders", "BATCH_SIZE": "3", "PUBLISH_LIMIT": "3"})
	mail := testConfig(t, srv, map[string]string{"QUEUE": "mail", "BATCH_SIZE": "0"})
	srv.Do("LPUSH", "{mail}:dead", `{"id":"x","reason":"r","attempts":1,"dead_at":"2026-01-01T00:00:00Z","size":2,"payload":"{}"}`)
	startPublisher(t, orders)
	startPublisher(t, mail)
	deadline := time.Now().Add(10 * time.Second)
	for srv.Do("LLEN", "orders").(int64) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("orders' publisher did not publish 3 events")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, tc := range []struct {
		c    Config
		want map[string][]string
	}{
		{orders, map[string][]string{
			"redis_keda_queue_items":     {"queue=orders,state=dead 0", "queue=orders,state=pending 3", "queue=orders,state=processing 0", "queue=orders,state=scheduled 0"},
			"redis_keda_published_total": {"queue=orders 3"},
			"redis_keda_redis_up":        {"queue=orders 1"},
		}},
		{mail, map[string][]string{
			"redis_keda_queue_items":     {"queue=mail,state=dead 1", "queue=mail,state=pending 0", "queue=mail,state=processing 0", "queue=mail,state=scheduled 0"},
			"redis_keda_published_total": {"queue=mail 0"},
			"redis_keda_redis_up":        {"queue=mail 1"},
		}},
	} {
		_, fams := scrape(t, tc.c.HTTPAddr)
		for name, want := range tc.want {
			if got := values(fams, name); !slices.Equal(got, want) {
				t.Errorf("%s: %s = %q, want %q", tc.c.Queue.Name, name, got, want)
			}
		}
		// Every redis_keda_ metric but the build's carries the queue.
		for name, f := range fams {
			if !strings.HasPrefix(name, "redis_keda_") || name == "redis_keda_build_info" {
				continue
			}
			for _, m := range f.GetMetric() {
				if label(m, "queue") != tc.c.Queue.Name {
					t.Errorf("%s: %s sample without queue=%s: %v", tc.c.Queue.Name, name, tc.c.Queue.Name, m.GetLabel())
				}
			}
		}
	}
}

// Overdue scheduled events (no mover ran): their count and how long the
// earliest has been due, by Redis's clock, read by the queue collector.
func TestScheduledOverdueMetrics(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0"})
	rdb := srv.Client()
	q, err := queue.New(rdb, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := rdb.Time(ctx).Val()
	rdb.ZAdd(ctx, "{events}:scheduled", redis.Z{Score: float64(now.Add(-40 * time.Second).UnixMilli()), Member: "n1 a"},
		redis.Z{Score: float64(now.Add(-10 * time.Second).UnixMilli()), Member: "n2 b"},
		redis.Z{Score: float64(now.Add(time.Hour).UnixMilli()), Member: "n3 c"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(newQueueCollector(q, c.Queue, zaptest.NewLogger(t)))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got := values(byName, "redis_keda_scheduled_overdue"); !slices.Equal(got, []string{" 2"}) {
		t.Errorf("overdue = %q, want 2", got)
	}
	took := rdb.Time(ctx).Val().Sub(now).Seconds() + 0.002
	age := byName["redis_keda_scheduled_overdue_age_seconds"].GetMetric()[0].GetGauge().GetValue()
	if age < 40-0.002 || age > 40+took {
		t.Errorf("overdue age = %v, want 40s (+ the %vs the read took)", age, took)
	}
	if got := values(byName, "redis_keda_queue_items"); !slices.Contains(got, "state=scheduled 3") {
		t.Errorf("items = %q, want state=scheduled 3", got)
	}
}
