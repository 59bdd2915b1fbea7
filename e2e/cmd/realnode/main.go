// Command realnode brings up the e2e bed with the REAL node and keeps it
// running until Ctrl-C (SIGINT) or SIGTERM, then tears everything down:
//
//   - builds what is missing: the control plane (e2e/build.sh), the node's
//     binaries and images, and the project image from the Dockerfile
//     (e2e/images/build.sh),
//   - re-executes itself in a private network + mount namespace,
//   - starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//     KEDA's CRDs, then containerd, kubelet, kube-proxy, CoreDNS and the KEDA
//     operator as a pod,
//   - prints the kubeconfig and a shell command that enters the namespace
//     (kubectl, redis-cli, curl to pod IPs work from there).
//
// Usage (from the e2e folder):
//
//	go run ./cmd/realnode [-work-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/realnode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "realnode:", err)
		os.Exit(1)
	}
}

func run() error {
	e2eDirFlag := flag.String("e2e-dir", ".", "the e2e folder, or any folder below/above it")
	workDir := flag.String("work-dir", "", "node work dir (default: a temp dir, removed on exit)")
	noKEDA := flag.Bool("no-keda", false, "do not deploy KEDA")
	which := flag.Bool("which", false, "only print which node this machine runs (the line `go tool task test` starts with) and exit; with CI=true a machine that cannot run the real node exits 1")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e2eDir, err := cluster.FindE2EDir(*e2eDirFlag)
	if err != nil {
		return err
	}
	if *which {
		line, real, err := realnode.Which(ctx, e2eDir)
		if err != nil {
			return err
		}
		fmt.Println(line)
		if !real && os.Getenv("CI") == "true" && os.Getenv("E2E_NODE") != "standin" {
			return fmt.Errorf("CI must run the real node")
		}
		return nil
	}
	if !realnode.InSandbox() {
		ok, reason, err := realnode.Choose()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("this machine cannot run the real node: %s", reason)
		}
		nodeDir, err := realnode.Build(ctx, e2eDir, os.Stderr) // builds the bed too
		if err != nil {
			return err
		}
		bin, err := cluster.BuildControlPlane(ctx, e2eDir, os.Stderr)
		if err != nil {
			return err
		}
		os.Setenv("E2E_BIN_DIR", bin)
		os.Setenv("E2E_NODE_DIR", nodeDir)
		return realnode.EnterSandbox() // returns only on error
	}
	if err := realnode.Prepare(); err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{
		BinDir: os.Getenv("E2E_BIN_DIR"), Log: os.Stderr,
		NodeIP: realnode.NodeIP, KEDAInCluster: !*noKEDA, WithoutKEDA: *noKEDA,
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	n, err := realnode.Start(ctx, realnode.Options{
		NodeDir: os.Getenv("E2E_NODE_DIR"), Cluster: c, WorkDir: *workDir,
		KeepWorkDir: *workDir != "", Log: os.Stderr, WithoutKEDA: *noKEDA,
	})
	if err != nil {
		return err
	}
	defer n.Stop()
	fmt.Fprintf(os.Stderr, "\nnode: %s\nkubeconfig: %s\nenter the sandbox: nsenter --net=/proc/%d/ns/net --mount=/proc/%d/ns/mnt -- env KUBECONFIG=%s PATH=%s:$PATH bash\nCtrl-C tears down.\n",
		n.Versions(), c.Kubeconfig(), os.Getpid(), os.Getpid(), c.Kubeconfig(), c.BinDir())
	fmt.Println(c.Kubeconfig())
	<-ctx.Done()
	return nil
}
