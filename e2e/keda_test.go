//go:build e2e

package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/node"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

const (
	e2eNamespace   = "redis-keda-e2e" // k8s/overlays/e2e
	redisPassword  = "redis-keda-e2e-only"
	maxReplicas    = 10 // the e2e overlay's maxReplicaCount
	pollingSeconds = 2  // the e2e overlay's pollingInterval
)

// bed is the running test bed: real control plane and KEDA, the node
// stand-in, a real redis-server on the host loopback, one overlay applied in
// namespace ns. (The TLS test deploys a second one into the same cluster: a
// bed sharing c, n and kube with its own ns, Redis and recorder.)
type bed struct {
	c    *cluster.Cluster
	n    *node.Node
	kube kubernetes.Interface
	ns   string
	q    *queue.Queue
	rdb  *redis.Client
	rec  *recorder
}

// TestKEDA runs every end-to-end check on one cluster, in order.
func TestKEDA(t *testing.T) {
	// Also on a machine that runs the real node: the stand-in suite checks
	// what TestRealNode does not (every overlay server-side, poison, chaos
	// with SIGKILLs, the prod overlay over TLS with ACL users). Inside the
	// real node's sandbox its loopback-only bed works as well.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	b := startBed(ctx, t)

	t.Run("manifests apply server-side", func(t *testing.T) { testManifests(ctx, t, b) })
	t.Run("one job per event", func(t *testing.T) { testOneJobPerEvent(ctx, t, b) })
	t.Run("poison payloads", func(t *testing.T) { testPoison(ctx, t, b) })
	t.Run("chaos", func(t *testing.T) { testChaos(ctx, t, b) })
	t.Run("prod overlay with TLS and ACL users", func(t *testing.T) { testProdTLSACL(ctx, t, b) })
	t.Run("redis cluster and sentinel", func(t *testing.T) { testTopologies(ctx, t, b) })
}

func startBed(ctx context.Context, t *testing.T) *bed {
	t.Helper()
	bins := binDir(ctx, t)
	projBin := t.TempDir()
	if err := cluster.GoBuild(ctx, "..", projBin, testLog{t}, "./jobs", "./publisher"); err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.WithPassword(redisPassword), redistest.WithAOF())

	c := startCluster(ctx, t, cluster.Options{BinDir: bins, Log: testLog{t}})
	podLogs := t.TempDir()
	n, err := node.Start(ctx, node.Options{Config: c.RESTConfig(), BinDir: projBin, LogDir: podLogs, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(srv.Client(), queue.Config{Name: "events", LeaseDuration: 10 * time.Second, MaxAttempts: 5, MaxWait: 5 * time.Minute, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{c: c, n: n, kube: kube, ns: e2eNamespace, q: q, rdb: srv.Client()}

	// The e2e overlay, with REDIS_ADDR pointed at this run's redis-server.
	overlay := runtimeOverlay(t, srv.Addr)
	if out, err := c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("apply e2e overlay: %v\n%s", err, out)
	}
	b.rec = newRecorder(ctx, t, kube, b.ns)
	b.waitPublishers(ctx, t, 1)
	return b
}

// waitPublishers waits until n publisher pods are Running.
func (b *bed) waitPublishers(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("%d publisher pod(s) running in %s", n, b.ns), 60*time.Second, func() bool {
		pods, err := b.kube.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=publisher"})
		if err != nil || len(pods.Items) != n {
			return false
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				return false
			}
		}
		return true
	})
}

// runtimeOverlay writes a kustomization on top of k8s/overlays/e2e that sets
// this run's Redis address.
func runtimeOverlay(t *testing.T, redisAddr string) string {
	t.Helper()
	base, err := filepath.Abs("../k8s/overlays/e2e")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Kustomize refuses absolute resource paths: refer to the base relatively.
	if base, err = filepath.Rel(dir, base); err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
configMapGenerator:
  - name: redis-keda-config
    behavior: merge
    literals:
      - REDIS_ADDR=%s
      # pods share the host's network under the node stand-in
      - HTTP_ADDR=127.0.0.1:0
      - UI_ADDR=127.0.0.1:0
`, base, redisAddr)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testManifests(ctx context.Context, t *testing.T, b *bed) {
	// Server-side dry run needs the target namespaces to exist.
	for _, n := range []string{"redis-demo", "redis-keda"} {
		if out, err := b.c.Kubectl(ctx, "create", "namespace", n); err != nil && !strings.Contains(out, "AlreadyExists") {
			t.Fatalf("create namespace %s: %v\n%s", n, err, out)
		}
	}
	for _, dir := range []string{"..", "../k8s/overlays/dev", "../k8s/overlays/prod", "../k8s/overlays/e2e", "../k8s/overlays/example-runner"} {
		t.Run(dir, func(t *testing.T) {
			out, err := b.c.Kubectl(ctx, "apply", "--server-side", "--dry-run=server", "-k", dir)
			if err != nil {
				t.Fatalf("server-side dry run of %s: %v\n%s", dir, err, out)
			}
			if !strings.Contains(out, "scaledjob.keda.sh/redis-keda-jobs") {
				t.Errorf("dry run did not include the ScaledJob:\n%s", out)
			}
		})
	}
	// The e2e overlay was applied for real by startBed: KEDA must accept it.
	b.waitScaledJobReady(ctx, t)
}

func (b *bed) waitScaledJobReady(ctx context.Context, t *testing.T) {
	t.Helper()
	waitFor(ctx, t, "the ScaledJob in "+b.ns+" to be Ready", 60*time.Second, func() bool {
		out, err := b.c.Kubectl(ctx, "get", "scaledjob", "-n", b.ns, "redis-keda-jobs",
			"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && strings.TrimSpace(out) == "True"
	})
}

// report collects the scaling facts of one run.
type report struct {
	events, jobs, emptyJobs, failedJobs, maxConcurrent int
	firstJob, drain, ideal                             time.Duration
	duplicates                                         int
}

func (r report) String() string {
	return fmt.Sprintf(`
  events pushed                    %d
  Jobs created                     %d (overshoot %+d; %d found nothing and exited 0)
  Jobs failed                      %d
  LPUSH -> first Job               %s (pollingInterval %ds)
  drain time                       %s (ideal ceil(N/M)*wait = %s, M = maxReplicaCount %d)
  max concurrent Jobs              %d (maxReplicaCount %d)
  events processed twice           %d`,
		r.events, r.jobs, r.jobs-r.events, r.emptyJobs, r.failedJobs,
		r.firstJob.Round(10*time.Millisecond), pollingSeconds,
		r.drain.Round(10*time.Millisecond), r.ideal, maxReplicas, r.maxConcurrent, maxReplicas, r.duplicates)
}

func testOneJobPerEvent(ctx context.Context, t *testing.T, b *bed) {
	b.burst(ctx, t, "burst", 30, 2)
}

// burst pushes n events {"wait": wait} at once, waits until every one was
// acked by a job, and asserts one Job per event: no Job failed, Jobs created
// within [N, N+maxReplicaCount], never more than maxReplicaCount at a time,
// nothing processed twice. It returns the scaling report and the Jobs.
func (b *bed) burst(ctx context.Context, t *testing.T, prefix string, n, wait int) (report, []jobRecord) {
	t.Helper()
	mustBeEmpty(ctx, t, b)
	payloads, ids := events(prefix, n, wait)
	mark, chart := b.chart(ctx, t, "scaling-"+prefix, fmt.Sprintf("scaling report (%s): burst of %d events, wait %ds", b.ns, n, wait))
	t0 := time.Now()
	if err := b.q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}
	mark(fmt.Sprintf("%d events pushed", n))
	acked := b.waitDrained(ctx, t, ids, t0, 3*time.Minute)
	drain := time.Since(t0)
	mark("drained")
	b.settle(ctx, t, t0)

	jobs := b.rec.jobsSince(t0)
	r := report{events: n, jobs: len(jobs), drain: drain,
		ideal:         time.Duration(math.Ceil(float64(n)/maxReplicas)*float64(wait)) * time.Second,
		maxConcurrent: maxConcurrent(jobs)}
	for _, j := range jobs {
		if j.failed {
			r.failedJobs++
		}
		if r.firstJob == 0 || j.created.Sub(t0) < r.firstJob {
			r.firstJob = j.created.Sub(t0)
		}
	}
	r.emptyJobs = b.countLines(jobs, "no event to claim")
	for _, c := range acked {
		r.duplicates += c - 1
	}
	t.Logf("scaling report (%s: burst of %d events, wait %ds):%s\n  chart                            %s", b.ns, n, wait, r, chart())

	if r.failedJobs != 0 {
		t.Errorf("%d Jobs failed", r.failedJobs)
	}
	// Accurate strategy with pop-first jobs: KEDA may start a Job for an item
	// that a starting pod pops a moment later (kedacore/keda#5537). Bound the
	// overshoot by one poll's worth of Jobs.
	if r.jobs < n || r.jobs > n+maxReplicas {
		t.Errorf("%d Jobs for %d events, want within [N, N+maxReplicaCount=%d]", r.jobs, n, n+maxReplicas)
	}
	if r.maxConcurrent > maxReplicas {
		t.Errorf("max concurrent Jobs %d above maxReplicaCount %d", r.maxConcurrent, maxReplicas)
	}
	if r.duplicates != 0 {
		t.Errorf("%d events processed twice without any failure", r.duplicates)
	}
	return r, jobs
}

func testPoison(ctx context.Context, t *testing.T, b *bed) {
	mustBeEmpty(ctx, t, b)
	t0 := time.Now()
	bad := []string{`{"wait": "soon"}`, `definitely not json`}
	for _, p := range bad {
		if err := b.q.PublishRaw(ctx, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, "both poison payloads dead-lettered", 90*time.Second, func() bool {
		s, err := b.q.Stats(ctx)
		return err == nil && s.Dead == 2 && s.Pending == 0 && s.Processing == 0
	})
	b.settle(ctx, t, t0)
	dls, err := b.q.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range dls {
		got[string(d.Payload)] = d.Reason
	}
	for _, p := range bad {
		if got[p] == "" {
			t.Errorf("payload %q not dead-lettered with a reason: %v", p, got)
		}
	}
	jobs := b.rec.jobsSince(t0)
	for _, j := range jobs {
		if j.failed || !j.complete {
			t.Errorf("Job %s: failed=%v complete=%v; a poison payload must not fail its Job", j.name, j.failed, j.complete)
		}
	}
	if l := b.countLines(jobs, "invalid event dead-lettered"); l != 2 {
		t.Errorf("%d jobs logged the dead-lettering, want 2", l)
	}
	if len(jobs) > 2+maxReplicas {
		t.Errorf("%d Jobs for 2 poison payloads: a retry storm", len(jobs))
	}
	t.Logf("poison: 2 payloads -> 2 dead letters, %d Jobs, all Complete; reasons: %v", len(jobs), got)
	if err := b.rdb.Del(ctx, "{events}:dead").Err(); err != nil {
		t.Fatal(err)
	}
}

func testChaos(ctx context.Context, t *testing.T, b *bed) {
	const n, wait = 30, 5
	mustBeEmpty(ctx, t, b)
	payloads, ids := events("chaos", n, wait)
	t0 := time.Now()
	if err := b.q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}
	// While the burst runs: every 700 ms hit one running job pod, alternating
	// a graceful delete (SIGTERM: the job releases its event) and a SIGKILL of
	// its process (the reaper recovers the event after the lease).
	rng := rand.New(rand.NewPCG(1, 2))
	var deleted, killed int
	for deleted+killed < 10 && time.Since(t0) < 40*time.Second {
		time.Sleep(700 * time.Millisecond)
		pods := b.rec.runningJobPods(ctx, b.kube)
		if len(pods) == 0 {
			continue
		}
		p := pods[rng.IntN(len(pods))]
		if deleted <= killed {
			if err := b.kube.CoreV1().Pods(b.ns).Delete(ctx, p, metav1.DeleteOptions{}); err == nil {
				deleted++
			}
		} else if err := b.n.Signal(b.ns, p, syscall.SIGKILL); err == nil {
			killed++
		}
	}
	t.Logf("chaos: %d pods deleted gracefully, %d job processes SIGKILLed", deleted, killed)
	acked := b.waitDrained(ctx, t, ids, t0, 4*time.Minute)
	b.settle(ctx, t, t0)

	dups := 0
	for _, c := range acked {
		dups += c - 1
	}
	s, err := b.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs := b.rec.jobsSince(t0)
	failed := 0
	for _, j := range jobs {
		if j.failed {
			failed++
		}
	}
	t.Logf("chaos: %d events, %d Jobs (%d failed: a SIGKILLed job exits 137; a deleted one releases its event and exits 0), %d processed twice, 0 lost, took %s",
		n, len(jobs), failed, dups, time.Since(t0).Round(time.Second))
	if s.Dead != 0 {
		t.Errorf("dead letters after chaos: %d", s.Dead)
	}
	if dups > killed {
		t.Errorf("%d duplicates for %d kills", dups, killed)
	}
	if deleted+killed == 0 {
		t.Error("no pod was hit: the chaos test proved nothing")
	}
}

// events returns n payloads {"id":"<prefix>-i","wait":wait} and their ids.
func events(prefix string, n, wait int) ([][]byte, []string) {
	var payloads [][]byte
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		ids = append(ids, id)
		payloads = append(payloads, []byte(fmt.Sprintf(`{"id":%q,"wait":%d}`, id, wait)))
	}
	return payloads, ids
}

func mustBeEmpty(ctx context.Context, t *testing.T, b *bed) {
	t.Helper()
	s, err := b.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 0 || s.Processing != 0 || s.Dead != 0 {
		t.Fatalf("queue not empty at start: %+v", s)
	}
}

// waitDrained waits until the queue is empty and every id was acked by some
// job (read from the jobs' own log lines); it returns id -> acks.
func (b *bed) waitDrained(ctx context.Context, t *testing.T, ids []string, since time.Time, within time.Duration) map[string]int {
	t.Helper()
	var acked map[string]int
	deadline := time.Now().Add(within)
	for {
		s, err := b.q.Stats(ctx)
		acked = b.ackedIDs(b.rec.jobsSince(since))
		missing := 0
		for _, id := range ids {
			if acked[id] == 0 {
				missing++
			}
		}
		if err == nil && s.Pending == 0 && s.Processing == 0 && missing == 0 {
			return acked
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %s: stats %+v (err %v), %d of %d events never acked", within, s, err, missing, len(ids))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// settle waits until every Job created since t0 has finished and KEDA has
// had two more polls to (wrongly) create more.
func (b *bed) settle(ctx context.Context, t *testing.T, since time.Time) {
	t.Helper()
	time.Sleep(2 * pollingSeconds * time.Second)
	waitFor(ctx, t, "every Job finished", 90*time.Second, func() bool {
		for _, j := range b.rec.jobsSince(since) {
			if !j.complete && !j.failed {
				return false
			}
		}
		return true
	})
}

// ackedIDs reads the "event acked" lines of the jobs' pods.
func (b *bed) ackedIDs(jobs []jobRecord) map[string]int {
	out := map[string]int{}
	for _, line := range b.logLines(jobs) {
		if line["outcome"] == "acked" {
			if id, ok := line["id"].(string); ok {
				out[id]++
			}
		}
	}
	return out
}

func (b *bed) countLines(jobs []jobRecord, msg string) int {
	c := 0
	for _, line := range b.logLines(jobs) {
		if m, _ := line["msg"].(string); strings.HasPrefix(m, msg) {
			c++
		}
	}
	return c
}

func (b *bed) logLines(jobs []jobRecord) []map[string]any {
	var out []map[string]any
	for _, j := range jobs {
		for _, pod := range b.rec.podsOf(j.name) {
			f, err := os.Open(b.n.LogPath(b.ns, pod))
			if err != nil {
				continue // not started yet
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					out = append(out, m)
				}
			}
			f.Close()
		}
	}
	return out
}

// recorder watches Jobs and Pods of the namespace: every Job KEDA creates is
// seen, even after the TTL controller or KEDA's history limit deletes it.
type recorder struct {
	ns   string
	mu   sync.Mutex
	jobs map[string]*jobRecord
	pods map[string][]string // job name -> pod names
	live map[string]string   // pod name -> phase
}

type jobRecord struct {
	name             string
	labels           map[string]string // as created
	created, ended   time.Time
	complete, failed bool
}

func newRecorder(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) *recorder {
	r := &recorder{ns: ns, jobs: map[string]*jobRecord{}, pods: map[string][]string{}, live: map[string]string{}}
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	onJob := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		rec := r.jobs[j.Name]
		if rec == nil {
			// Observed times (sub-second), not the API's second-resolution stamps.
			rec = &jobRecord{name: j.Name, labels: j.Labels, created: time.Now()}
			r.jobs[j.Name] = rec
		}
		rec.observe(j)
	}
	onPod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		job := p.Labels["job-name"]
		if job == "" {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, seen := r.live[p.Name]; !seen {
			r.pods[job] = append(r.pods[job], p.Name)
		}
		r.live[p.Name] = string(p.Status.Phase)
	}
	ji := f.Batch().V1().Jobs().Informer()
	_, _ = ji.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onJob, UpdateFunc: func(_, o any) { onJob(o) }})
	pi := f.Core().V1().Pods().Informer()
	_, _ = pi.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) },
		DeleteFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				r.mu.Lock()
				r.live[p.Name] = "Deleted"
				r.mu.Unlock()
			}
		}})
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() { close(stop); f.Shutdown() })
	if !cache.WaitForCacheSync(ctx.Done(), ji.HasSynced, pi.HasSynced) {
		t.Fatal("informer caches did not sync")
	}
	return r
}

func (r *recorder) jobsSince(t0 time.Time) []jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []jobRecord
	for _, j := range r.jobs {
		if !j.created.Before(t0) {
			out = append(out, *j)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].created.Before(out[b].created) })
	return out
}

func (r *recorder) podsOf(job string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pods[job]...)
}

// runningJobPods lists job pods the API server reports Running right now.
func (r *recorder) runningJobPods(ctx context.Context, kube kubernetes.Interface) []string {
	pods, err := kube.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=jobs",
		FieldSelector: fields.OneTermEqualSelector("status.phase", string(corev1.PodRunning)).String(),
	})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// maxConcurrent is the largest number of Jobs alive at one instant.
func maxConcurrent(jobs []jobRecord) int {
	type ev struct {
		at    time.Time
		delta int
	}
	var evs []ev
	for _, j := range jobs {
		evs = append(evs, ev{j.created, +1})
		if !j.ended.IsZero() {
			evs = append(evs, ev{j.ended, -1})
		}
	}
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].at.Equal(evs[b].at) {
			return evs[a].delta < evs[b].delta // an end and a start at the same second: end first
		}
		return evs[a].at.Before(evs[b].at)
	})
	cur, top := 0, 0
	for _, e := range evs {
		cur += e.delta
		top = max(top, cur)
	}
	return top
}

func waitFor(ctx context.Context, t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// observe records a Job's terminal conditions when first seen (observed
// times, sub-second, not the API's second-resolution stamps).
func (rec *jobRecord) observe(j *batchv1.Job) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch {
		case c.Type == batchv1.JobComplete && !rec.complete:
			rec.complete, rec.ended = true, time.Now()
		case c.Type == batchv1.JobFailed && !rec.failed:
			rec.failed, rec.ended = true, time.Now()
		}
	}
}
