package publisher

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// With REDIS_MIN_REPLICAS=1 and the only replica frozen, the publisher's
// batch is refused (ErrNotReplicated, logged with its ids) and retried with
// the same ids until the replica is back; then it is published, and the
// replica has it.
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
	c := testConfig(t, master, map[string]string{"BATCH_SIZE": "3", "PUBLISH_LIMIT": "3",
		"REDIS_MIN_REPLICAS": "1", "REDIS_MIN_REPLICAS_TIMEOUT": "200ms"})
	replica.Pause()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zap.New(core), c) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for logs.FilterMessageSnippet("publish failed").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no refused publish logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	failed := logs.FilterMessageSnippet("publish failed").All()
	var nr *queue.NotReplicatedError
	for _, f := range failed[0].Context {
		if e, ok := f.Interface.(error); ok && f.Key == "error" {
			errors.As(e, &nr)
		}
	}
	if nr == nil || nr.Replicas != 0 || nr.Want != 1 || nr.Timeout != 200*time.Millisecond {
		t.Fatalf("refusal %v: want a NotReplicatedError, 0 of 1 replicas within 200ms", failed[0].ContextMap()["error"])
	}
	first, last := failed[0].ContextMap()["first_id"], failed[0].ContextMap()["last_id"]
	if again := failed[1].ContextMap(); again["first_id"] != first || again["last_id"] != last {
		t.Errorf("retry ids %v..%v, first attempt %v..%v", again["first_id"], again["last_id"], first, last)
	}
	replica.Resume()
	deadline = time.Now().Add(10 * time.Second)
	for logs.FilterMessage("published batch").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("batch never published after the replica came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub := logs.FilterMessage("published batch").All()[0].ContextMap()
	if pub["first_id"] != first || pub["last_id"] != last {
		t.Errorf("published ids %v..%v, want the refused batch's %v..%v", pub["first_id"], pub["last_id"], first, last)
	}
	// Every attempt pushed the batch on the master (the refused ones too: the
	// master had it, its replica did not), and the WAIT that succeeded
	// covers all of them: the replica holds the batch once per attempt, each
	// copy with the same ids (duplicates a consumer recognises by id).
	attempts := logs.FilterMessageSnippet("publish failed").Len() + 1
	if n := replica.Do("LLEN", "events").(int64); n != int64(3*attempts) {
		t.Errorf("the replica holds %d events, want %d (the batch of 3 once per attempt, %d attempts)", n, 3*attempts, attempts)
	}
	t.Logf("%d refusals (%v), then published with the same ids; the replica has all %d copies", attempts-1, failed[0].ContextMap()["error"], 3*attempts)
}
