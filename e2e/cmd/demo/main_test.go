package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
)

// TestWatchCountsEveryEventThatEnteredTheQueue: issue 14 saw "all 40 events
// processed by 42 Jobs" while `redis-keda stats` said acked 42 — dev's own
// publisher had added 2. Here 2 events were in the queue before the demo's
// publisher (before=2) and the demo's publisher adds 3 (limit 3): the last
// line must say 5 events, as the stats do. A real redis-server
// (internal/redistest); the Kubernetes API is a STAND-IN (client-go's fake
// clientset) holding 5 Complete Jobs.
func TestWatchCountsEveryEventThatEnteredTheQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := redistest.Start(t)
	q, err := queue.New(srv.Client(), queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Minute, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []runtimeJob
	for i := range 5 {
		if _, err := q.Publish(ctx, queue.Event{ID: fmt.Sprintf("e%d", i), Wait: time.Second}); err != nil {
			t.Fatal(err)
		}
		d, err := q.Claim(ctx, time.Second)
		if err != nil || d == nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if err := q.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, runtimeJob(fmt.Sprintf("redis-keda-jobs-%d", i)))
	}
	kube := fake.NewClientset()
	for _, name := range jobs {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: string(name), Namespace: "redis-demo"},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}}
		if _, err := kube.BatchV1().Jobs("redis-demo").Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	_, sum := watch(ctx, kube, q, "redis-demo", 3, 2, true, &out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last string
	for _, l := range lines {
		if strings.HasPrefix(l, "all ") {
			last = l
		}
	}
	if last != "all 5 events processed by 5 Jobs" {
		t.Errorf("last line %q, want %q; output:\n%s", last, "all 5 events processed by 5 Jobs", out.String())
	}
	if sum != (summary{drained: true, events: 5, jobs: 5}) {
		t.Errorf("summary %+v", sum)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Counters["acked"] != sum.events {
		t.Errorf("stats acked %d, the run said %d events", s.Counters["acked"], sum.events)
	}
}

// runtimeJob is a Job name.
type runtimeJob string
