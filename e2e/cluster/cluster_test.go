package cluster

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestStartWithoutBinariesFailsCleanly(t *testing.T) {
	work := t.TempDir() + "/work"
	_, err := Start(context.Background(), Options{BinDir: t.TempDir(), WorkDir: work})
	if err == nil || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("err = %v, want a failed etcd start", err)
	}
	if _, err := os.Stat(work + "/pki/ca.crt"); err != nil {
		t.Fatalf("given work dir should be kept: %v", err)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if seen[p] || p == 0 {
			t.Fatalf("ports %v", ps)
		}
		seen[p] = true
	}
}

func TestFindE2EDir(t *testing.T) {
	d, err := FindE2EDir("node")
	if err != nil {
		// run from e2e/cluster: the parent is the e2e dir
		d, err = FindE2EDir(".")
	}
	if err != nil || !strings.HasSuffix(d, "/e2e") {
		t.Fatalf("FindE2EDir = %q, %v", d, err)
	}
}
