//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRunner: `redis-keda run` injected by k8s/components/runner into an
// image that is not the project's (the bed's debootstrap Debian), deployed
// with `task deploy OVERLAY=e2e-node-runner`, on the real node. The program,
// k8s/overlays/e2e-node-runner/e2e-handler.sh, does what each payload says
// and prints JSON lines ({"handler":…,"id":…,"attempt":…}) that the pod
// logs keep: what the program did is checked there, what the queue did in
// Redis.
//
//	cd e2e && E2E_CACHE=/work/e2e-cache flock /work/realnode.lock \
//	  go test -tags e2e -run TestRunner -count=1 -v -timeout 40m ./...
func TestRunner(t *testing.T) {
	if !realNodeSelected() {
		t.Skip("the real node was not selected (see the node: line; E2E_NODE=real to require it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 38*time.Minute)
	defer cancel()
	b := startRealBed(ctx, t)

	t0 := time.Now()
	out := b.task(ctx, t, "deploy", "OVERLAY=e2e-node-runner", "TAG=e2e-node")
	t.Logf("task deploy OVERLAY=e2e-node-runner (%s):\n%s", time.Since(t0).Round(time.Millisecond), out)
	got, err := b.c.Kubectl(ctx, "-n", devNS, "get", "scaledjob", "redis-keda-jobs", "-o",
		`jsonpath={.spec.envSourceContainerName} {.spec.jobTargetRef.template.spec.containers[0].command} {.spec.jobTargetRef.template.spec.containers[0].image}`)
	if err != nil || got != `workload ["/redis-keda/redis-keda","run","--"] redis-keda-e2e/redis:bookworm` {
		t.Fatalf("ScaledJob after the deploy: %q (%v)", got, err)
	}
	b.waitDeploymentReady(ctx, t, "redis-keda-publisher", 2*time.Minute)
	b.waitIdle(ctx, t, 3*time.Minute)
	// KEDA applies the new template to Jobs it creates from its next poll on.
	time.Sleep(3 * devPolling * time.Second)

	t.Run("N events, N Jobs, each handled once", func(t *testing.T) { testRunnerOnce(ctx, t, b) })
	t.Run("exit 1 retried, then dead with the stderr tail", func(t *testing.T) {
		testRunnerDead(ctx, t, b, "fail-1", "fail", fmt.Sprintf("failed on attempt %d of %d (MAX_ATTEMPTS): exit status 1: failing on purpose: fail-1", devMaxAttempts, devMaxAttempts), devMaxAttempts)
	})
	t.Run("a delayed event starts no pod before its time", func(t *testing.T) { testRunnerDelayed(ctx, t, b) })
	t.Run("exit 65 dead on the first attempt", func(t *testing.T) {
		testRunnerDead(ctx, t, b, "never-1", "never", fmt.Sprintf("failed on attempt 1 of %d, not retried: exit status 65: this one can never succeed: never-1", devMaxAttempts), 1)
	})
	t.Run("time limit: SIGTERM, killed, retried", func(t *testing.T) { testRunnerTimeLimit(ctx, t, b) })
	t.Run("pod deleted mid-event: SIGTERM, released, done by another Job", func(t *testing.T) { testRunnerPodDeleted(ctx, t, b) })
	t.Run("a daemon does not keep the Job", func(t *testing.T) { testRunnerDaemon(ctx, t, b) })
	t.Run("no Redis password in the program's environment", func(t *testing.T) { testRunnerEnv(ctx, t, b) })
	t.Run("OOM-killed program: retried, the runner reports it", func(t *testing.T) { testRunnerOOM(ctx, t, b) })
}

// handlerLines are the program's lines for id (what it did), and runnerLines
// the runner's outcome lines for id, in the logs of Jobs created since t0.
func (b *realBed) handlerLines(t0 time.Time, id string) (handler, runner []map[string]any) {
	for _, j := range b.w.jobsSince(t0) {
		for _, l := range b.w.logLines(j.name) {
			switch {
			case l["id"] != id:
			case l["handler"] != nil:
				handler = append(handler, l)
			case l["outcome"] != nil:
				runner = append(runner, l)
			}
		}
	}
	return handler, runner
}

func (b *realBed) publishDo(ctx context.Context, t *testing.T, payloads ...string) time.Time {
	t.Helper()
	t0 := time.Now()
	bs := make([][]byte, len(payloads))
	for i, p := range payloads {
		bs[i] = []byte(p)
	}
	if err := b.q.PublishRaw(ctx, bs...); err != nil {
		t.Fatal(err)
	}
	return t0
}

func testRunnerOnce(ctx context.Context, t *testing.T, b *realBed) {
	const n = 6
	var payloads, ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("ok-%d", i))
		payloads = append(payloads, fmt.Sprintf(`{"id":%q,"do":"ok","note":"not the sleep's format: no wait"}`, ids[i]))
	}
	t0 := b.publishDo(ctx, t, payloads...)
	b.waitIdle(ctx, t, 4*time.Minute)
	b.settle(ctx, t, t0)
	// One Job per event, plus any twin KEDA starts when a pod has not
	// claimed within one pollingInterval (the residual race documented in
	// k8s/base/scaledjob.yaml; the runner's init container makes a pod's
	// start longer): such a twin must find nothing and exit 0.
	jobs := b.w.jobsSince(t0)
	empty := 0
	for _, j := range jobs {
		for _, l := range b.w.logLines(j.name) {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "no event to claim") {
				empty++
			}
		}
	}
	t.Logf("%d events -> %d Jobs (%d found nothing)", n, len(jobs), empty)
	if len(jobs)-empty != n {
		t.Errorf("%d Jobs, %d of them empty-handed, for %d events: want one Job per event plus empty-handed twins", len(jobs), empty, n)
	}
	for _, j := range jobs {
		if !j.complete {
			t.Errorf("Job %s not Complete (failed=%v)", j.name, j.failed)
		}
	}
	for _, id := range ids {
		h, r := b.handlerLines(t0, id)
		if len(h) != 1 || h[0]["handler"] != "ran" || h[0]["attempt"] != 1.0 {
			t.Errorf("%s: the program's lines %v, want it ran once, attempt 1", id, h)
		}
		if len(r) != 1 || r[0]["outcome"] != "acked" {
			t.Errorf("%s: the runner's outcome lines %v, want one acked", id, r)
		}
	}
}

func testRunnerDead(ctx context.Context, t *testing.T, b *realBed, id, do, reason string, attempts int) {
	t0 := b.publishDo(ctx, t, fmt.Sprintf(`{"id":%q,"do":%q}`, id, do))
	waitFor(ctx, t, id+" dead-lettered", time.Duration(attempts)*2*time.Minute, func() bool {
		s, err := b.q.Stats(ctx)
		return err == nil && s.Dead == 1 && s.Pending == 0 && s.Processing == 0
	})
	b.settle(ctx, t, t0)
	dls, err := b.q.DeadLetters(ctx, 10)
	if err != nil || len(dls) != 1 || dls[0].ID != id || dls[0].Reason != reason || dls[0].Attempts != attempts {
		t.Errorf("dead letters %+v (%v), want %s: %q after %d attempts", dls, err, id, reason, attempts)
	}
	h, r := b.handlerLines(t0, id)
	var tries []int
	for _, l := range h {
		n, _ := l["attempt"].(float64)
		tries = append(tries, int(n))
	}
	slices.Sort(tries)
	var want []int
	for i := 1; i <= attempts; i++ {
		want = append(want, i)
	}
	if !slices.Equal(tries, want) {
		t.Errorf("the program ran attempts %v, want %v", tries, want)
	}
	t.Logf("%s: %d runs, runner outcomes %v", id, len(h), outcomes(r))
	if attempts > 1 {
		checkRetrySpacing(t, b, t0, id, attempts)
	}
	for _, j := range b.w.jobsSince(t0) {
		if !j.complete {
			t.Errorf("Job %s not Complete: a failing program is the event's failure, not the Job's", j.name)
		}
	}
	b.dropQueue(t)
}

func outcomes(lines []map[string]any) []string {
	var out []string
	for _, l := range lines {
		out = append(out, fmt.Sprint(l["outcome"]))
	}
	return out
}

func testRunnerTimeLimit(ctx context.Context, t *testing.T, b *realBed) {
	const id = "slow-1"
	t0 := b.publishDo(ctx, t, `{"id":"slow-1","do":"slow"}`)
	waitFor(ctx, t, id+" acked on its second attempt", 4*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	b.settle(ctx, t, t0)
	h, r := b.handlerLines(t0, id)
	var got []string
	for _, l := range h {
		got = append(got, fmt.Sprintf("%v@%v", l["handler"], l["attempt"]))
	}
	slices.Sort(got)
	if want := []string{"ran@1", "ran@2", "term@1"}; !slices.Equal(got, want) {
		t.Errorf("the program's lines %v, want %v (it got the SIGTERM at the limit)", got, want)
	}
	var reason string
	for _, l := range r {
		if l["outcome"] == "retried" {
			reason, _ = l["reason"].(string)
		}
	}
	const prefix = "timed out after 40s (RUN_TIMEOUT), killed by signal SIGKILL (9)"
	if !strings.HasPrefix(reason, prefix) {
		t.Errorf("retried reason %q, want %q…", reason, prefix)
	}
	if a := b.w.ackOf(id); a.attempt != 2 {
		t.Errorf("acked on attempt %d, want 2", a.attempt)
	}
}

func testRunnerPodDeleted(ctx context.Context, t *testing.T, b *realBed) {
	const id = "hold-1"
	t0 := b.publishDo(ctx, t, fmt.Sprintf(`{"id":%q,"do":"hold","until":%d}`, id, time.Now().Add(35*time.Second).Unix()))
	var victim, container string
	waitFor(ctx, t, id+" in flight in a running pod", time.Minute, func() bool {
		if p := b.w.podClaiming(ctx, b, id); p != nil {
			victim, container = p.Name, p.Spec.Containers[0].Name
		}
		return victim != ""
	})
	// Follow the victim's log from now on: a deleted pod's log can be gone
	// by the time its container's end is seen (seen once in CI: no lines).
	followed := b.w.followLogs(ctx, victim, container)
	time.Sleep(2 * time.Second) // the program has set its trap
	if err := b.kube.CoreV1().Pods(devNS).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, id+" acked by another Job", 3*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	b.settle(ctx, t, t0)
	var lines []map[string]any
	select {
	case lines = <-followed:
	case <-ctx.Done():
		t.Fatalf("the deleted pod's log stream did not end: %v", ctx.Err())
	}
	if len(lines) == 0 {
		lines = b.w.logLinesOfPod(victim)
	}
	var first []string // the program's lines and the runner's outcome (dev logs at debug: skip the rest)
	for _, l := range lines {
		switch {
		case l["id"] != id:
		case l["handler"] != nil:
			first = append(first, fmt.Sprint(l["handler"]))
		case l["outcome"] != nil:
			first = append(first, fmt.Sprint(l["outcome"]))
		}
	}
	if want := []string{"ran", "term", "released"}; !slices.Equal(first, want) {
		t.Errorf("deleted pod %s: lines for %s %v, want the program ran, got SIGTERM, the runner released", victim, id, first)
	}
	if term := b.w.terminated(victim); term == nil || term.ExitCode != 0 {
		t.Errorf("deleted pod's container: %+v, want exit 0", term)
	}
	if a := b.w.ackOf(id); a.pod == victim || a.attempt != 1 {
		t.Errorf("acked by %s on attempt %d, want another pod, attempt 1 (a release is not an attempt)", a.pod, a.attempt)
	}
}

func testRunnerDaemon(ctx context.Context, t *testing.T, b *realBed) {
	const id = "daemon-1"
	t0 := b.publishDo(ctx, t, `{"id":"daemon-1","do":"daemon"}`)
	waitFor(ctx, t, id+" acked", 2*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	b.settle(ctx, t, t0)
	jobs := b.w.jobsSince(t0)
	if len(jobs) != 1 || !jobs[0].complete {
		t.Fatalf("Jobs %+v, want one Complete", jobs)
	}
	drained := false
	for _, l := range b.w.logLines(jobs[0].name) {
		if strings.Contains(fmt.Sprint(l["msg"]), "stderr is still held open") {
			drained = true // control: the escaped daemon did hold it
		}
	}
	if !drained {
		t.Errorf("no drain-bound line: the daemon did not hold stderr, or the runner waited for it")
	}
	if h, _ := b.handlerLines(t0, id); len(h) != 2 || h[1]["handler"] != "forked" {
		t.Errorf("the program's lines %v, want ran and forked", h)
	}
}

func testRunnerEnv(ctx context.Context, t *testing.T, b *realBed) {
	const id = "env-1"
	t0 := b.publishDo(ctx, t, `{"id":"env-1","do":"env"}`)
	waitFor(ctx, t, id+" acked", 2*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	b.settle(ctx, t, t0)
	h, _ := b.handlerLines(t0, id)
	if len(h) != 2 || h[1]["handler"] != "env-clean" {
		t.Errorf("the program's lines %v, want ran and env-clean (no PASSWORD variable, no password value)", h)
	}
}

func testRunnerOOM(ctx context.Context, t *testing.T, b *realBed) {
	const id = "oom-1"
	t0 := b.publishDo(ctx, t, `{"id":"oom-1","do":"oom"}`)
	waitFor(ctx, t, id+" retried after an OOM kill", 3*time.Minute, func() bool {
		_, r := b.handlerLines(t0, id)
		return slices.Contains(outcomes(r), "retried")
	})
	_, r := b.handlerLines(t0, id)
	reason := ""
	for _, l := range r {
		if l["outcome"] == "retried" {
			reason, _ = l["reason"].(string)
			break
		}
	}
	t.Logf("the runner's reason: %q", reason)
	if !strings.HasPrefix(reason, "killed by signal SIGKILL (9)") {
		t.Errorf("retried reason %q, want killed by signal SIGKILL (9)…", reason)
	}
	if !strings.Contains(reason, "out of memory") {
		t.Logf("the runner could not read the cgroup's oom_kill count here; the reason names the signal only")
	}
	// The runner survived: every pod of the event ended with the runner's
	// exit 0 and a Complete Job. (containerd on cgroup v1 labels a container
	// "OOMKilled" when any of its processes was OOM-killed: logged only.)
	b.settle(ctx, t, t0)
	for _, j := range b.w.jobsSince(t0) {
		if !j.complete {
			t.Errorf("Job %s not Complete", j.name)
		}
	}
	for _, p := range b.w.oomKilledSince(t0) {
		if term := b.w.terminated(p); term == nil || term.ExitCode != 0 {
			t.Errorf("pod %s: %+v, want the runner's exit 0 after its program's OOM kill", p, term)
		} else {
			t.Logf("pod %s: exit 0, container reason %q (an OOM kill happened inside it: the program's)", p, term.Reason)
		}
	}
	b.dropQueue(t)
	b.waitIdle(ctx, t, 3*time.Minute)
}

// The e2e-node-runner overlay's retry schedule (RETRY_BASE=2s,
// RETRY_FACTOR=2, RETRY_MAX=8s, RETRY_JITTER=0): the delay after attempt k.
func e2eRetryDelay(k int) time.Duration { return min(2*time.Second<<(k-1), 8*time.Second) }

// checkRetrySpacing: each retry of id started no earlier than its nack
// (the runner's "retried" line for attempt k, written just after the nack)
// plus the schedule's delay, and the Job that ran attempt k+1 was created within
// the delay + MOVE_INTERVAL (500ms) + pollingInterval (2s) + a pod start's
// slack (15 s) of the nack. It logs expected and measured gaps.
func checkRetrySpacing(t *testing.T, b *realBed, t0 time.Time, id string, attempts int) {
	t.Helper()
	type run struct {
		created, nacked, started time.Time
	}
	byAttempt := map[int]run{}
	for _, j := range b.w.jobsSince(t0) {
		for _, l := range b.w.logLines(j.name) {
			if l["id"] != id || l["outcome"] == nil {
				continue
			}
			n, _ := l["attempt"].(float64)
			at, err := time.Parse("2006-01-02T15:04:05.000Z0700", fmt.Sprint(l["time"]))
			if err != nil {
				t.Errorf("runner line %v: time: %v", l, err)
				continue
			}
			d, _ := time.ParseDuration(fmt.Sprint(l["duration"]))
			if d == 0 {
				if f, ok := l["duration"].(float64); ok {
					d = time.Duration(f * float64(time.Second))
				}
			}
			byAttempt[int(n)] = run{created: j.created, nacked: at, started: at.Add(-d)}
		}
	}
	const pollingInterval, moveInterval, podStart = 2 * time.Second, 500 * time.Millisecond, 15 * time.Second
	for k := 1; k < attempts; k++ {
		prev, next := byAttempt[k], byAttempt[k+1]
		if prev.nacked.IsZero() || next.created.IsZero() {
			t.Errorf("%s: no runner line for attempt %d or %d (%v)", id, k, k+1, byAttempt)
			continue
		}
		want := e2eRetryDelay(k)
		startGap, jobGap := next.started.Sub(prev.nacked), next.created.Sub(prev.nacked)
		// The "retried" line is written after the nack ran (its reply, the
		// log write: 16 ms seen at load average 47), so the nack — and the
		// due time it set, nack + delay by Redis's clock — lies up to that
		// much before the line: allow 250 ms. The exact comparison (each
		// start against the due time read from the scheduled set) is the
		// runner's chaos test.
		if startGap < want-250*time.Millisecond {
			t.Errorf("%s: attempt %d started %s after attempt %d's nack, before its delay %s", id, k+1, startGap, k, want)
		}
		if jobGap > want+moveInterval+pollingInterval+podStart {
			t.Errorf("%s: the Job of attempt %d was created %s after attempt %d's nack, want within %s + MOVE_INTERVAL + pollingInterval + pod start", id, k+1, jobGap, k, want)
		}
		t.Logf("%s: retry %d: expected delay %s; measured: Job created %s, attempt started %s after the nack", id, k, want, jobGap.Round(time.Millisecond), startGap.Round(time.Millisecond))
	}
}

// A delayed event (PublishRawIn 20 s, by Redis's clock) starts no Job before
// its due time: every Job created since the publish is created after it, and
// the event is acked on attempt 1 by the first Job that ran it.
func testRunnerDelayed(ctx context.Context, t *testing.T, b *realBed) {
	const id, delay = "later-1", 20 * time.Second
	b.waitIdle(ctx, t, 3*time.Minute)
	t0 := time.Now()
	if err := b.q.PublishRawIn(ctx, delay, []byte(`{"id":"later-1","do":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, id+" acked", 3*time.Minute, func() bool { return b.w.ackOf(id) != nil })
	b.settle(ctx, t, t0)
	due := t0.Add(delay) // a lower bound of the due time (server TIME at the store >= t0 on this host)
	jobs := b.w.jobsSince(t0)
	if len(jobs) == 0 {
		t.Fatal("no Job recorded for the delayed event")
	}
	for _, j := range jobs {
		if j.created.Before(due) {
			t.Errorf("Job %s created %s after the publish, before the event's delay %s", j.name, j.created.Sub(t0).Round(time.Millisecond), delay)
		}
	}
	a := b.w.ackOf(id)
	if a.attempt != 1 {
		t.Errorf("%s acked on attempt %d, want 1", id, a.attempt)
	}
	t.Logf("%s: published for +%s; first Job created at +%s (%d Jobs)", id, delay, jobs[0].created.Sub(t0).Round(time.Millisecond), len(jobs))
}
