package publisher

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// runObserved runs the publisher with an observed logger until the test
// ends or stop is called (it returns when the publisher has).
func runObserved(t *testing.T, c Config) (logs *observer.ObservedLogs, stop func()) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zap.New(core), c) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return logs, stop
}

// waitLogs waits until n lines with the message were logged.
func waitLogs(t *testing.T, logs *observer.ObservedLogs, msg string, n int) []observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessage(msg).Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines %q after 30s, want %d; logs: %v", logs.FilterMessage(msg).Len(), msg, n, logs.All())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return logs.FilterMessage(msg).All()
}

const waitingMsg = "batch pushed, waiting for replicas; not pushing it again"

// With REDIS_MIN_REPLICAS=1 on a server with no replica, the batch is
// pushed once and the publisher repeats only the WAIT. It used to LPUSH the
// whole batch again every interval: 22 copies in 2 s with these settings,
// PUBLISH_LIMIT ignored and published_total 0. Now: exactly 2 entries after
// five intervals of waiting (the control arm: five waiting lines, each a
// PUBLISH_INTERVAL apart), published_total 2 (pushed on the master),
// unreplicated_events 2, and the start warns that the master has 0 of 1
// replicas, with the exact text.
func TestNoReplicaPushesTheBatchOnce(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "2", "PUBLISH_LIMIT": "2", "PUBLISH_INTERVAL": "200ms",
		"REDIS_MIN_REPLICAS": "1", "REDIS_MIN_REPLICAS_TIMEOUT": "100ms"})
	logs, stop := runObserved(t, c)

	start := waitLogs(t, logs, "the Redis master has 0 acknowledging replicas, REDIS_MIN_REPLICAS=1: each batch is pushed once and waits until enough replicas have it", 1)
	if f := start[0].ContextMap(); start[0].Level != zap.WarnLevel || f["replicas"] != int64(0) || f["min_replicas"] != int64(1) {
		t.Errorf("start warning %v %v", start[0].Level, f)
	}
	waiting := waitLogs(t, logs, waitingMsg, 5)
	first := waiting[0].ContextMap()
	for _, w := range waiting {
		f := w.ContextMap()
		if f["first_id"] != first["first_id"] || f["last_id"] != first["last_id"] || f["events"] != int64(2) || f["replicas"] != int64(0) || f["min_replicas"] != int64(1) || f["master"] != srv.Addr {
			t.Errorf("waiting line %v, first %v", f, first)
		}
	}
	if n := srv.Do("LLEN", "events").(int64); n != 2 {
		t.Fatalf("the pending list holds %d entries after %d waits, want the batch of 2 once", n, len(waiting))
	}
	_, fams := scrape(t, c.HTTPAddr)
	for name, want := range map[string][]string{
		"redis_keda_published_total":     {"queue=events 2"},
		"redis_keda_unreplicated_events": {"queue=events 2"},
		"redis_keda_redis_replicas":      {"kind=acking,queue=events 0", "kind=min,queue=events 1"},
	} {
		if got := values(fams, name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if n := logs.FilterMessage("published batch").Len() + logs.FilterMessageSnippet("publish failed").Len(); n != 0 {
		t.Errorf("%d lines say published or failed: the batch was never replicated", n)
	}
	// Shutdown ends the wait: the batch is reported on the master, not
	// confirmed, and not pushed again.
	stop()
	end := logs.FilterMessage("batch pushed but not confirmed on enough replicas at shutdown; it is on the master").All()
	if len(end) != 1 || end[0].ContextMap()["first_id"] != first["first_id"] || end[0].ContextMap()["published_total"] != int64(2) {
		t.Errorf("shutdown lines %v", end)
	}
	if n := srv.Do("LLEN", "events").(int64); n != 2 {
		t.Errorf("the pending list holds %d entries after shutdown, want 2", n)
	}
	t.Logf("%d WAITs answered 0 of 1 replicas; the list holds the batch once", len(waiting))
}

// With REDIS_MIN_REPLICAS=1 and the only replica frozen, the batch is
// pushed once and waited for; when the replica resumes it has the batch
// (once), the batch is published with its ids, the next one follows, and
// PUBLISH_LIMIT=6 stops publishing at exactly 6 events on the master and
// on the replica. The old publisher pushed the batch again at every
// interval: the replica held it once per attempt.
func TestBatchWaitsForAReplica(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	replica.Do("REPLICAOF", host, port)
	deadline := time.Now().Add(10 * time.Second)
	for replica.Info("master_link_status") != "up" {
		if time.Now().After(deadline) {
			t.Fatal("replica not in sync")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := testConfig(t, master, map[string]string{"BATCH_SIZE": "3", "PUBLISH_LIMIT": "6",
		"REDIS_MIN_REPLICAS": "1", "REDIS_MIN_REPLICAS_TIMEOUT": "200ms"})
	replica.Pause()
	logs, _ := runObserved(t, c)
	waiting := waitLogs(t, logs, waitingMsg, 3)
	first, last := waiting[0].ContextMap()["first_id"], waiting[0].ContextMap()["last_id"]
	if n := master.Do("LLEN", "events").(int64); n != 3 {
		t.Fatalf("the master holds %d entries while the replica is frozen, want the batch of 3 once", n)
	}
	replica.Resume()
	pub := waitLogs(t, logs, "published batch", 2)
	if f := pub[0].ContextMap(); f["first_id"] != first || f["last_id"] != last || f["published_total"] != int64(3) {
		t.Errorf("first published batch %v, want the waiting batch %v..%v", f, first, last)
	}
	if f := pub[1].ContextMap(); f["published_total"] != int64(6) || f["first_id"] == first {
		t.Errorf("second published batch %v", f)
	}
	waitLogs(t, logs, "publish limit reached; publishing stops, reaper keeps running", 1)
	// The replica acknowledged the second batch, so it has everything the
	// master had then.
	for name, srv := range map[string]*redistest.Server{"master": master, "replica": replica} {
		if n := srv.Do("LLEN", "events").(int64); n != 6 {
			t.Errorf("the %s holds %d events, want 6: each batch once", name, n)
		}
	}
	_, fams := scrape(t, c.HTTPAddr)
	for name, want := range map[string][]string{
		"redis_keda_published_total":     {"queue=events 6"},
		"redis_keda_unreplicated_events": {"queue=events 0"},
		"redis_keda_redis_replicas":      {"kind=acking,queue=events 1", "kind=min,queue=events 1"},
	} {
		if got := values(fams, name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if n := logs.FilterMessageSnippet("the Redis master has").Len(); n != 0 {
		t.Errorf("start warned about replicas although the master had its replica (frozen later)")
	}
	t.Logf("%d waits for the frozen replica, then both batches published once", logs.FilterMessage(waitingMsg).Len())
}

// PublishAwaitingReplicas stops waiting when keepWaiting says so and then
// reports the batch as on the master (Replicas >= 0), never pushed twice.
func TestPublishAwaitingReplicasStops(t *testing.T) {
	srv := redistest.Start(t)
	q, err := queue.New(srv.Client(), queue.Config{Name: "events", LeaseDuration: time.Second, MaxAttempts: 3, MaxWait: time.Hour,
		MaxPayloadBytes: 1 << 20, MinReplicas: 1, MinReplicasTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	out, err := q.PublishAwaitingReplicas(context.Background(), func(nr *queue.NotReplicatedError) bool {
		calls++
		return calls < 4
	}, queue.Event{ID: "a"}, queue.Event{ID: "b"})
	var nr *queue.NotReplicatedError
	if !errors.As(err, &nr) || nr.Replicas != 0 || nr.Want != 1 || len(out) != 2 || calls != 4 {
		t.Fatalf("out %v, err %v after %d calls", out, err, calls)
	}
	if n := srv.Do("LLEN", "events").(int64); n != 2 {
		t.Errorf("%d entries after 4 WAITs, want 2", n)
	}
	n, err := q.AckingReplicas(context.Background(), 10*time.Millisecond)
	if err != nil || n != 0 {
		t.Errorf("AckingReplicas = %d, %v", n, err)
	}
}
