// Command demo is `task demo`: redis-keda on a real Kubernetes control plane
// with the real KEDA operator, on this machine, without Docker.
//
// It builds the test bed the first time (measured cold: ~18 min on an idle
// 2-core machine to the first table line; each build step prints its
// progress and time) and picks the node like the tests do (one "node: ..."
// line says which):
//
//   - the real node (e2e/realnode) where the machine can run it: kubelet,
//     containerd, runc, kube-proxy, CoreDNS, KEDA as a pod, the project image
//     built from the Dockerfile; the e2e-node overlay (dev with the local
//     image names, in-cluster Redis on a PVC) deployed with `task deploy`,
//     the publisher's settings from the flags below;
//   - else the node stand-in (pods as local processes of the freshly built
//     jobs/publisher binaries), a redis-server on the host loopback and the
//     e2e overlay with the publisher turned on.
//
// Then it shows, once a second, the queue and every Job KEDA creates — one
// per event — until Ctrl-C (or, with -exit-when-done, until every event is
// processed). It ends by printing `redis-keda stats` and the path of the
// run's chart (reports/demo-<time>.svg: queue and Jobs over time, batches
// marked), and tears everything down. E2E_NODE=standin forces the stand-in.
//
// Usage (from the repository root): go tool task demo
// or: cd e2e && go run ./cmd/demo [-events 40] [-batch 5] [-interval 5s] [-exit-when-done]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/node"
	"github.com/redis-keda/redis-keda/e2e/realnode"
	"github.com/redis-keda/redis-keda/e2e/timeline"
	"github.com/redis-keda/redis-keda/internal/cli"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

const (
	namespace     = "redis-keda-e2e"      // k8s/overlays/e2e
	redisPassword = "redis-keda-e2e-only" // the overlay's Secret
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	events := flag.Int("events", 40, "events the publisher pushes in all (PUBLISH_LIMIT; 0 = until Ctrl-C)")
	batch := flag.Int("batch", 5, "events per batch (BATCH_SIZE)")
	interval := flag.Duration("interval", 5*time.Second, "time between batches (PUBLISH_INTERVAL)")
	waitMin := flag.Int("wait-min", 2, "shortest wait of an event, seconds (WAIT_MIN)")
	waitMax := flag.Int("wait-max", 8, "longest wait of an event, seconds (WAIT_MAX)")
	binDir := flag.String("bin-dir", "", "prebuilt control-plane binaries (default: build them with e2e/build.sh)")
	verbose := flag.Bool("v", false, "show the test bed's own progress lines")
	exitWhenDone := flag.Bool("exit-when-done", false, "stop once every event is processed, instead of waiting for Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var log io.Writer = io.Discard
	if *verbose {
		log = os.Stderr
	}

	e2eDir, err := cluster.FindE2EDir(".")
	if err != nil {
		return err
	}
	root := filepath.Dir(e2eDir)
	pub := publisherSettings{events: *events, batch: *batch, interval: *interval, waitMin: *waitMin, waitMax: *waitMax}
	if realnode.InSandbox() {
		return runReal(ctx, root, os.Getenv("E2E_BIN_DIR"), os.Getenv("E2E_NODE_DIR"), pub, log, *exitWhenDone)
	}
	// The libraries' own logs (go-redis pool retries while the in-cluster
	// Redis starts) go where the bed's progress goes, never into the table.
	redis.SetLogger(libraryLog{log})
	ok, reason, err := realnode.Choose()
	if err != nil { // can run the real node, but a package is missing: no silent fallback
		return err
	}
	if ok {
		fmt.Fprintln(os.Stderr, "demo: building what is missing: the bed's binaries, the node's images, the project image from the Dockerfile")
		fmt.Fprintln(os.Stderr, "      (measured cold: ~15 min of compiling on an idle 2-core machine, ~1,810 CPU seconds, the images side by side; warm: 6-9 s, the project image only)")
		buildStart := time.Now()
		nodeDir, err := realnode.Build(ctx, e2eDir, os.Stderr) // builds the bed too, side by side with the images
		if err != nil {
			return err
		}
		if *binDir == "" {
			if *binDir, err = cluster.BuildControlPlane(ctx, e2eDir, os.Stderr); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "demo: built in %s\n", time.Since(buildStart).Round(time.Second))
		v, err := realnode.HostVersions(ctx, nodeDir)
		if err != nil {
			return err
		}
		fmt.Printf("node: %s\n", v)
		os.Setenv("E2E_BIN_DIR", *binDir)
		os.Setenv("E2E_NODE_DIR", nodeDir)
		return realnode.EnterSandbox() // returns only on error
	}
	fmt.Printf("node: stand-in (%s)\n", reason)
	if *binDir == "" {
		fmt.Fprintln(os.Stderr, "demo: building the local test bed if needed (measured cold: ~15 min on an idle 2-core machine, each step timed below; cached after)")
		if *binDir, err = cluster.BuildControlPlane(ctx, e2eDir, os.Stderr); err != nil {
			return err
		}
	}
	projectBin := filepath.Join(e2eDir, ".cache", "project-bin")
	if err := cluster.GoBuild(ctx, root, projectBin, log, "./jobs", "./publisher"); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "redis-keda-demo-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)

	rdsAddr, stopRedis, err := startRedis(ctx, work)
	if err != nil {
		return err
	}
	defer stopRedis()

	start := time.Now()
	fmt.Fprintln(os.Stderr, "demo: starting etcd, kube-apiserver, controller-manager, scheduler, KEDA and the node stand-in ...")
	c, err := cluster.Start(ctx, cluster.Options{BinDir: *binDir, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "demo: tearing down ...")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stop cluster:", err)
		}
	}()
	n, err := node.Start(ctx, node.Options{Config: c.RESTConfig(), BinDir: projectBin, LogDir: filepath.Join(work, "pods"), Log: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stop node:", err)
		}
	}()

	overlay := filepath.Join(work, "overlay")
	settings := []string{
		"REDIS_ADDR=" + rdsAddr, "HTTP_ADDR=127.0.0.1:0",
		fmt.Sprintf("BATCH_SIZE=%d", *batch), fmt.Sprintf("PUBLISH_INTERVAL=%s", *interval),
		fmt.Sprintf("WAIT_MIN=%d", *waitMin), fmt.Sprintf("WAIT_MAX=%d", *waitMax),
		fmt.Sprintf("PUBLISH_LIMIT=%d", *events), "LOG_LEVEL=info",
	}
	if err := writeOverlay(overlay, filepath.Join(root, "k8s", "overlays", "e2e"), settings); err != nil {
		return err
	}
	if out, err := c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		return fmt.Errorf("apply the e2e overlay: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "demo: up in %s. Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KEDA %s.\n",
		time.Since(start).Round(100*time.Millisecond), "v2.21.0")
	fmt.Fprintln(os.Stderr, "      Stand-in: the node (pods run as local processes).")
	fmt.Fprintf(os.Stderr, "      In another terminal:  %s --kubeconfig %s -n %s get jobs -w\n", filepath.Join(*binDir, "kubectl"), c.Kubeconfig(), namespace)
	fmt.Fprintf(os.Stderr, "      Redis: redis-cli -p %s -a %s   pod logs: %s\n", portOf(rdsAddr), redisPassword, n.LogDir())
	fmt.Fprintln(os.Stderr, "      Ctrl-C to stop.")

	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("kube client: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rdsAddr, Password: redisPassword})
	defer rdb.Close()
	q, err := queue.New(rdb, queue.Config{Name: "events", LeaseDuration: 10 * time.Second, MaxAttempts: 5, MaxWait: 5 * time.Minute, MaxPayloadBytes: 1 << 20})
	if err != nil {
		return err
	}
	// A fresh redis-server and the overlay's settings from the first pod on:
	// every event that enters the queue is one of the demo publisher's.
	tl, sum := watch(ctx, kube, q, namespace, *events, 0, *exitWhenDone, os.Stdout)
	return finish(root, map[string]string{"REDIS_ADDR": rdsAddr, "REDIS_PASSWORD": redisPassword, "QUEUE": "events", "LEASE_DURATION": "10s", "MAX_ATTEMPTS": "5"}, q, tl, sum)
}

type publisherSettings struct {
	events, batch, waitMin, waitMax int
	interval                        time.Duration
}

// runReal is the demo on the real node, inside its sandbox.
func runReal(ctx context.Context, root, binDir, nodeDir string, pub publisherSettings, log io.Writer, exitWhenDone bool) error {
	// The dev overlay's namespace and application user.
	const ns, user, password = "redis-demo", "redis-keda", "redis-keda-dev-only"
	if err := realnode.Prepare(); err != nil {
		return err
	}
	start := time.Now()
	step := func(what string) { fmt.Fprintf(os.Stderr, "demo: +%ds %s\n", int(time.Since(start).Seconds()), what) }
	fmt.Fprintln(os.Stderr, "demo: starting etcd, kube-apiserver, controller-manager, scheduler, then the node: containerd, kubelet, kube-proxy, CoreDNS, KEDA (measured: 35-70 s to the first line) ...")
	c, err := cluster.Start(ctx, cluster.Options{BinDir: binDir, Log: log, NodeIP: realnode.NodeIP, KEDAInCluster: true})
	if err != nil {
		return err
	}
	step("control plane up, KEDA's CRDs installed")
	defer func() {
		fmt.Fprintln(os.Stderr, "demo: tearing down ...")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stop cluster:", err)
		}
	}()
	n, err := realnode.Start(ctx, realnode.Options{NodeDir: nodeDir, Cluster: c, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stop node:", err)
		}
	}()
	step("node up: images imported, kubelet Ready, kube-proxy, CoreDNS, KEDA operator available")
	env := append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "PATH="+binDir+":"+os.Getenv("PATH"))
	fmt.Fprintln(os.Stderr, "demo: go tool task deploy OVERLAY=e2e-node TAG=e2e-node")
	deploy := exec.CommandContext(ctx, "go", "tool", "task", "deploy", "OVERLAY=e2e-node", "TAG=e2e-node")
	deploy.Dir, deploy.Env = root, env
	if out, err := deploy.CombinedOutput(); err != nil {
		return fmt.Errorf("task deploy: %w\n%s", err, out)
	}
	step("deployed")
	// dev's own publisher (BATCH_SIZE=2 every 10 s) must not publish into
	// the demo's count: stop it before it can (scale to 0, wait until its
	// pods are gone), give it the demo's settings, and count what it may
	// still have published (normally 0) as events of the run.
	fmt.Fprintln(os.Stderr, "demo: publisher: scale to 0, the demo's settings, wait for the in-cluster Redis, scale to 1")
	if out, err := c.Kubectl(ctx, "-n", ns, "scale", "deployment/redis-keda-publisher", "--replicas=0"); err != nil {
		return fmt.Errorf("stop dev's publisher: %w\n%s", err, out)
	}
	// Its grace period would let it publish on for up to 30 s (measured: 6
	// events, and the wait for it held the table back 30 s): gone now.
	if out, err := c.Kubectl(ctx, "-n", ns, "delete", "pod", "-l", "app.kubernetes.io/component=publisher", "--grace-period=0", "--force", "--wait=false"); err != nil {
		return fmt.Errorf("stop dev's publisher pod: %w\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "-n", ns, "set", "env", "deployment/redis-keda-publisher",
		fmt.Sprintf("BATCH_SIZE=%d", pub.batch), fmt.Sprintf("PUBLISH_INTERVAL=%s", pub.interval),
		fmt.Sprintf("WAIT_MIN=%d", pub.waitMin), fmt.Sprintf("WAIT_MAX=%d", pub.waitMax),
		fmt.Sprintf("PUBLISH_LIMIT=%d", pub.events), "LOG_LEVEL=info"); err != nil {
		return fmt.Errorf("publisher settings: %w\n%s", err, out)
	}
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("kube client: %w", err)
	}
	if err := waitNoPods(ctx, kube, ns, "app.kubernetes.io/component=publisher", 2*time.Minute); err != nil {
		return fmt.Errorf("dev's publisher: %w", err)
	}
	svc, err := kube.CoreV1().Services(ns).Get(ctx, "redis-keda-redis", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("redis service: %w", err)
	}
	addr := svc.Spec.ClusterIP + ":6379"
	rdb := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password})
	defer rdb.Close()
	q, err := queue.New(rdb, queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: 5 * time.Minute, MaxPayloadBytes: 1 << 20})
	if err != nil {
		return err
	}
	before, err := waitForRedis(ctx, q, 5*time.Minute)
	if err != nil {
		return err
	}
	step("the in-cluster Redis answers")
	if out, err := c.Kubectl(ctx, "-n", ns, "scale", "deployment/redis-keda-publisher", "--replicas=1"); err != nil {
		return fmt.Errorf("start the demo's publisher: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "demo: up in %s on the real node (%s). Everything is real: etcd, kube-apiserver,\n", time.Since(start).Round(100*time.Millisecond), n.Versions())
	fmt.Fprintln(os.Stderr, "      controller-manager, scheduler, kubelet, containerd, runc, kube-proxy, CoreDNS, KEDA v2.21.0 (a pod),")
	fmt.Fprintln(os.Stderr, "      Redis (a StatefulSet on a local PV), the image built from the Dockerfile. No registry.")
	fmt.Fprintf(os.Stderr, "      In another terminal (enters the demo's network namespace):\n        nsenter --net=/proc/%d/ns/net --mount=/proc/%d/ns/mnt -- %s --kubeconfig %s -n %s get jobs -w\n",
		os.Getpid(), os.Getpid(), filepath.Join(binDir, "kubectl"), c.Kubeconfig(), ns)
	fmt.Fprintln(os.Stderr, "      Ctrl-C to stop.")
	if before > 0 {
		fmt.Fprintf(os.Stderr, "      %d events were in the queue before the demo's publisher started (dev's publisher): counted as events of this run.\n", before)
	}
	tl, sum := watch(ctx, kube, q, ns, pub.events, before, exitWhenDone, os.Stdout)
	return finish(root, map[string]string{"REDIS_ADDR": addr, "REDIS_USERNAME": user, "REDIS_PASSWORD": password, "QUEUE": "events", "LEASE_DURATION": "30s", "MAX_ATTEMPTS": "5"}, q, tl, sum)
}

// finish prints the queue's final state as `redis-keda stats` shows it,
// checks the run's last line against it (every event that entered the
// queue is acked or dead), then writes the run's chart and prints its path.
func finish(root string, env map[string]string, q *queue.Queue, tl timeline.Timeline, sum summary) error {
	fmt.Println()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println("$ redis-keda stats")
	if code := cli.Run(ctx, []string{"stats"}, env, os.Stdout, os.Stderr); code != cli.ExitOK {
		fmt.Fprintf(os.Stderr, "demo: redis-keda stats exited %d\n", code)
	}
	var checkErr error
	if sum.drained {
		s, err := q.Stats(ctx)
		switch {
		case err != nil:
			checkErr = fmt.Errorf("check against the stats: %w", err)
		case s.Counters["acked"]+s.Dead != sum.events:
			checkErr = fmt.Errorf("the stats say acked %d + dead %d, the run counted %d events: a miscount", s.Counters["acked"], s.Dead, sum.events)
		default:
			fmt.Printf("\ncheck: %d events = acked %d + dead %d in the stats; %d Jobs for %d events\n", sum.events, s.Counters["acked"], s.Dead, sum.jobs, sum.events)
		}
	}
	rel := filepath.Join("reports", "demo-"+tl.Start.UTC().Format("20060102-150405"))
	for _, ext := range []string{".svg", ".png"} {
		if err := tl.Write(filepath.Join(root, rel+ext)); err != nil {
			return err
		}
	}
	fmt.Printf("\nchart of this run: %s.svg (and .png)\n", rel)
	return checkErr
}

// summary is what the run's last line said.
type summary struct {
	drained      bool
	events, jobs int64
}

// waitForRedis pings the in-cluster Redis until it answers (the
// StatefulSet's pod may still be starting), then returns how many events
// the queue holds or has held (pending, in flight, dead, acked).
func waitForRedis(ctx context.Context, q *queue.Queue, timeout time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s, err := q.Stats(ctx)
		if err == nil {
			return entered(s), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the in-cluster Redis did not answer within %s: %w", timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitNoPods waits until no pod matches selector in ns.
func waitNoPods(ctx context.Context, kube kubernetes.Interface, ns, selector string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n := 0
			if pods != nil {
				n = len(pods.Items)
			}
			return fmt.Errorf("%d pods %s still there after %s (last error: %v)", n, selector, timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// entered counts every event that entered the queue: waiting, being
// claimed, in flight, dead or acked.
func entered(s queue.Stats) int64 {
	return s.Pending + s.Processing + s.Claiming + s.Dead + s.Counters["acked"]
}

// libraryLog sends a library's log lines (go-redis) to w: the bed's progress
// writer, discarded unless -v.
type libraryLog struct{ w io.Writer }

func (l libraryLog) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(l.w, "[go-redis] "+format+"\n", v...)
}

// watch prints one line a second: queue lengths, Jobs by state, and the Jobs
// that appeared or finished since the last line. It returns the run as a
// timeline when ctx ends, or a few seconds after the last event was
// processed when exitWhenDone. The run has limit events from the demo's
// publisher plus before, those the queue held before it started; it is
// done when all of them are acked or dead and no Job is running.
func watch(ctx context.Context, kube kubernetes.Interface, q *queue.Queue, namespace string, limit int, before int64, exitWhenDone bool, out io.Writer) (timeline.Timeline, summary) {
	fmt.Fprintf(out, "\n%-6s %7s %10s %4s | %6s %6s %6s %6s | %s\n", "time", "pending", "processing", "dead", "jobs", "active", "done", "failed", "changes")
	start := time.Now()
	tl := timeline.Timeline{Title: fmt.Sprintf("task demo: %d events on the local control plane with KEDA", limit), Start: start}
	mark := func(label string) { tl.Marks = append(tl.Marks, timeline.Mark{At: time.Since(start), Label: label}) }
	var events int64 // events seen in the queue so far (pending, claimed, in flight, dead or acked)
	var sum summary
	total := before + int64(limit)
	seen := map[string]string{}
	drained := false
	var drainedAt time.Time
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return tl, sum
		case <-t.C:
		}
		s, serr := q.Stats(ctx)
		jobs, jerr := kube.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
		if ctx.Err() != nil {
			return tl, sum
		}
		if err := errors.Join(serr, jerr); err != nil {
			fmt.Fprintf(out, "%-6s %v\n", since(start), err)
			continue
		}
		var changes []string
		listed := map[string]bool{}
		sort.Slice(jobs.Items, func(a, b int) bool { return jobs.Items[a].Name < jobs.Items[b].Name })
		for _, j := range jobs.Items {
			listed[j.Name] = true
			if st := jobState(&j); rank(st) > rank(seen[j.Name]) {
				changes = append(changes, strings.TrimPrefix(j.Name, "redis-keda-jobs-")+" "+st)
				seen[j.Name] = st
			}
		}
		// KEDA's history limit and the TTL controller delete only finished
		// Jobs: one that vanished while we thought it running has completed.
		for name, st := range seen {
			if !listed[name] && rank(st) < rank("Complete") {
				seen[name] = "Complete"
			}
		}
		var active, done, failed int
		for _, st := range seen {
			switch st {
			case "Complete":
				done++
			case "Failed":
				failed++
			default:
				active++
			}
		}
		line := strings.Join(changes, ", ")
		if len(line) > 70 {
			line = line[:67] + "..."
		}
		fmt.Fprintf(out, "%-6s %7d %10d %4d | %6d %6d %6d %6d | %s\n", since(start), s.Pending, s.Processing, s.Dead,
			len(seen), active, done, failed, line)
		if n := entered(s); n > events {
			mark(fmt.Sprintf("+%d events", n-events))
			events = n
		}
		if len(seen) > 0 && !slices.ContainsFunc(tl.Marks, func(m timeline.Mark) bool { return m.Label == "first Job" }) {
			mark("first Job")
		}
		tl.Samples = append(tl.Samples, timeline.Sample{At: time.Since(start), Pending: s.Pending, Processing: s.Processing, Dead: s.Dead,
			ActiveJobs: active, CompletedJobs: done, FailedJobs: failed})
		if limit > 0 && !drained && events >= total && s.Counters["acked"]+s.Dead == events && active == 0 {
			drained, drainedAt = true, time.Now()
			sum = summary{drained: true, events: events, jobs: int64(len(seen))}
			mark(fmt.Sprintf("all %d processed", events))
			line := fmt.Sprintf("all %d events processed by %d Jobs", events, len(seen))
			if s.Dead > 0 {
				line += fmt.Sprintf(" (%d of them dead-lettered)", s.Dead)
			}
			if exitWhenDone {
				fmt.Fprintln(out, line)
			} else {
				fmt.Fprintln(out, line+"; Ctrl-C to stop and tear down")
			}
		}
		if exitWhenDone && drained && time.Since(drainedAt) >= 3*time.Second {
			return tl, sum
		}
	}
}

// rank orders Job states so that the table only moves forward.
func rank(state string) int {
	switch state {
	case "Pending":
		return 1
	case "Running":
		return 2
	case "Complete", "Failed":
		return 3
	}
	return 0
}

func jobState(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return string(c.Type)
		}
	}
	if j.Status.Active > 0 {
		return "Running"
	}
	return "Pending"
}

func since(t time.Time) string { return fmt.Sprintf("+%ds", int(time.Since(t).Seconds())) }

// writeOverlay layers the settings over the e2e overlay.
func writeOverlay(dir, base string, settings []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	base, err := filepath.Rel(dir, base) // Kustomize refuses absolute resource paths
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n", base)
	b.WriteString("configMapGenerator:\n  - name: redis-keda-config\n    behavior: merge\n    literals:\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "      - %s\n", s)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	return nil
}

// startRedis runs redis-server on a free loopback port with the overlay's
// password and AOF on; stop kills it by PID.
func startRedis(ctx context.Context, dir string) (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("redis-server not found: install it (Debian: apt-get install -y redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("free port: %w", err)
	}
	addr = l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--port", portOf(addr), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--appendonly", "yes", "--requirepass", redisPassword, "--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: redisPassword})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := rdb.Ping(ctx).Err(); err == nil {
			return addr, stop, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s not ready: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
