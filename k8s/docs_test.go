package k8s_test

// What k8s/README.md tells users to run or paste works on the manifests as
// they are. (The `kubectl apply -k .` error it quotes for a cluster without
// KEDA is checked against a real API server by e2e/without_keda_test.go.)

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeStorageClassPatch: the storageClassName patch shown in the
// README, added to the dev overlay, names the class on Redis's PVC.
func TestReadmeStorageClassPatch(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, b := range strings.Split(string(readme), "```yaml\n")[1:] {
		b, _, _ = strings.Cut(b, "```")
		if strings.Contains(b, "storageClassName") {
			block = b
		}
	}
	if block == "" {
		t.Fatal("k8s/README.md shows no yaml block with a storageClassName patch")
	}
	dir := t.TempDir()
	r := render(t, writeKustomization(t, dir, fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n%s",
		relFrom(t, dir, "overlays/dev"), block)))
	ss := r.find("StatefulSet", "redis-keda-redis")
	if got := str(ss, "spec", "volumeClaimTemplates", 0, "spec", "storageClassName"); got != "gp3" {
		t.Errorf("README's patch gives storageClassName %q, want gp3", got)
	}
	// The README names the PVC to delete when changing it later: the
	// StatefulSet's claim template + pod 0.
	pvc := str(ss, "spec", "volumeClaimTemplates", 0, "metadata", "name") + "-" + ss.name() + "-0"
	if !strings.Contains(string(readme), "`"+pvc+"`") {
		t.Errorf("README does not name the PVC %s", pvc)
	}
	// Without the patch: no class, the cluster default (as documented).
	if got := str(render(t, "overlays/dev").find("StatefulSet", "redis-keda-redis"), "spec", "volumeClaimTemplates", 0, "spec", "storageClassName"); got != "" {
		t.Errorf("dev sets storageClassName %q; the README says it uses the cluster's default", got)
	}
}

// TestReadmeFacts: statements in the docs and manifest comments that were
// wrong once, pinned to what the manifests render.
func TestReadmeFacts(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme := read("README.md")
	for dir, ns := range map[string]string{"overlays/dev": "redis-demo", "overlays/prod": "redis-keda"} {
		if got := render(t, dir).one(t, "Namespace").name(); got != ns {
			t.Fatalf("%s deploys to %s, the table here says %s", dir, got, ns)
		}
		// How to watch Jobs without task, with the overlay's namespace.
		if want := "kubectl get jobs -n " + ns + " -w"; !strings.Contains(readme, want) {
			t.Errorf("k8s/README.md does not say %q", want)
		}
	}
	for _, tc := range []struct{ file, want, not string }{
		// kind's default CNI enforces NetworkPolicy since v0.24.
		{"components/network-policy/kustomization.yaml", "since\n# kind v0.24", "kind's default CNI does not"},
		{"README.md", "kind's default (kindnet) does since kind v0.24", "kind's default CNI does not"},
		// The committed dev passwords are called what they are.
		{"README.md", "**demo-only passwords committed in the overlay**", ""},
		{"overlays/dev/kustomization.yaml", "# DEMO-ONLY passwords", ""},
		{filepath.Join("..", "README.md"), "kubectl get jobs -n redis-demo -w", ""},
	} {
		s := read(tc.file)
		if !strings.Contains(s, tc.want) {
			t.Errorf("%s lacks %q", tc.file, tc.want)
		}
		if tc.not != "" && strings.Contains(s, tc.not) {
			t.Errorf("%s still says %q", tc.file, tc.not)
		}
	}
}
