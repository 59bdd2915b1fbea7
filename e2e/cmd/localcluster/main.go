// Command localcluster brings up the e2e test bed and keeps it running until
// Ctrl-C (SIGINT) or SIGTERM, then tears everything down:
//
//   - builds the control-plane binaries if missing (e2e/build.sh; a cold
//     build takes ~15 min on an idle 2-core machine, each step timed),
//   - builds the project's binaries (default ./jobs and ./publisher of the
//     repository root) for the node stand-in,
//   - starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//     the KEDA CRDs + operator, and the node stand-in,
//   - prints the kubeconfig path (and copies it to -kubeconfig-out if given).
//
// Usage (from the repository root):
//
//	cd e2e && go run ./cmd/localcluster [-kubeconfig-out ../.task/kubeconfig]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	e2eDirFlag := flag.String("e2e-dir", ".", "the e2e folder, or any folder below/above it")
	binDir := flag.String("bin-dir", "", "prebuilt control-plane binaries (default: run e2e/build.sh)")
	projectBin := flag.String("project-bin", "", "folder with the project's binaries for the node stand-in (default: build -project-pkgs into e2e/.cache/project-bin)")
	projectPkgs := flag.String("project-pkgs", "./jobs,./publisher", "comma-separated main packages of the repository root to build for the stand-in")
	workDir := flag.String("work-dir", "", "work dir (default: a temp dir, removed on exit)")
	kubeconfigOut := flag.String("kubeconfig-out", "", "also copy the kubeconfig here")
	noNode := flag.Bool("no-node", false, "do not start the node stand-in")
	noKEDA := flag.Bool("no-keda", false, "do not install/start KEDA")
	quiet := flag.Bool("q", false, "less output")
	flag.Parse()

	// First signal: graceful teardown; the context cancels any bring-up step.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var log io.Writer = os.Stderr
	if *quiet {
		log = io.Discard
	}
	e2eDir, err := cluster.FindE2EDir(*e2eDirFlag)
	if err != nil {
		return err
	}
	if *binDir == "" {
		if *binDir, err = cluster.BuildControlPlane(ctx, e2eDir, os.Stderr); err != nil {
			return err
		}
	}
	if *projectBin == "" && !*noNode {
		*projectBin = filepath.Join(e2eDir, ".cache", "project-bin")
		var pkgs []string
		for _, p := range strings.Split(*projectPkgs, ",") {
			if p = strings.TrimSpace(p); p != "" {
				pkgs = append(pkgs, p)
			}
		}
		if len(pkgs) > 0 {
			if err := cluster.GoBuild(ctx, filepath.Dir(e2eDir), *projectBin, log, pkgs...); err != nil {
				return err
			}
		}
	}

	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: *binDir, WorkDir: *workDir, Log: log, WithoutKEDA: *noKEDA})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "localcluster: stop:", err)
		}
	}()
	var n *node.Node
	if !*noNode {
		n, err = node.Start(ctx, node.Options{
			Config: c.RESTConfig(), BinDir: *projectBin,
			LogDir: filepath.Join(c.WorkDir(), "pods"), Log: log,
		})
		if err != nil {
			return err
		}
		defer func() {
			if err := n.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "localcluster: stop node:", err)
			}
		}()
	}
	if *kubeconfigOut != "" {
		if err := copyFile(c.Kubeconfig(), *kubeconfigOut); err != nil {
			return err
		}
	}

	fmt.Fprintf(os.Stderr, "\nlocal cluster up in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "  export KUBECONFIG=%s\n", c.Kubeconfig())
	fmt.Fprintf(os.Stderr, "  kubectl:       %s\n", filepath.Join(*binDir, "kubectl"))
	fmt.Fprintf(os.Stderr, "  process logs:  %s\n", c.LogDir())
	if n != nil {
		fmt.Fprintf(os.Stderr, "  node stand-in: %s runs images %q from %s; pod logs in %s\n", n.Name(), "redis-keda:*", *projectBin, n.LogDir())
	}
	fmt.Fprintln(os.Stderr, "Ctrl-C to tear down.")
	// The kubeconfig path alone on stdout, for scripts.
	fmt.Println(c.Kubeconfig())

	<-ctx.Done()
	stop() // a second Ctrl-C now kills us outright; children die via Pdeathsig
	fmt.Fprintln(os.Stderr, "tearing down ...")
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy kubeconfig: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return fmt.Errorf("copy kubeconfig: %w", err)
	}
	return nil
}
