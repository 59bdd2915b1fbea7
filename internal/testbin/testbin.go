// Package testbin builds this module's programs for process tests: the tests
// of jobs/, internal/runner and cmd/redis-keda run the real binaries as
// separate processes against a real redis-server.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build runs `go build [flags] -o dir/name pkg` (pkg as go build takes it,
// relative to the calling test's package directory) and returns the
// binary's path.
func Build(dir, name, pkg string, flags ...string) (string, error) {
	bin := filepath.Join(dir, name)
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Main is a TestMain body: it builds pkg once for the whole test binary,
// sets *bin to its path, runs the tests, removes the binary and exits with
// the tests' code. A failed build exits 1 before any test runs.
func Main(m *testing.M, name, pkg string, bin *string, flags ...string) {
	dir, err := os.MkdirTemp("", name+"-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin, err = Build(dir, name, pkg, flags...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
