//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/realnode"
)

// TestMain picks the node and says which in one line:
//
//	node: kubelet v1.36.4, containerd 1.6.20~ds1, runc 1.1.5+ds1
//	node: stand-in (<reason>)
//
// The real node is used when the machine can run it (realnode.Available);
// E2E_NODE=standin forces the stand-in, E2E_NODE=real (and CI=true) makes a
// machine that cannot run it a failure instead of a fallback. For the real
// node it builds what needs the network (control plane, node binaries,
// images, the project image from the Dockerfile), then re-executes the test
// binary inside a private network + mount namespace (realnode.EnterSandbox),
// where every test runs.
func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if realnode.InSandbox() {
		if err := realnode.Prepare(); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			return 1
		}
		return m.Run()
	}
	mode := os.Getenv("E2E_NODE")
	ok, reason, err := realnode.Choose()
	if err != nil { // can run the real node, but a package is missing: no silent fallback
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	if !ok {
		fmt.Printf("node: stand-in (%s)\n", reason)
		if mode == "real" || (os.Getenv("CI") == "true" && mode != "standin") {
			fmt.Fprintf(os.Stderr, "node: the real node is required here (CI=%q, E2E_NODE=%q) but cannot run: %s\n", os.Getenv("CI"), mode, reason)
			return 1
		}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	// The node's build first: it runs the bed's build (e2e/build.sh) side by
	// side with the debootstraps and images; BuildControlPlane then finds
	// every binary present.
	nodeDir, err := realnode.Build(ctx, ".", os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	bin := os.Getenv("E2E_BIN_DIR")
	if bin == "" {
		if bin, err = cluster.BuildControlPlane(ctx, ".", os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			return 1
		}
	}
	v, err := realnode.HostVersions(ctx, nodeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	fmt.Printf("node: %s\n", v)
	os.Setenv("E2E_BIN_DIR", bin)
	os.Setenv("E2E_NODE_DIR", nodeDir)
	cancel()
	if err := realnode.EnterSandbox(); err != nil { // returns only on error
		fmt.Fprintln(os.Stderr, "node:", err)
	}
	return 1
}

// realNodeSelected reports whether TestMain chose the real node (the tests
// then run inside its sandbox).
func realNodeSelected() bool { return realnode.InSandbox() && os.Getenv("E2E_NODE_DIR") != "" }
