//go:build e2e

package e2e_test

// The scale run of issue 19 (`task bench:e2e`): bursts of hundreds of events
// on the real node, one Job per event by KEDA, side by side with as many
// bare Jobs created by the test itself. Not part of the suite: it runs only
// when E2E_SCALE names the runs, e.g.
//
//	E2E_SCALE=1s:2:30,0s:2:30,1s:1:30 go test -tags e2e -run TestRealScale -v ./e2e
//
// (wait:pollingInterval:maxReplicaCount per run; E2E_SCALE_EVENTS, default
// 200, events per burst; E2E_SCALE_KEDA_QPS raises the KEDA operator's
// --kube-api-qps from its default 20). It reports figures; it asserts only that every
// event was acked exactly once and nothing failed or was lost.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/redis-keda/redis-keda/e2e/timeline"
	"github.com/redis-keda/redis-keda/queue"
)

// scaleSpec is one run: a burst of events of one wait, under one
// pollingInterval and maxReplicaCount.
type scaleSpec struct {
	wait    time.Duration
	polling int // seconds
	max     int // maxReplicaCount, and the bare Jobs' parallelism cap
}

func (s scaleSpec) String() string {
	return fmt.Sprintf("wait %s, pollingInterval %ds, maxReplicaCount %d", s.wait, s.polling, s.max)
}

// parseScaleSpecs reads E2E_SCALE: wait:polling:max, comma-separated.
func parseScaleSpecs(v string) ([]scaleSpec, error) {
	var out []scaleSpec
	for f := range strings.SplitSeq(v, ",") {
		p := strings.Split(strings.TrimSpace(f), ":")
		if len(p) != 3 {
			return nil, fmt.Errorf("E2E_SCALE run %q: want wait:pollingInterval:maxReplicaCount, such as 1s:2:30", f)
		}
		w, err := time.ParseDuration(p[0])
		if err != nil || w < 0 {
			return nil, fmt.Errorf("E2E_SCALE run %q: wait %q is not a duration such as 1s or 0s", f, p[0])
		}
		poll, err1 := strconv.Atoi(p[1])
		m, err2 := strconv.Atoi(p[2])
		if err1 != nil || err2 != nil || poll < 1 || m < 1 {
			return nil, fmt.Errorf("E2E_SCALE run %q: pollingInterval and maxReplicaCount must be whole numbers >= 1", f)
		}
		out = append(out, scaleSpec{wait: w, polling: poll, max: m})
	}
	return out, nil
}

// phase is one side of a run: KEDA's Jobs or the bare Jobs.
type phase struct {
	name       string
	events     int
	jobs       int // Jobs created
	empty      int // Jobs that found nothing to claim
	failed     int
	noLog      int           // events whose acking pod's log could not be read
	drain      time.Duration // the LPUSH (KEDA) or the first Job created (bare) -> queue empty (last ack)
	toJob      []time.Duration
	toRunning  []time.Duration
	toClaim    []time.Duration
	firstJob   time.Duration   // LPUSH -> the first Job created
	createEach time.Duration   // between two Jobs of the first wave
	firstWave  []time.Duration // LPUSH -> Job created of the first maxReplicaCount Jobs
	refill     []time.Duration // a Job ended -> the next Job created while events waited
	peak       int             // Jobs alive at once
	load       [2]string       // load average at start and end
	chart      string
}

func (p *phase) String() string {
	return fmt.Sprintf("%-5s %4d events -> %4d Jobs (%.2f/event, %d empty, %d failed), drain %6.1fs, peak %d Jobs, LPUSH->Job %s, ->Running %s, ->claimed %s, first Job %.1fs, first wave LPUSH->Job %s (one Job per %.0f ms), slot->next Job %s, load %s -> %s%s",
		p.name, p.events, p.jobs, float64(p.jobs)/float64(p.events), p.empty, p.failed, p.drain.Seconds(), p.peak,
		pct(p.toJob), pct(p.toRunning), pct(p.toClaim), p.firstJob.Seconds(), pct(p.firstWave), float64(p.createEach.Milliseconds()), pct(p.refill), p.load[0], p.load[1],
		map[bool]string{true: fmt.Sprintf(", %d acks without a readable log", p.noLog), false: ""}[p.noLog > 0])
}

// pct renders p50/p90/max in seconds.
func pct(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) float64 { return s[max(int(math.Ceil(p*float64(len(s))))-1, 0)].Seconds() }
	return fmt.Sprintf("%.1f/%.1f/%.1fs", q(0.5), q(0.9), s[len(s)-1].Seconds())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// TestRealScale runs the E2E_SCALE runs on the real node.
func TestRealScale(t *testing.T) {
	v := os.Getenv("E2E_SCALE")
	if v == "" {
		t.Skip("E2E_SCALE not set (the scale run of task bench:e2e, e.g. E2E_SCALE=1s:2:30)")
	}
	specs, err := parseScaleSpecs(v)
	if err != nil {
		t.Fatal(err)
	}
	n := 200
	if s := os.Getenv("E2E_SCALE_EVENTS"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("E2E_SCALE_EVENTS=%q: want a whole number >= 1", s)
		}
	}
	if !realNodeSelected() {
		t.Skip("the real node was not selected (see the node: line; E2E_NODE=real to require it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	b := startRealBed(ctx, t)
	if q := os.Getenv("E2E_SCALE_KEDA_QPS"); q != "" {
		b.setKEDAQPS(ctx, t, q)
	}

	var sb strings.Builder
	for i, s := range specs {
		name := fmt.Sprintf("run%d", i+1)
		t.Run(fmt.Sprintf("%s %s", name, s), func(t *testing.T) {
			b.setScaling(ctx, t, s.polling, s.max)
			k := b.kedaBurst(ctx, t, name, s, n)
			bare := b.bareBurst(ctx, t, name, s, n)
			ratio := k.drain.Seconds() / bare.drain.Seconds()
			line := fmt.Sprintf("%s (%s, %d events):\n  %s\n  %s\n  drain KEDA / bare = %.2f\n  charts: %s, %s\n",
				name, s, n, k, bare, ratio, k.chart, bare.chart)
			t.Log("scale report " + line)
			sb.WriteString(line)
			if k.failed+bare.failed > 0 {
				t.Errorf("%d KEDA and %d bare Jobs failed", k.failed, bare.failed)
			}
		})
	}
	t.Logf("scale run on the real node (accurate strategy, dev overlay otherwise; KEDA --kube-api-qps %s):\n%s",
		map[bool]string{true: "20 (default)", false: os.Getenv("E2E_SCALE_KEDA_QPS")}[os.Getenv("E2E_SCALE_KEDA_QPS") == ""], sb.String())
}

// setKEDAQPS gives the KEDA operator's Kubernetes client another request
// rate (--kube-api-qps, KEDA's default 20/s, burst 30: --kube-api-burst, set
// to twice the rate) and waits for the new operator pod.
func (b *realBed) setKEDAQPS(ctx context.Context, t *testing.T, qps string) {
	t.Helper()
	n, err := strconv.Atoi(qps)
	if err != nil || n < 1 {
		t.Fatalf("E2E_SCALE_KEDA_QPS=%q: want a whole number of requests per second >= 1", qps)
	}
	patch := fmt.Sprintf(`[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kube-api-qps=%d"},`+
		`{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kube-api-burst=%d"}]`, n, 2*n)
	if out, err := b.c.Kubectl(ctx, "-n", "keda", "patch", "deployment", "keda-operator", "--type=json", "-p", patch); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := b.c.Kubectl(ctx, "-n", "keda", "rollout", "status", "deployment/keda-operator", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The new pod runs the scale loops only once it holds the leader lease
	// (the old pod's may have to expire first: a first run measured its
	// first Job 17 s after the push for that reason).
	pod, err := b.c.Kubectl(ctx, "-n", "keda", "get", "pods", "-l", "app=keda-operator", "--field-selector=status.phase=Running",
		"--sort-by=.metadata.creationTimestamp", "-o", "jsonpath={.items[-1:].metadata.name}")
	if err != nil || strings.TrimSpace(pod) == "" {
		t.Fatalf("the new KEDA operator pod: %v\n%s", err, pod)
	}
	waitFor(ctx, t, "the new KEDA operator pod "+pod+" holds the leader lease", 2*time.Minute, func() bool {
		out, err := b.c.Kubectl(ctx, "-n", "keda", "get", "leases", "-o", "jsonpath={.items[*].spec.holderIdentity}")
		return err == nil && strings.Contains(out, strings.TrimSpace(pod)+"_")
	})
	t.Logf("KEDA operator: --kube-api-qps=%d --kube-api-burst=%d (pod %s leading)", n, 2*n, strings.TrimSpace(pod))
}

// setScaling patches the ScaledJob's pollingInterval and maxReplicaCount and
// waits for KEDA to have seen the new generation.
func (b *realBed) setScaling(ctx context.Context, t *testing.T, polling, maxRC int) {
	t.Helper()
	p := fmt.Sprintf(`{"spec":{"pollingInterval":%d,"maxReplicaCount":%d}}`, polling, maxRC)
	if out, err := b.c.Kubectl(ctx, "-n", devNS, "patch", "scaledjob", "redis-keda-jobs", "--type=merge", "-p", p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(ctx, t, "KEDA sees the patched ScaledJob", time.Minute, func() bool {
		out, err := b.c.Kubectl(ctx, "-n", devNS, "get", "scaledjob", "redis-keda-jobs", "-o",
			"jsonpath={.metadata.generation} {.status.conditions[?(@.type==\"Ready\")].status}")
		return err == nil && strings.HasSuffix(strings.TrimSpace(out), "True")
	})
	time.Sleep(time.Duration(2*polling) * time.Second) // the scale loop restarted with the new spec
}

// kedaBurst pushes n events in one LPUSH and lets KEDA start their Jobs.
func (b *realBed) kedaBurst(ctx context.Context, t *testing.T, run string, s scaleSpec, n int) *phase {
	b.waitIdle(ctx, t, 5*time.Minute)
	p := &phase{name: "KEDA", events: n}
	p.load[0] = loadAvg()
	t0 := time.Now()
	isOurs := func(job string) bool { return strings.HasPrefix(job, "redis-keda-jobs-") }
	finish := b.realChart(ctx, "scale-"+run+"-keda", fmt.Sprintf("scale %s, KEDA: burst of %d, %s", run, n, s), t0, isOurs)
	evs := make([]queue.Event, n)
	for i := range evs {
		evs[i] = queue.Event{ID: fmt.Sprintf("%s-k-%03d-%d", run, i, t0.UnixNano()%100000), Wait: s.wait}
	}
	evs, err := b.q.Publish(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	pushed := time.Now()
	b.waitAcked(ctx, t, evs, 10*time.Minute)
	p.drain = time.Since(t0)
	p.load[1] = loadAvg()
	// Two more polls: a late extra Job is counted.
	time.Sleep(time.Duration(2*s.polling) * time.Second)
	b.settleJobs(ctx, t, t0, isOurs)
	p.chart = finish()
	b.collect(p, t0, pushed, evs, s.max, isOurs)
	return p
}

// bareBurst is the physical limit: KEDA paused, n events already pending,
// and n Jobs made from the ScaledJob's own jobTargetRef (same image, same
// command /jobs, same env and limits) created by this test directly, at
// most s.max alive at once, the next one as soon as one ends. The finished
// ones are deleted as KEDA's history limit would (the newest 3 kept).
func (b *realBed) bareBurst(ctx context.Context, t *testing.T, run string, s scaleSpec, n int) *phase {
	b.waitIdle(ctx, t, 5*time.Minute)
	b.pauseKEDA(ctx, t, true)
	defer b.pauseKEDA(ctx, t, false)
	raw, err := b.c.Kubectl(ctx, "-n", devNS, "get", "scaledjob", "redis-keda-jobs", "-o", "jsonpath={.spec.jobTargetRef}")
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	var spec batchv1.JobSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatalf("the ScaledJob's jobTargetRef as a JobSpec: %v", err)
	}
	// A client of its own, without client-go's default limit of 5 requests
	// per second (with it the test could create a Job only every ~170 ms,
	// slower than KEDA).
	cfg := rest.CopyConfig(b.c.RESTConfig())
	cfg.QPS, cfg.Burst = 500, 1000
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("bare-%s-", run)
	isOurs := func(job string) bool { return strings.HasPrefix(job, prefix) }
	evs := make([]queue.Event, n)
	for i := range evs {
		evs[i] = queue.Event{ID: fmt.Sprintf("%s-b-%03d-%d", run, i, time.Now().UnixNano()%100000), Wait: s.wait}
	}
	if evs, err = b.q.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	p := &phase{name: "bare", events: n}
	p.load[0] = loadAvg()
	t0 := time.Now()
	finish := b.realChart(ctx, "scale-"+run+"-bare", fmt.Sprintf("scale %s, bare Jobs: %d, %s", run, n, s), t0, isOurs)
	created, deleted := 0, map[string]bool{}
	var drained time.Time
	deadline := time.Now().Add(10 * time.Minute)
	for {
		jobs := b.w.jobsSince(t0)
		alive, ended := 0, []jobRecord{}
		for _, j := range jobs {
			if !isOurs(j.name) {
				continue
			}
			if j.complete || j.failed {
				ended = append(ended, j)
			} else {
				alive++
			}
		}
		// Jobs created but not yet seen by the informer count as alive.
		alive += created - (alive + len(ended))
		for ; alive < s.max && created < n; alive++ {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s%03d", prefix, created),
				Labels: map[string]string{"app.kubernetes.io/name": "redis-keda", "app.kubernetes.io/component": "jobs"}}, Spec: *spec.DeepCopy()}
			if _, err := kube.BatchV1().Jobs(devNS).Create(ctx, job, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create bare Job %s: %v", job.Name, err)
			}
			created++
		}
		sort.Slice(ended, func(i, j int) bool { return ended[i].ended.Before(ended[j].ended) })
		for i := 0; i < len(ended)-3; i++ {
			if name := ended[i].name; !deleted[name] {
				bg := metav1.DeletePropagationBackground
				_ = kube.BatchV1().Jobs(devNS).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
				deleted[name] = true
			}
		}
		if created == n && drained.IsZero() {
			if st, err := b.q.Stats(ctx); err == nil && st.Pending == 0 && st.Processing == 0 {
				drained = time.Now()
			}
		}
		if created == n && len(ended) == n && !drained.IsZero() {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("bare Jobs: %d created, %d ended after 10 min", created, len(ended))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.waitAcked(ctx, t, evs, 2*time.Minute)
	p.drain = drained.Sub(t0)
	p.load[1] = loadAvg()
	b.settleJobs(ctx, t, t0, isOurs)
	p.chart = finish()
	b.collect(p, t0, t0, evs, s.max, isOurs)
	return p
}

// pauseKEDA sets or removes KEDA's paused annotation. Paused: it waits
// until the ScaledJob reports Paused=True (KEDA has stopped its scale loop).
// Resumed: KEDA restarts the loop at once but may report Paused=False later
// (ops_test.go checks that Jobs start again), so the wait is bounded.
func (b *realBed) pauseKEDA(ctx context.Context, t *testing.T, pause bool) {
	t.Helper()
	arg := "autoscaling.keda.sh/paused-"
	if pause {
		arg = "autoscaling.keda.sh/paused=true"
	}
	if out, err := b.c.Kubectl(ctx, "-n", devNS, "annotate", "scaledjob", "redis-keda-jobs", arg, "--overwrite"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	paused := func() string {
		out, _ := b.c.Kubectl(ctx, "-n", devNS, "get", "scaledjob", "redis-keda-jobs", "-o", "jsonpath={.status.conditions[?(@.type==\"Paused\")].status}")
		return strings.TrimSpace(out)
	}
	if pause {
		waitFor(ctx, t, "ScaledJob Paused=True", time.Minute, func() bool { return paused() == "True" })
		return
	}
	for end := time.Now().Add(30 * time.Second); paused() == "True" && time.Now().Before(end); {
		time.Sleep(time.Second)
	}
	t.Logf("KEDA resumed (Paused condition %q)", paused())
}

// waitAcked waits until the queue is empty and Redis's acked counter covers
// the events (their logs may come later).
func (b *realBed) waitAcked(ctx context.Context, t *testing.T, evs []queue.Event, within time.Duration) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("%d events acked", len(evs)), within, func() bool {
		s, err := b.q.Stats(ctx)
		return err == nil && s.Pending == 0 && s.Processing == 0
	})
	if s, err := b.q.Stats(ctx); err != nil || s.Dead != 0 {
		t.Errorf("after the burst: stats %+v, %v (want nothing dead)", s, err)
	}
}

// settleJobs waits until every Job of the phase ended and its logs were read.
func (b *realBed) settleJobs(ctx context.Context, t *testing.T, t0 time.Time, isOurs func(string) bool) {
	t.Helper()
	waitFor(ctx, t, "every Job ended and its logs read", 3*time.Minute, func() bool {
		for _, j := range b.w.jobsSince(t0) {
			if isOurs(j.name) && !j.complete && !j.failed {
				return false
			}
		}
		return b.w.logsPending() == 0
	})
}

// collect fills the phase's counts and latencies from the Jobs, pods and
// logs the watch recorded.
func (b *realBed) collect(p *phase, t0, pushed time.Time, evs []queue.Event, maxRC int, isOurs func(string) bool) {
	var jobs []jobRecord
	for _, j := range b.w.jobsSince(t0) {
		if isOurs(j.name) {
			jobs = append(jobs, j)
		}
	}
	p.jobs = len(jobs)
	p.peak = maxConcurrent(jobs)
	var ends []time.Time
	for _, j := range jobs {
		if j.failed {
			p.failed++
		}
		if !j.ended.IsZero() {
			ends = append(ends, j.ended)
		}
		for _, l := range b.w.logLines(j.name) {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "no event to claim") {
				p.empty++
			}
		}
	}
	for _, e := range evs {
		a := b.w.ackOf(e.ID)
		if a == nil {
			p.noLog++
			continue
		}
		p.toJob = append(p.toJob, a.jobCreated.Sub(pushed))
		if !a.podRunning.IsZero() { // a pod may go to Succeeded before Running is seen
			p.toRunning = append(p.toRunning, a.podRunning.Sub(pushed))
		}
		// The job logs publish -> claim; published_at is the Publish call.
		p.toClaim = append(p.toClaim, e.PublishedAt.Add(a.latency).Sub(pushed))
	}
	// The first wave: the first maxReplicaCount Jobs, which found room at
	// once; the API server creates them one after the other.
	if len(jobs) > 0 {
		p.firstJob = jobs[0].created.Sub(pushed)
		w := min(maxRC, len(jobs)) - 1
		if w > 0 {
			p.createEach = jobs[w].created.Sub(jobs[0].created) / time.Duration(w)
		}
	}
	for i := 0; i < len(jobs) && i < maxRC; i++ {
		p.firstWave = append(p.firstWave, jobs[i].created.Sub(pushed))
	}
	// A slot freed -> the next Job: Job k (k >= maxRC, in creation order)
	// could start once the (k-maxRC+1)-th Job ended.
	sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
	for k := maxRC; k < len(jobs); k++ {
		if i := k - maxRC; i < len(ends) {
			p.refill = append(p.refill, max(jobs[k].created.Sub(ends[i]), 0))
		}
	}
}

// realChart records the queue and the phase's Jobs every 250 ms and writes
// reports/<name>-<time>.svg and .png at the repository root; finish returns
// the path.
func (b *realBed) realChart(ctx context.Context, name, title string, since time.Time, isOurs func(string) bool) (finish func() string) {
	rec := timeline.Start(ctx, title, 250*time.Millisecond, func(ctx context.Context) (timeline.Sample, error) {
		st, err := b.q.Stats(ctx)
		if err != nil {
			return timeline.Sample{}, err
		}
		s := timeline.Sample{Pending: st.Pending, Processing: st.Processing, Dead: st.Dead}
		for _, j := range b.w.jobsSince(since) {
			switch {
			case !isOurs(j.name):
			case j.failed:
				s.FailedJobs++
			case j.complete:
				s.CompletedJobs++
			default:
				s.ActiveJobs++
			}
		}
		return s, nil
	})
	return func() string {
		tl := rec.Stop()
		for _, j := range b.w.jobsSince(since) {
			if isOurs(j.name) {
				tl.Marks = append(tl.Marks, timeline.Mark{At: j.created.Sub(since), Label: "first Job"})
				break
			}
		}
		rel := filepath.Join("reports", fmt.Sprintf("%s-%s.svg", name, since.UTC().Format("20060102-150405")))
		for _, p := range []string{rel, strings.TrimSuffix(rel, ".svg") + ".png"} {
			if err := tl.Write(filepath.Join("..", p)); err != nil {
				return "(none: " + err.Error() + ")"
			}
		}
		return rel + " (and .png)"
	}
}
