//go:build e2e

package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/e2e/cluster"
)

// TestWithoutKEDA: on a real API server without KEDA's CRDs, what
// `kubectl apply -k .` says is what k8s/README.md quotes, and `task deploy`
// (k8s/scripts/deploy.sh) refuses before applying anything.
func TestWithoutKEDA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins := binDir(ctx, t)
	c := startCluster(ctx, t, cluster.Options{BinDir: bins, Log: testLog{t}, WithoutKEDA: true})

	deploy := exec.CommandContext(ctx, "bash", "../k8s/scripts/deploy.sh")
	deploy.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "PATH="+bins+string(os.PathListSeparator)+os.Getenv("PATH"), "OVERLAY=dev")
	out, err := deploy.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "deploy: KEDA is not installed in the cluster") {
		t.Errorf("task deploy without KEDA: %v\n%s\nwant exit 1 and the KEDA message", err, out)
	}
	if ns, _ := c.Kubectl(ctx, "get", "namespace", "redis-demo", "--ignore-not-found", "-o", "name"); strings.TrimSpace(ns) != "" {
		t.Errorf("task deploy without KEDA applied something: %s exists", strings.TrimSpace(ns))
	}

	// As a user runs it: at the repository root.
	apply := exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), "--kubeconfig", c.Kubeconfig(), "apply", "-k", ".")
	apply.Dir = ".."
	b, err := apply.CombinedOutput()
	applyOut := string(b)
	if err == nil {
		t.Fatalf("kubectl apply -k . without KEDA succeeded:\n%s", applyOut)
	}
	readme, err := os.ReadFile(filepath.Join("..", "k8s", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var errorLines int
	for _, line := range strings.Split(applyOut, "\n") {
		if !strings.HasPrefix(line, "resource mapping not found") && !strings.HasPrefix(line, "ensure CRDs") {
			continue
		}
		errorLines++
		if !strings.Contains(string(readme), line) {
			t.Errorf("k8s/README.md does not quote kubectl's line %q", line)
		}
	}
	if errorLines == 0 || !strings.Contains(applyOut, `no matches for kind "ScaledJob" in version "keda.sh/v1alpha1"`) {
		t.Errorf("kubectl apply -k . without KEDA said:\n%s", applyOut)
	}
	t.Logf("kubectl apply -k . without KEDA:\n%s", applyOut)
}
