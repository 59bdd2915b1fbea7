//go:build e2e

package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/node"
)

// testLog adapts t.Log to io.Writer.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// binDir returns the control-plane bin folder: $E2E_BIN_DIR, or build.sh's
// output (building what is missing).
func binDir(ctx context.Context, t *testing.T) string {
	if d := os.Getenv("E2E_BIN_DIR"); d != "" {
		return d
	}
	start := time.Now()
	d, err := cluster.BuildControlPlane(ctx, ".", testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control-plane binaries ready in %s: %s", time.Since(start).Round(time.Second), d)
	return d
}

func TestLocalCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	bins := binDir(ctx, t)

	projBin := t.TempDir()
	if err := cluster.GoBuild(ctx, ".", projBin, testLog{t}, "./internal/testbin/sleeper"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// E2E_WITHOUT_KEDA=1 skips KEDA (a quicker run of the core parts).
	withoutKEDA := os.Getenv("E2E_WITHOUT_KEDA") == "1"
	c := startCluster(ctx, t, cluster.Options{BinDir: bins, Log: testLog{t}, WithoutKEDA: withoutKEDA})
	n, err := node.Start(ctx, node.Options{Config: c.RESTConfig(), BinDir: projBin, LogDir: t.TempDir(), Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	stopOnSignal(t, n, c)
	t.Logf("bring-up (control plane, KEDA unless E2E_WITHOUT_KEDA, node stand-in) took %s; kubeconfig %s", time.Since(start).Round(time.Millisecond), c.Kubeconfig())

	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	const ns = "default"

	t.Run("JobCompletesOnStandInWithResolvedEnv", func(t *testing.T) {
		testJobCompletes(ctx, t, cs, n, ns)
	})
	t.Run("ForeignImageRefused", func(t *testing.T) {
		testForeignImage(ctx, t, cs, ns)
	})
	t.Run("DeletionSendsSIGTERM", func(t *testing.T) {
		testDeletion(ctx, t, cs, n, ns)
	})
	t.Run("SignalKillFailsPod", func(t *testing.T) {
		testSignalKill(ctx, t, cs, n, ns)
	})
	t.Run("KEDAOperatorUp", func(t *testing.T) {
		if withoutKEDA {
			t.Skip("E2E_WITHOUT_KEDA=1")
		}
		resp, err := http.Get(c.KEDAHealthURL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("KEDA /healthz: %s", resp.Status)
		}
		for _, r := range []string{"scaledjobs.keda.sh", "scaledobjects.keda.sh", "triggerauthentications.keda.sh"} {
			if out, err := c.Kubectl(ctx, "get", r, "-A"); err != nil {
				t.Fatalf("CRD %s not served: %v", r, err)
			} else {
				t.Logf("kubectl get %s -A: %s", r, strings.TrimSpace(out))
			}
		}
		out, err := c.Kubectl(ctx, "version")
		if err != nil || !strings.Contains(out, "v1.36.4") {
			t.Fatalf("kubectl version: %v: %s", err, out)
		}
	})

	t.Run("StopLeavesNoProcess", func(t *testing.T) {
		pids := c.PIDs()
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		for name, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("%s (pid %d) still alive after Stop", name, pid)
			}
		}
	})
}

// stopOnSignal tears the cluster down if the test binary gets SIGINT or
// SIGTERM (go test's Ctrl-C), which would otherwise exit without running
// t.Cleanup; Pdeathsig is only the last resort. The watcher ends with the test.
func stopOnSignal(t *testing.T, n interface{ Stop() error }, c *cluster.Cluster) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "e2e: got %v, tearing the cluster down\n", s)
			_ = n.Stop()
			_ = c.Stop()
			os.Exit(130)
		case <-done:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sigs)
		close(done)
		<-finished
	})
}

func testJobCompletes(ctx context.Context, t *testing.T, cs kubernetes.Interface, n *node.Node, ns string) {
	_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper-config"},
		Data:       map[string]string{"K": "from-configmap", "LIST": "jobs"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper-secret"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	envNames := "LIT,EXPANDED,POD,NS,NODE,IP,CPU,MEM_MI,PASS,OPT,CFG_K,CFG_LIST,HOSTNAME"
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:    "sleeper",
					Image:   "redis-keda:e2e",
					Command: []string{"/sleeper"},
					Args:    []string{"-sleep", "1s", "-env", envNames, "-exit", "0", "$(LIT)"},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
					}},
					EnvFrom: []corev1.EnvFromSource{
						{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sleeper-config"}}},
						{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
					},
					Env: []corev1.EnvVar{
						{Name: "LIT", Value: "literal"},
						{Name: "EXPANDED", Value: "x-$(LIT)-$(NOPE)"},
						{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
						{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
						{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
						{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
						{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
						{Name: "PASS", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sleeper-secret"}, Key: "password"}}},
						{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sleeper-config"}, Key: "missing", Optional: ptr.To(true)}}},
					},
				}},
			}},
		},
	}
	start := time.Now()
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "sleeper", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, fmt.Errorf("job failed: %s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
	if err != nil {
		pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=sleeper"})
		for _, p := range pods.Items {
			b, _ := json.MarshalIndent(p.Status, "", "  ")
			t.Logf("pod %s status: %s", p.Name, b)
		}
		t.Fatalf("job did not complete: %v", err)
	}
	t.Logf("job Complete %s after create", time.Since(start).Round(time.Millisecond))

	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=sleeper"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of job: %v, %d", err, len(pods.Items))
	}
	pod := pods.Items[0]
	if pod.Status.Phase != corev1.PodSucceeded || pod.Spec.NodeName != n.Name() || pod.Status.PodIP != "127.0.0.1" {
		t.Fatalf("pod: phase %s node %s ip %s", pod.Status.Phase, pod.Spec.NodeName, pod.Status.PodIP)
	}
	if st := pod.Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 0 {
		t.Fatalf("container statuses: %+v", st)
	}
	lines := readJSONLines(t, n.LogPath(ns, pod.Name))
	if len(lines) != 2 || lines[0]["msg"] != "start" || lines[1]["msg"] != "done" {
		t.Fatalf("log lines: %v", lines)
	}
	env, _ := lines[0]["env"].(map[string]any)
	want := map[string]string{
		"LIT": "literal", "EXPANDED": "x-literal-$(NOPE)", "POD": pod.Name, "NS": ns, "NODE": n.Name(),
		"IP": "127.0.0.1", "CPU": "2", "MEM_MI": "64", "PASS": "s3cret", "CFG_K": "from-configmap",
		"CFG_LIST": "jobs", "HOSTNAME": pod.Name,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %v, want %q", k, env[k], v)
		}
	}
	if _, ok := env["OPT"]; ok {
		t.Errorf("optional missing configMapKeyRef should leave OPT unset, got %v", env["OPT"])
	}
	if args, _ := lines[0]["args"].([]any); len(args) == 0 || args[len(args)-1] != "literal" {
		t.Errorf("args $(LIT) not expanded: %v", args)
	}
}

func testForeignImage(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "foreign"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox:1.36", Command: []string{"/bin/sleep", "1"}}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "foreign", metav1.GetOptions{})
		got = p
		return err == nil && p.Status.Phase == corev1.PodFailed, err
	})
	if err != nil {
		t.Fatalf("foreign pod not Failed: %v (status %+v)", err, got.Status)
	}
	if got.Status.Reason != node.ReasonImageNotRunnable || !strings.Contains(got.Status.Message, "busybox:1.36") {
		t.Fatalf("reason %q message %q", got.Status.Reason, got.Status.Message)
	}
	t.Logf("refused: %s: %s", got.Status.Reason, got.Status.Message)
}

func testDeletion(ctx context.Context, t *testing.T, cs kubernetes.Interface, n *node.Node, ns string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "long-sleeper"},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []corev1.Container{{
				Name: "sleeper", Image: "registry.example/team/redis-keda:dev",
				Command: []string{"/sleeper"}, Args: []string{"-sleep", "1h"},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return p.Status.Phase == corev1.PodRunning, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod not Running+Ready: %v", err)
	}
	start := time.Now()
	if err := cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("pod not gone after delete: %v", err)
	}
	t.Logf("pod gone %s after delete", time.Since(start).Round(time.Millisecond))
	lines := readJSONLines(t, n.LogPath(ns, pod.Name))
	if len(lines) == 0 || lines[len(lines)-1]["msg"] != "sigterm" {
		t.Fatalf("process did not get SIGTERM: %v", lines)
	}
}

// testSignalKill: a process killed outside the API (Node.Signal, as the OOM
// killer would) ends the container with 137 and, restartPolicy Never, the pod
// goes Failed.
func testSignalKill(ctx context.Context, t *testing.T, cs kubernetes.Interface, n *node.Node, ns string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crasher"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "sleeper", Image: "redis-keda:e2e", Command: []string{"/sleeper"}, Args: []string{"-sleep", "1h"},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return n.Signal(ns, pod.Name, syscall.SIGKILL) == nil, nil
	})
	if err != nil {
		t.Fatalf("never signalled: %v", err)
	}
	var got *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		got = p
		return err == nil && p.Status.Phase == corev1.PodFailed, err
	})
	if err != nil {
		t.Fatalf("pod not Failed after SIGKILL: %v", err)
	}
	st := got.Status.ContainerStatuses
	if len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 137 {
		t.Fatalf("container statuses: %+v", st)
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: not JSON: %q", path, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// dumpLogs prints the tail of every process log of a failed run.
// startCluster starts the control plane and stops it when the test ends,
// printing the components' log tails first if the test failed.
func startCluster(ctx context.Context, t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c.LogDir())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		t.Logf("--- %s (last %d lines)\n%s", filepath.Base(f), len(lines), strings.Join(lines, "\n"))
	}
}
