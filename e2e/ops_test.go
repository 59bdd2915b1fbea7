//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opsNamespace is the e2e overlay's namespace.
const opsNamespace = "redis-keda-e2e"

// `task pause` and `task resume` (k8s/scripts/pause.sh) against the real
// KEDA: paused, the ScaledJob creates no Job for waiting events; resumed,
// every event gets its Job.
func TestPauseAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b := startBed(ctx, t)
	bins := binDir(ctx, t)
	script := func(action string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "bash", "../k8s/scripts/pause.sh", action)
		cmd.Env = append(os.Environ(), "PATH="+bins+string(filepath.ListSeparator)+os.Getenv("PATH"),
			"KUBECONFIG="+b.c.Kubeconfig(), "NS="+opsNamespace)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pause.sh %s: %v\n%s", action, err, out)
		}
		return string(out)
	}
	condition := func(typ string) string {
		out, _ := b.c.Kubectl(ctx, "get", "scaledjob", "-n", opsNamespace, "redis-keda-jobs",
			"-o", fmt.Sprintf(`jsonpath={.status.conditions[?(@.type==%q)].status}`, typ))
		return strings.TrimSpace(out)
	}
	waitFor(ctx, t, "the ScaledJob to be Ready", 60*time.Second, func() bool { return condition("Ready") == "True" })

	out := script("pause")
	if !strings.Contains(out, "paused: KEDA creates no Jobs for "+opsNamespace+"/redis-keda-jobs") {
		t.Errorf("pause.sh pause said %q", out)
	}
	waitFor(ctx, t, "KEDA to report the ScaledJob Paused", 60*time.Second, func() bool { return condition("Paused") == "True" })
	payloads, ids := events("paused", 3, 1)
	t0 := time.Now()
	if err := b.q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * pollingSeconds * time.Second)
	if jobs := b.rec.jobsSince(t0); len(jobs) != 0 {
		t.Fatalf("%d Jobs created while paused", len(jobs))
	}
	if s, err := b.q.Stats(ctx); err != nil || s.Pending != 3 {
		t.Fatalf("while paused: %+v, %v; want the 3 events pending", s, err)
	}

	out = script("resume")
	if !strings.Contains(out, "resumed: KEDA creates Jobs for "+opsNamespace+"/redis-keda-jobs again") {
		t.Errorf("pause.sh resume said %q", out)
	}
	b.waitDrained(ctx, t, ids, t0, 2*time.Minute)
	if jobs := b.rec.jobsSince(t0); len(jobs) < 3 {
		t.Errorf("%d Jobs after resume, want one per event (3)", len(jobs))
	}
	if condition("Paused") == "True" {
		t.Error("the ScaledJob still reports Paused after resume")
	}
	t.Logf("pause: 3 events waited %s with no Job; resume: all processed", 5*pollingSeconds*time.Second)
}
