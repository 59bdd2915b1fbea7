//go:build e2e

package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/realnode"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

// The dev overlay, as k8s/overlays/e2e-node deploys it.
const (
	devNS          = "redis-demo"
	devUser        = "redis-keda" // the application ACL user (REDIS_USERNAME)
	devPassword    = "redis-keda-dev-only"
	devMaxReplicas = 5 // maxReplicaCount
	devPolling     = 2 // pollingInterval, seconds
	devMaxAttempts = 5 // MAX_ATTEMPTS (base)
	devJobMemLimit = 32 << 20
	devMaxPayload  = 1 << 20 // MAX_PAYLOAD_BYTES (base)
	nonrootUID     = "65532"
	redisCLIImage  = "redis-keda-e2e/redis:bookworm" // REDIS_CLI_IMAGE for task load / stats
)

// realBed: control plane + the real node + the dev overlay deployed with
// `task deploy OVERLAY=e2e-node`.
type realBed struct {
	c    *cluster.Cluster
	n    *realnode.Node
	kube kubernetes.Interface
	rdb  *redis.Client // the in-cluster Redis, through its Service
	q    *queue.Queue
	w    *podWatch
	root string   // repository root
	env  []string // for task/kubectl: KUBECONFIG, PATH with the bed's kubectl
}

// TestRealNode is the end-to-end suite on the real node, in order.
func TestRealNode(t *testing.T) {
	if !realNodeSelected() {
		t.Skip("the real node was not selected (see the node: line; E2E_NODE=real to require it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	b := startRealBed(ctx, t)

	t.Run("1 one Job per event (task load)", func(t *testing.T) { testRealOneJobPerEvent(ctx, t, b) })
	t.Run("4 nonroot 65532 and read-only root", func(t *testing.T) { testRealNonroot(ctx, t, b) })
	t.Run("5 publisher readiness follows Redis", func(t *testing.T) { testRealReadiness(ctx, t, b) })
	t.Run("2 kubelet SIGTERM releases the event", func(t *testing.T) { testRealSIGTERM(ctx, t, b) })
	t.Run("6 scaling report", func(t *testing.T) { testRealScaling(ctx, t, b) })
	t.Run("3 OOM-killed payload is dead-lettered", func(t *testing.T) { testRealOOM(ctx, t, b) })
	t.Run("7 task ui reaches the dashboard", func(t *testing.T) { testRealDashboard(ctx, t, b) })
}

func startRealBed(ctx context.Context, t *testing.T) *realBed {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := startCluster(ctx, t, cluster.Options{
		BinDir: os.Getenv("E2E_BIN_DIR"), Log: testLog{t},
		NodeIP: realnode.NodeIP, KEDAInCluster: true,
	})
	n, err := realnode.Start(ctx, realnode.Options{NodeDir: os.Getenv("E2E_NODE_DIR"), Cluster: c, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, n.LogDir())
		}
		if err := n.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	stopOnSignal(t, n, c)
	t.Logf("node: %s; bring-up (control plane + node + CoreDNS + KEDA) took %s", n.Versions(), time.Since(start).Round(time.Millisecond))
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	b := &realBed{c: c, n: n, kube: kube, root: root,
		env: append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "PATH="+c.BinDir()+":"+os.Getenv("PATH"), "REDIS_CLI_IMAGE="+redisCLIImage)}
	b.w = newPodWatch(ctx, t, kube, devNS)

	// As a user deploys: the project's task, the e2e-node overlay (dev with
	// the local image names).
	t0 := time.Now()
	out := b.task(ctx, t, "deploy", "OVERLAY=e2e-node", "TAG=e2e-node")
	t.Logf("task deploy OVERLAY=e2e-node (%s):\n%s", time.Since(t0).Round(time.Millisecond), out)
	b.waitStatefulSet(ctx, t, "redis-keda-redis", 3*time.Minute)
	b.waitDeploymentReady(ctx, t, "redis-keda-publisher", 2*time.Minute)
	t.Logf("in-cluster Redis (PVC bound) and publisher Ready %s after deploy", time.Since(t0).Round(time.Millisecond))

	// The tests push their own events: the demo publisher stops publishing
	// (BATCH_SIZE=0 keeps its reaper and probes), as README says for
	// production. Its first batches drain through KEDA Jobs.
	if out, err := c.Kubectl(ctx, "-n", devNS, "set", "env", "deployment/redis-keda-publisher", "BATCH_SIZE=0"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "-n", devNS, "rollout", "status", "deployment/redis-keda-publisher", "--timeout=120s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	svc, err := kube.CoreV1().Services(devNS).Get(ctx, "redis-keda-redis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: svc.Spec.ClusterIP + ":6379", Username: devUser, Password: devPassword})
	t.Cleanup(func() { _ = b.rdb.Close() })
	if b.q, err = queue.New(b.rdb, queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: devMaxAttempts, MaxWait: 5 * time.Minute, MaxPayloadBytes: devMaxPayload}); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	b.waitIdle(ctx, t, 5*time.Minute)
	t.Logf("the publisher's own events drained by Jobs in %s", time.Since(t1).Round(time.Second))
	return b
}

// task runs `go tool task <args>` in the repository root against the bed.
func (b *realBed) task(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "task"}, args...)...)
	cmd.Dir, cmd.Env = b.root, b.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("go tool task %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func (b *realBed) waitStatefulSet(ctx context.Context, t *testing.T, name string, within time.Duration) {
	t.Helper()
	waitFor(ctx, t, "statefulset "+name+" ready", within, func() bool {
		s, err := b.kube.AppsV1().StatefulSets(devNS).Get(ctx, name, metav1.GetOptions{})
		return err == nil && s.Status.ReadyReplicas == 1
	})
}

func (b *realBed) waitDeploymentReady(ctx context.Context, t *testing.T, name string, within time.Duration) {
	t.Helper()
	waitFor(ctx, t, "deployment "+name+" available", within, func() bool {
		d, err := b.kube.AppsV1().Deployments(devNS).Get(ctx, name, metav1.GetOptions{})
		return err == nil && deploymentAvailable(d)
	})
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == 1 && d.Status.AvailableReplicas == 1 && d.Status.Replicas == 1
}

// waitIdle waits until the queue is empty and no job is running.
func (b *realBed) waitIdle(ctx context.Context, t *testing.T, within time.Duration) {
	t.Helper()
	waitFor(ctx, t, "queue empty (nothing scheduled either) and no Job running", within, func() bool {
		s, err := b.q.Stats(ctx)
		return err == nil && s.Pending == 0 && s.Processing == 0 && s.Scheduled == 0 && b.w.activeJobs() == 0
	})
}

func (b *realBed) publisherPod(ctx context.Context, t *testing.T) *corev1.Pod {
	t.Helper()
	pods, err := b.kube.CoreV1().Pods(devNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=publisher"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return p
		}
	}
	t.Fatalf("no running publisher pod (%d pods)", len(pods.Items))
	return nil
}

// ---- 1 ----------------------------------------------------------------

func testRealOneJobPerEvent(ctx context.Context, t *testing.T, b *realBed) {
	const n = 8
	t0 := time.Now()
	out := b.task(ctx, t, "load", fmt.Sprintf("N=%d", n), "WAIT_MIN=1", "WAIT_MAX=3")
	t.Logf("task load:\n%s", strings.TrimSpace(out))
	if !strings.Contains(out, fmt.Sprintf("pending: %d", n)) && !strings.Contains(out, "pending: ") {
		t.Errorf("task load did not report the pending count:\n%s", out)
	}
	b.waitIdle(ctx, t, 3*time.Minute)
	b.settle(ctx, t, t0)
	jobs := b.w.jobsSince(t0)
	acked, empty := 0, 0
	for _, j := range jobs {
		for _, l := range b.w.logLines(j.name) {
			switch {
			case l["outcome"] == "acked":
				acked++
			case strings.HasPrefix(fmt.Sprint(l["msg"]), "no event to claim"):
				empty++
			}
		}
	}
	t.Logf("%d events -> %d Jobs (%d acked an event, %d found nothing): %.2f Jobs per event", n, len(jobs), acked, empty, float64(len(jobs))/n)
	if len(jobs) != n {
		t.Errorf("%d Jobs for %d events, want exactly one per event", len(jobs), n)
	}
	if acked != n {
		t.Errorf("%d events acked, want %d", acked, n)
	}
	for _, j := range jobs {
		if !j.complete {
			t.Errorf("Job %s not Complete (failed=%v)", j.name, j.failed)
		}
	}
}

// settle waits two more polls after everything finished, so a late extra
// Job would be counted.
func (b *realBed) settle(ctx context.Context, t *testing.T, since time.Time) {
	t.Helper()
	time.Sleep(2 * devPolling * time.Second)
	waitFor(ctx, t, "every Job finished and its logs read", 2*time.Minute, func() bool {
		for _, j := range b.w.jobsSince(since) {
			if !j.complete && !j.failed {
				return false
			}
		}
		return b.w.logsPending() == 0
	})
}

// ---- 4 ----------------------------------------------------------------

func testRealNonroot(ctx context.Context, t *testing.T, b *realBed) {
	// A job pod while it runs, and the publisher.
	evs, err := b.q.Publish(ctx, queue.Event{ID: "nonroot-probe", Wait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var jobPod *corev1.Pod
	waitFor(ctx, t, "a job pod running the event", 60*time.Second, func() bool {
		jobPod = b.w.podClaiming(ctx, b, evs[0].ID)
		return jobPod != nil
	})
	for _, p := range []*corev1.Pod{jobPod, b.publisherPod(ctx, t)} {
		cs := p.Status.ContainerStatuses[0]
		pid, err := b.n.ContainerPID(ctx, cs.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]string{}
		for _, line := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "Uid" || k == "Gid" || k == "CapEff" || k == "NoNewPrivs") {
				ids[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		want := nonrootUID + " " + nonrootUID + " " + nonrootUID + " " + nonrootUID
		if ids["Uid"] != want || ids["Gid"] != want {
			t.Errorf("%s (pid %d): Uid %q Gid %q, want real/effective/saved/fs all %s", p.Name, pid, ids["Uid"], ids["Gid"], nonrootUID)
		}
		if ids["CapEff"] != "0000000000000000" || ids["NoNewPrivs"] != "1" {
			t.Errorf("%s: CapEff %s NoNewPrivs %s, want no capabilities and no_new_privs", p.Name, ids["CapEff"], ids["NoNewPrivs"])
		}
		root := rootMountOptions(t, pid)
		if !strings.HasPrefix(root, "ro,") && root != "ro" {
			t.Errorf("%s: root mounted %q, want read-only", p.Name, root)
		}
		t.Logf("%s pid %d: Uid %s, Gid %s, CapEff %s, NoNewPrivs %s, / mounted %s", p.Name, pid, ids["Uid"], ids["Gid"], ids["CapEff"], ids["NoNewPrivs"], root)
	}
	// The job's memory limit, as the kernel enforces it.
	cs := jobPod.Status.ContainerStatuses[0]
	pid, err := b.n.ContainerPID(ctx, cs.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	limit := memoryLimit(t, pid)
	if limit != devJobMemLimit {
		t.Errorf("job container memory.limit_in_bytes %d, want %d (32Mi)", limit, devJobMemLimit)
	}
	t.Logf("job container memory cgroup limit %d bytes", limit)
	b.waitIdle(ctx, t, 2*time.Minute)
}

func rootMountOptions(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			return f[5]
		}
	}
	t.Fatalf("pid %d: no / in mountinfo", pid)
	return ""
}

func memoryLimit(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			fmt.Sscan(string(v), &n)
			return n
		}
		if len(parts) == 3 && parts[0] == "0" && parts[1] == "" { // cgroup v2
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[2], "memory.max"))
			if err == nil {
				var n int64
				fmt.Sscan(string(v), &n)
				return n
			}
		}
	}
	t.Fatalf("pid %d: no memory cgroup", pid)
	return 0
}

// ---- 5 ----------------------------------------------------------------

func testRealReadiness(ctx context.Context, t *testing.T, b *realBed) {
	ready := func() bool {
		p := b.publisherPod(ctx, t)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	if !ready() {
		t.Fatal("publisher not Ready at the start")
	}
	scale := func(n int) {
		if out, err := b.c.Kubectl(ctx, "-n", devNS, "scale", "statefulset/redis-keda-redis", fmt.Sprintf("--replicas=%d", n)); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	t0 := time.Now()
	scale(0)
	waitFor(ctx, t, "publisher NotReady with Redis gone", 90*time.Second, func() bool { return !ready() })
	down := time.Since(t0)
	restarts := b.publisherPod(ctx, t).Status.ContainerStatuses[0].RestartCount
	t1 := time.Now()
	scale(1)
	b.waitStatefulSet(ctx, t, "redis-keda-redis", 2*time.Minute)
	redisUp := time.Since(t1)
	waitFor(ctx, t, "publisher Ready again with Redis back", 90*time.Second, ready)
	up := time.Since(t1)
	after := b.publisherPod(ctx, t).Status.ContainerStatuses[0].RestartCount
	t.Logf("Redis scaled to 0 -> publisher NotReady in %s; Redis back (Ready in %s) -> publisher Ready in %s; publisher restarts %d -> %d",
		down.Round(100*time.Millisecond), redisUp.Round(100*time.Millisecond), up.Round(100*time.Millisecond), restarts, after)
	if after != restarts {
		t.Errorf("publisher restarted (%d -> %d): liveness must not depend on Redis", restarts, after)
	}
	if err := b.q.Ping(ctx); err != nil {
		t.Fatalf("Redis through its Service after restart: %v", err)
	}
}

// ---- 2 ----------------------------------------------------------------

func testRealSIGTERM(ctx context.Context, t *testing.T, b *realBed) {
	const wait = 25 * time.Second
	evs, err := b.q.Publish(ctx, queue.Event{ID: "sigterm-probe", Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	id := evs[0].ID
	// Every job pod running while the probe is in flight is deleted: the
	// dev publisher's own events may keep other pods busy, and which pod
	// holds the probe shows in its log (outcome=released with the id).
	var victims []corev1.Pod
	waitFor(ctx, t, "job pods while the event is in flight", 60*time.Second, func() bool {
		victims = b.w.podsClaiming(ctx, b, id)
		return len(victims) > 0
	})
	time.Sleep(time.Second) // well inside the wait: the lease is taken, the job sleeps
	del := time.Now()
	deleted := map[string]bool{}
	for _, v := range victims {
		if err := b.kube.CoreV1().Pods(devNS).Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted[v.Name] = true
	}
	for _, v := range victims {
		var term *corev1.ContainerStateTerminated
		waitFor(ctx, t, "a deleted pod's container to terminate", 60*time.Second, func() bool {
			term = b.w.terminated(v.Name)
			return term != nil
		})
		stopped := time.Since(del)
		t.Logf("pod %s deleted (grace %ds): container terminated after %s: exit %d, reason %s",
			v.Name, *v.Spec.TerminationGracePeriodSeconds, stopped.Round(100*time.Millisecond), term.ExitCode, term.Reason)
		if term.ExitCode != 0 {
			t.Errorf("pod %s: exit code %d after kubelet's SIGTERM, want 0 (event released, clean exit)", v.Name, term.ExitCode)
		}
		if grace := time.Duration(*v.Spec.TerminationGracePeriodSeconds) * time.Second; stopped >= grace {
			t.Errorf("pod %s stopped after %s, not before the %s grace: SIGKILL, not SIGTERM handling", v.Name, stopped, grace)
		}
	}
	// The event went back to pending, not counted as an attempt: a new Job
	// processes it and acks it as attempt 1.
	waitFor(ctx, t, "the released event acked by another Job", 2*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	a := b.w.ackOf(id)
	holder := ""
	for _, v := range victims {
		for _, l := range b.w.logLinesOfPod(v.Name) {
			if l["outcome"] == "released" && l["id"] == id {
				holder = v.Name
			}
		}
	}
	t.Logf("%d job pod(s) deleted; %q held the probe and logged outcome=released; acked by pod %s, attempt %d, %s after the delete",
		len(victims), holder, a.pod, a.attempt, time.Since(del).Round(100*time.Millisecond))
	if deleted[a.pod] {
		t.Errorf("acked by the deleted pod %s", a.pod)
	}
	if a.attempt != 1 {
		t.Errorf("acked as attempt %d, want 1 (a release is not an attempt)", a.attempt)
	}
	if holder == "" {
		t.Errorf("no deleted pod logged outcome=released for %s", id)
	}
	b.waitIdle(ctx, t, 2*time.Minute)
}

// ---- 6 ----------------------------------------------------------------

type scalingRun struct {
	name      string
	events    int
	wait      time.Duration
	gap       time.Duration // between LPUSHes (0: one burst)
	jobs      int
	empty     int
	failed    int
	drain     time.Duration
	toJob     []time.Duration
	toRunning []time.Duration
	toClaim   []time.Duration
}

func testRealScaling(ctx context.Context, t *testing.T, b *realBed) {
	runs := []*scalingRun{
		{name: "burst", events: 15, wait: 2 * time.Second},
		{name: "trickle", events: 10, wait: 2 * time.Second, gap: 3 * time.Second},
		{name: "sparse", events: 5, wait: 1 * time.Second, gap: 3 * devPolling * time.Second},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			b.scalingRun(ctx, t, r)
			t.Logf("scaling report %s", r)
			if r.jobs != r.events {
				t.Errorf("%s: %d Jobs for %d events (%.2f per event), want exactly 1.00", r.name, r.jobs, r.events, float64(r.jobs)/float64(r.events))
			}
			if r.failed != 0 {
				t.Errorf("%s: %d Jobs failed", r.name, r.failed)
			}
		})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-8s %6s %5s %9s %8s  %-19s %-19s %-19s\n", "load", "events", "jobs", "jobs/evt", "drain", "LPUSH->Job p50/p90", "->Running p50/p90", "->claim p50/p90")
	for _, r := range runs {
		fmt.Fprintf(&sb, "%-8s %6d %5d %9.2f %8s  %-19s %-19s %-19s\n", r.name, r.events, r.jobs, float64(r.jobs)/float64(r.events),
			r.drain.Round(100*time.Millisecond), pq(r.toJob), pq(r.toRunning), pq(r.toClaim))
	}
	t.Logf("scaling on the real node (dev overlay: pollingInterval %ds, maxReplicaCount %d, accurate):%s", devPolling, devMaxReplicas, sb.String())
}

func (r *scalingRun) String() string {
	return fmt.Sprintf("%s: %d events (wait %s, gap %s) -> %d Jobs (%.2f per event, %d empty, %d failed), drain %s, LPUSH->Job %s, ->pod Running %s, ->claim %s (p50/p90)",
		r.name, r.events, r.wait, r.gap, r.jobs, float64(r.jobs)/float64(r.events), r.empty, r.failed, r.drain.Round(100*time.Millisecond), pq(r.toJob), pq(r.toRunning), pq(r.toClaim))
}

func pq(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[int(math.Ceil(p*float64(len(s))))-1] }
	return fmt.Sprintf("%.1fs/%.1fs", q(0.5).Seconds(), q(0.9).Seconds())
}

func (b *realBed) scalingRun(ctx context.Context, t *testing.T, r *scalingRun) {
	b.waitIdle(ctx, t, 2*time.Minute)
	t0 := time.Now()
	pushed := map[string]time.Time{}
	var ids []string
	for i := range r.events {
		if i > 0 && r.gap > 0 {
			time.Sleep(r.gap)
		}
		id := fmt.Sprintf("%s-%02d-%d", r.name, i, t0.UnixNano()%100000)
		if _, err := b.q.Publish(ctx, queue.Event{ID: id, Wait: r.wait}); err != nil {
			t.Fatal(err)
		}
		pushed[id] = time.Now()
		ids = append(ids, id)
	}
	var done time.Time
	waitFor(ctx, t, r.name+" drained", 5*time.Minute, func() bool {
		s, err := b.q.Stats(ctx)
		if err != nil || s.Pending != 0 || s.Processing != 0 {
			return false
		}
		for _, id := range ids {
			if b.w.ackOf(id) == nil {
				return false
			}
		}
		done = time.Now()
		return true
	})
	r.drain = done.Sub(t0)
	b.settle(ctx, t, t0)
	jobs := b.w.jobsSince(t0)
	r.jobs = len(jobs)
	for _, j := range jobs {
		if j.failed {
			r.failed++
		}
		for _, l := range b.w.logLines(j.name) {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "no event to claim") {
				r.empty++
			}
		}
	}
	for _, id := range ids {
		a := b.w.ackOf(id)
		if a == nil {
			t.Errorf("%s never acked", id)
			continue
		}
		p := pushed[id]
		r.toJob = append(r.toJob, a.jobCreated.Sub(p))
		r.toRunning = append(r.toRunning, a.podRunning.Sub(p))
		r.toClaim = append(r.toClaim, a.latency)
	}
}

// ---- 3 ----------------------------------------------------------------

func testRealOOM(ctx context.Context, t *testing.T, b *realBed) {
	b.waitIdle(ctx, t, 2*time.Minute)
	// The job holds an entry it receives about 1.6 times over (README's
	// measurement) plus ~10 MiB of runtime. With dev's 32 Mi job limit the
	// payload would have to be ~20 MiB, and a 20 MiB event OOM-kills dev's
	// in-cluster Redis (limit 128 Mi: it crash-loops replaying the AOF) —
	// measured here. So the jobs get a 12 Mi limit for this test (an
	// operator's `kubectl patch` of the ScaledJob; KEDA's gradual rollout
	// gives new Jobs the new template) — an ordinary event still completes
	// under it (checked first) — and the payload is 10 MiB (an 8 MiB one
	// fitted in 16 Mi): above MAX_PAYLOAD_BYTES, so the job would
	// dead-letter it at once, but the kernel kills it while it receives the
	// entry, before it can lease or dead-letter it. The reaper must count
	// each such delivery and dead-letter the event after MAX_ATTEMPTS.
	// Pushed with a plain LPUSH: the queue's own Publish refuses oversize
	// payloads.
	const limit = "12Mi"
	b.setJobMemory(ctx, t, limit, limit)
	defer b.setJobMemory(ctx, t, "16Mi", "32Mi") // dev's request and limit
	ok, err := b.q.Publish(ctx, queue.Event{ID: "small-under-12Mi", Wait: 0})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "an ordinary event acked under the "+limit+" limit", 2*time.Minute, func() bool { return b.w.ackOf(ok[0].ID) != nil })
	if a := b.w.ackOf(ok[0].ID); b.w.memoryLimit(a.pod) != limit {
		t.Fatalf("the ordinary event's pod %s had memory limit %q, want %s (the patch did not reach the Job template)", a.pod, b.w.memoryLimit(a.pod), limit)
	}
	b.waitIdle(ctx, t, 2*time.Minute)
	const id = "oom-probe"
	payload := fmt.Sprintf(`{"id":%q,"wait":1,"pad":%q}`, id, strings.Repeat("x", 10<<20))
	t0 := time.Now()
	if err := b.rdb.LPush(ctx, "events", payload).Err(); err != nil {
		t.Fatal(err)
	}
	defer b.dropQueue(t) // leave nothing behind, whatever happened
	var dead []queue.DeadLetter
	var oom []string
	deadline := time.Now().Add(10 * time.Minute)
	for {
		oom = b.w.oomKilledSince(t0)
		var err error
		if dead, err = b.q.DeadLetters(ctx, 10); err != nil {
			t.Logf("read dead letters: %v (Redis: %s)", err, b.podState(ctx, "redis"))
		} else if len(dead) > 0 {
			break
		}
		if len(oom) > devMaxAttempts+1 {
			t.Fatalf("LOOPS: %d pods OOM-killed (exit 137) for one event, still not dead-lettered (MAX_ATTEMPTS %d); publisher: %s",
				len(oom), devMaxAttempts, b.publisherState(ctx))
		}
		if time.Now().After(deadline) {
			t.Fatalf("not dead-lettered after 10 min; %d OOM kills so far; publisher: %s", len(oom), b.publisherState(ctx))
		}
		time.Sleep(time.Second)
	}
	t.Logf("dead-lettered %s after the LPUSH, after %d OOM kills: attempts %d, size %d, reason %q; publisher: %s",
		time.Since(t0).Round(time.Second), len(oom), dead[0].Attempts, dead[0].Size, dead[0].Reason, b.publisherState(ctx))
	if len(oom) == 0 {
		t.Fatal("no pod was OOM-killed")
	}
	for _, name := range oom {
		st := b.w.terminated(name)
		if st.ExitCode != 137 || st.Reason != "OOMKilled" || b.w.memoryLimit(name) != limit {
			t.Errorf("%s: exit %d reason %s limit %s, want 137 OOMKilled %s", name, st.ExitCode, st.Reason, b.w.memoryLimit(name), limit)
		}
	}
	if len(oom) != devMaxAttempts || dead[0].Attempts != devMaxAttempts {
		t.Errorf("%d OOM kills, dead letter attempts %d; want %d and %d", len(oom), dead[0].Attempts, devMaxAttempts, devMaxAttempts)
	}
	if dead[0].Size != len(payload) || string(dead[0].Payload) != payload {
		t.Errorf("dead letter keeps %d bytes (size %d), want the %d-byte payload unchanged", len(dead[0].Payload), dead[0].Size, len(payload))
	}
	if !strings.Contains(dead[0].Reason, fmt.Sprintf("never leased on delivery %d of %d", devMaxAttempts, devMaxAttempts)) {
		t.Errorf("dead letter reason %q, want it to say the entry was never leased on delivery %d of %d", dead[0].Reason, devMaxAttempts, devMaxAttempts)
	}
	if out := b.publisherState(ctx); strings.Contains(out, "OOMKilled") {
		t.Errorf("the publisher (its reaper handled the entry) was OOM-killed: %s", out)
	}
	if out := b.podState(ctx, "redis"); strings.Contains(out, "OOMKilled") {
		t.Errorf("the in-cluster Redis was OOM-killed: %s", out)
	}
}

// setJobMemory patches the ScaledJob's job container memory request and
// limit (a request above the limit would make every Job invalid).
func (b *realBed) setJobMemory(ctx context.Context, t *testing.T, request, limit string) {
	t.Helper()
	const path = "/spec/jobTargetRef/template/spec/containers/0/resources"
	patch := fmt.Sprintf(`[{"op":"replace","path":%q,"value":%q},{"op":"replace","path":%q,"value":%q}]`,
		path+"/requests/memory", request, path+"/limits/memory", limit)
	if out, err := b.c.Kubectl(ctx, "-n", devNS, "patch", "scaledjob", "redis-keda-jobs", "--type=json", "-p", patch); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// dropQueue deletes the queue's keys: pending, every claim list, leases,
// claimed and dead (a test that failed mid-way leaves nothing behind).
func (b *realBed) dropQueue(t *testing.T) {
	ctx := context.Background()
	keys := []string{"events", "{events}:leases", "{events}:claimed", "{events}:dead"}
	tokens, _ := b.rdb.ZRange(ctx, "{events}:leases", 0, -1).Result()
	for _, tok := range tokens {
		keys = append(keys, "{events}:claim:"+tok)
	}
	if err := b.rdb.Del(ctx, keys...).Err(); err != nil {
		t.Errorf("drop the queue's keys: %v", err)
	}
}

// publisherState describes the publisher's restarts and last termination.
func (b *realBed) publisherState(ctx context.Context) string { return b.podState(ctx, "publisher") }

// podState describes the restarts and last termination of the pods of a
// component (publisher, redis).
func (b *realBed) podState(ctx context.Context, component string) string {
	pods, err := b.kube.CoreV1().Pods(devNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + component})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Sprintf("unknown (%v)", err)
	}
	var out []string
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			st := fmt.Sprintf("%s restarts %d", p.Name, c.RestartCount)
			if lt := c.LastTerminationState.Terminated; lt != nil {
				st += fmt.Sprintf(", last exit %d %s", lt.ExitCode, lt.Reason)
			}
			if w := c.State.Waiting; w != nil {
				st += ", now " + w.Reason
			}
			out = append(out, st)
		}
	}
	return strings.Join(out, "; ")
}

// ---- podWatch ---------------------------------------------------------

// podWatch records every Job and job pod of a namespace as it happens
// (observed times, sub-second), and reads each job pod's log as soon as
// its container terminates, before KEDA's history limit or the TTL
// controller deletes it.
type podWatch struct {
	kube kubernetes.Interface
	ns   string

	mu       sync.Mutex
	jobs     map[string]*jobRecord
	pods     map[string]*podRecord
	fetching sync.WaitGroup
	pending  int
}

type podRecord struct {
	name, job  string
	memLimit   string // the container's memory limit, e.g. "32Mi"
	running    time.Time
	terminated *corev1.ContainerStateTerminated
	logs       []map[string]any
	logsRead   bool
}

type ackRecord struct {
	pod                    string
	attempt                int
	jobCreated, podRunning time.Time
	latency                time.Duration // publish -> claim, from the job's log
}

func newPodWatch(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) *podWatch {
	w := &podWatch{kube: kube, ns: ns, jobs: map[string]*jobRecord{}, pods: map[string]*podRecord{}}
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	onJob := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		rec := w.jobs[j.Name]
		if rec == nil {
			rec = &jobRecord{name: j.Name, created: time.Now()}
			w.jobs[j.Name] = rec
		}
		rec.observe(j)
	}
	onPod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels["job-name"] == "" {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		rec := w.pods[p.Name]
		if rec == nil {
			rec = &podRecord{name: p.Name, job: p.Labels["job-name"], memLimit: p.Spec.Containers[0].Resources.Limits.Memory().String()}
			w.pods[p.Name] = rec
		}
		if rec.running.IsZero() && p.Status.Phase == corev1.PodRunning {
			rec.running = time.Now()
		}
		if rec.terminated == nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Terminated != nil {
			rec.terminated = p.Status.ContainerStatuses[0].State.Terminated.DeepCopy()
			w.pending++
			w.fetching.Add(1)
			go w.readLogs(ctx, p.Name, p.Spec.Containers[0].Name)
		}
	}
	ji := f.Batch().V1().Jobs().Informer()
	_, _ = ji.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onJob, UpdateFunc: func(_, o any) { onJob(o) }})
	pi := f.Core().V1().Pods().Informer()
	_, _ = pi.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) }})
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() {
		close(stop)
		f.Shutdown()
		w.fetching.Wait()
	})
	if !cache.WaitForCacheSync(ctx.Done(), ji.HasSynced, pi.HasSynced) {
		t.Fatal("informer caches did not sync")
	}
	return w
}

func (w *podWatch) readLogs(ctx context.Context, pod, container string) {
	defer w.fetching.Done()
	var lines []map[string]any
	raw, err := w.kube.CoreV1().Pods(w.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines = append(lines, m)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pods[pod].logs, w.pods[pod].logsRead = lines, err == nil
	w.pending--
}

// followLogs streams a running pod's container log until the container
// ends, and then sends its JSON lines. For a pod about to be deleted: once
// it is gone its log may be gone too, before readLogs (run when the
// container's termination is seen) asks for it.
func (w *podWatch) followLogs(ctx context.Context, pod, container string) <-chan []map[string]any {
	out := make(chan []map[string]any, 1)
	w.fetching.Add(1)
	go func() {
		defer w.fetching.Done()
		var lines []map[string]any
		rc, err := w.kube.CoreV1().Pods(w.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
		if err == nil {
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					lines = append(lines, m)
				}
			}
			rc.Close()
		}
		out <- lines
	}()
	return out
}

func (w *podWatch) logsPending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

func (w *podWatch) activeJobs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, j := range w.jobs {
		if !j.complete && !j.failed {
			// A Job deleted while active (e.g. by a test) never finishes:
			// check it still exists.
			if _, err := w.kube.BatchV1().Jobs(w.ns).Get(context.Background(), j.name, metav1.GetOptions{}); err != nil {
				j.failed = true
				continue
			}
			n++
		}
	}
	return n
}

func (w *podWatch) jobsSince(t0 time.Time) []jobRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []jobRecord
	for _, j := range w.jobs {
		if !j.created.Before(t0) {
			out = append(out, *j)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].created.Before(out[b].created) })
	return out
}

func (w *podWatch) logLines(job string) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, p := range w.pods {
		if p.job == job {
			out = append(out, p.logs...)
		}
	}
	return out
}

func (w *podWatch) logLinesOfPod(pod string) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.pods[pod]; p != nil {
		return p.logs
	}
	return nil
}

func (w *podWatch) memoryLimit(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.pods[pod]; p != nil {
		return p.memLimit
	}
	return ""
}

func (w *podWatch) terminated(pod string) *corev1.ContainerStateTerminated {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.pods[pod]; p != nil {
		return p.terminated
	}
	return nil
}

// oomKilledSince lists pods of Jobs created since t0 whose container was
// OOM-killed.
func (w *podWatch) oomKilledSince(t0 time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.pods {
		j := w.jobs[p.job]
		if j != nil && !j.created.Before(t0) && p.terminated != nil && p.terminated.Reason == "OOMKilled" {
			out = append(out, p.name)
		}
	}
	sort.Strings(out)
	return out
}

// ackOf finds the "event acked" log line for id: its pod's Job creation
// and Running times, and the publish -> claim latency the job logged.
func (w *podWatch) ackOf(id string) *ackRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pods {
		for _, l := range p.logs {
			if l["outcome"] != "acked" || l["id"] != id {
				continue
			}
			a := &ackRecord{pod: p.name, podRunning: p.running}
			if n, ok := l["attempt"].(float64); ok {
				a.attempt = int(n)
			}
			if j := w.jobs[p.job]; j != nil {
				a.jobCreated = j.created
			}
			if s, ok := l["latency"].(string); ok {
				a.latency, _ = time.ParseDuration(s)
			}
			return a
		}
	}
	return nil
}

// podClaiming returns the job pod holding id: id is in flight (claimed, in
// the processing list) and exactly one job pod runs (the tests that use it
// push one event at a time).
func (w *podWatch) podClaiming(ctx context.Context, b *realBed, id string) *corev1.Pod {
	pods := w.podsClaiming(ctx, b, id)
	if len(pods) == 1 {
		return &pods[0]
	}
	return nil
}

// podsClaiming lists the running job pods while id is in flight (leased:
// its entry is in the claim list of a token in {events}:claimed).
func (w *podWatch) podsClaiming(ctx context.Context, b *realBed, id string) []corev1.Pod {
	tokens, err := b.rdb.ZRange(ctx, "{events}:claimed", 0, -1).Result()
	if err != nil {
		return nil
	}
	inFlight := false
	for _, tok := range tokens {
		e, err := b.rdb.LIndex(ctx, "{events}:claim:"+tok, -1).Result()
		if err == nil && strings.Contains(e, fmt.Sprintf(`"id":%q`, id)) {
			inFlight = true
		}
	}
	if !inFlight {
		return nil
	}
	pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=jobs"})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}
