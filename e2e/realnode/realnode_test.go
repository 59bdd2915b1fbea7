package realnode

import (
	"path/filepath"
	"testing"
)

func TestFindVersion(t *testing.T) {
	for in, want := range map[string]string{
		"Kubernetes v1.36.4": "v1.36.4",
		"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3": "1.6.20~ds1",
		"runc version 1.1.5+ds1": "1.1.5+ds1",
		"containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7": "v2.1.4",
		"no version here": "",
	} {
		if got := findVersion(in); got != want {
			t.Errorf("findVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModVersion(t *testing.T) {
	got, err := modVersion(filepath.Join("..", "tools", "k8s", "go.mod"), "k8s.io/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	if got != "v1.36.4" {
		t.Errorf("kubelet pin %q, want v1.36.4 (the apiserver's)", got)
	}
	if _, err := modVersion(filepath.Join("..", "tools", "k8s", "go.mod"), "example.com/nope"); err == nil {
		t.Error("a module that is not required: no error")
	}
}

func TestVersionsLine(t *testing.T) {
	n := &Node{versions: map[string]string{"kubelet": "v1.36.4", "containerd": "1.6.20~ds1", "runc": "1.1.5+ds1"}}
	if got, want := n.Versions(), "kubelet v1.36.4, containerd 1.6.20~ds1, runc 1.1.5+ds1"; got != want {
		t.Errorf("Versions() = %q, want %q", got, want)
	}
}
