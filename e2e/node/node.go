// Package node is a NODE STAND-IN: the one part of the e2e test bed that is
// NOT real Kubernetes. There is no kubelet and no container runtime on the
// test machine, so this package plays the kubelet for one Node:
//
//   - it registers a Node (capacity cpu/memory/pods, Ready condition, no
//     taints) and heartbeats its Lease and Ready condition, so the real
//     kube-scheduler binds pods to it;
//   - it watches pods bound to it (spec.nodeName) and runs each container as
//     a local process, but only for "project images": an image whose
//     repository is one of Options.Images (default "redis-keda", any tag or
//     registry prefix). The container's command[0] is mapped by base name to
//     a binary in Options.BinDir ("/jobs" → <BinDir>/jobs); command and args
//     get $(VAR) expansion. Any other image is refused: the pod goes to phase
//     Failed with reason ImageNotRunnableByStandIn;
//   - it resolves env like the kubelet (value, fieldRef, resourceFieldRef,
//     configMapKeyRef, secretKeyRef, envFrom with prefix; optional honoured)
//     and reports pods/status: phase Pending→Running→Succeeded/Failed,
//     conditions, containerStatuses, startTime, podIP/hostIP 127.0.0.1;
//   - it honours deletion: SIGTERM to the process group, the grace period,
//     SIGKILL, a terminal status, then delete with grace 0.
//
// What it does NOT do, unlike a kubelet: no images, no isolation (processes
// share the host's network on 127.0.0.1, filesystem and user), no volumes,
// no workingDir (each pod runs in its own temp dir), no resource limits, no
// service env vars or service-account token, no probes (a container is Ready
// as soon as its process started), no restarts (every restartPolicy behaves
// like Never), no kubectl logs/exec (read LogPath instead).
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

const podIP = "127.0.0.1"

// Options configure the stand-in.
type Options struct {
	// Config reaches the API server (an admin config is fine).
	Config *rest.Config
	// Name of the Node; default "standin-node".
	Name string
	// BinDir holds the local binaries that stand in for project images.
	BinDir string
	// Images are the image repositories (without tag) the stand-in runs;
	// default ["redis-keda"]. "redis-keda" also matches "ghcr.io/x/redis-keda".
	Images []string
	// LogDir receives one log file per pod (stdout and stderr of all its
	// containers); default a temp dir removed by Stop.
	LogDir string
	// CPU, Memory and Pods capacity; defaults 8, 16Gi, 110.
	CPU, Memory resource.Quantity
	Pods        int64
	// StopGrace caps the SIGTERM→SIGKILL wait when Stop kills running pods
	// (default 5s).
	StopGrace time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Node is a running stand-in. Stop it with Stop.
type Node struct {
	opts      Options
	client    kubernetes.Interface
	ownLogDir bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	pods map[types.UID]*podRunner

	stopOnce sync.Once
	stopErr  error
}

// Start registers the Node, starts the heartbeat and the pod watch.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Config == nil || opts.BinDir == "" {
		return nil, errors.New("node: Options.Config and Options.BinDir are required")
	}
	if opts.Name == "" {
		opts.Name = "standin-node"
	}
	if len(opts.Images) == 0 {
		opts.Images = []string{"redis-keda"}
	}
	if opts.CPU.IsZero() {
		opts.CPU = resource.MustParse("8")
	}
	if opts.Memory.IsZero() {
		opts.Memory = resource.MustParse("16Gi")
	}
	if opts.Pods == 0 {
		opts.Pods = 110
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	n := &Node{opts: opts, pods: map[types.UID]*podRunner{}}
	if n.opts.LogDir == "" {
		d, err := os.MkdirTemp("", "standin-node-")
		if err != nil {
			return nil, fmt.Errorf("node log dir: %w", err)
		}
		n.opts.LogDir, n.ownLogDir = d, true
	} else if err := os.MkdirAll(n.opts.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("node log dir: %w", err)
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.UserAgent = "e2e-node-standin"
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("node client: %w", err)
	}
	n.client = client

	if err := n.register(ctx); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.Name).String()
		}))
	podInformer := factory.Core().V1().Pods().Informer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.observe(obj) },
		UpdateFunc: func(_, obj any) { n.observe(obj) },
		DeleteFunc: func(obj any) { n.gone(obj) },
	}); err != nil {
		n.cancel()
		return nil, fmt.Errorf("pod handler: %w", err)
	}
	factory.Start(n.ctx.Done())
	n.wg.Go(func() {
		<-n.ctx.Done()
		factory.Shutdown() // waits for the informer goroutines
	})
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), podInformer.HasSynced) {
		_ = n.Stop()
		return nil, errors.New("node: pod informer did not sync")
	}
	n.wg.Go(n.heartbeat)
	n.logf("node %s registered (stand-in; runs images %v from %s; pod logs in %s)", opts.Name, opts.Images, opts.BinDir, n.opts.LogDir)
	return n, nil
}

// Name is the Node's name.
func (n *Node) Name() string { return n.opts.Name }

// LogDir is the folder of the per-pod log files.
func (n *Node) LogDir() string { return n.opts.LogDir }

// LogPath is the file that receives stdout and stderr of every container of
// the pod namespace/name (it exists once the pod started).
func (n *Node) LogPath(namespace, name string) string {
	return filepath.Join(n.opts.LogDir, namespace+"_"+name+".log")
}

// Signal sends sig to the process group of every running container of the
// pod namespace/name, without going through the API: a crash or OOM-kill
// stand-in for chaos tests (SIGKILL → the container terminates with exit code
// 137 and, with restartPolicy Never, the pod goes Failed). It fails if the
// pod has no running process on this node.
func (n *Node) Signal(namespace, name string, sig syscall.Signal) error {
	n.mu.Lock()
	var target *podRunner
	for _, r := range n.pods {
		if r.pod.Namespace == namespace && r.pod.Name == name && !r.skip {
			target = r
		}
	}
	n.mu.Unlock()
	if target == nil {
		return fmt.Errorf("signal %s/%s: pod not run by node %s", namespace, name, n.opts.Name)
	}
	count, err := target.signal(sig)
	if err != nil {
		return fmt.Errorf("signal %s/%s: %w", namespace, name, err)
	}
	if count == 0 {
		return fmt.Errorf("signal %s/%s: no running process", namespace, name)
	}
	return nil
}

// Stop stops the watch and heartbeat, kills every pod process (SIGTERM to
// its process group, StopGrace, SIGKILL) and waits for all goroutines. Pod
// statuses are not updated: the control plane may be gone already. Safe to
// call more than once.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.ownLogDir {
			if err := os.RemoveAll(n.opts.LogDir); err != nil {
				n.stopErr = fmt.Errorf("remove node log dir: %w", err)
			}
		}
		n.logf("node %s stopped", n.opts.Name)
	})
	return n.stopErr
}

func (n *Node) logf(format string, args ...any) {
	fmt.Fprintf(n.opts.Log, "[node %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (n *Node) allocatable() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              n.opts.CPU,
		corev1.ResourceMemory:           n.opts.Memory,
		corev1.ResourcePods:             *resource.NewQuantity(n.opts.Pods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

func (n *Node) nodeConditions(now metav1.Time) []corev1.NodeCondition {
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, corev1.ConditionTrue, "StandInReady", "e2e node stand-in (not a kubelet) is running"),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "StandIn", "not measured"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "StandIn", "not measured"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "StandIn", "not measured"),
	}
}

func (n *Node) register(ctx context.Context) error {
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.opts.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname":  n.opts.Name,
				"kubernetes.io/os":        runtime.GOOS,
				"kubernetes.io/arch":      runtime.GOARCH,
				"e2e.redis-keda/stand-in": "true",
			},
			Annotations: map[string]string{
				"e2e.redis-keda/note": "node stand-in: pods of project images run as local processes; not a kubelet",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    n.allocatable(),
			Allocatable: n.allocatable(),
			Conditions:  n.nodeConditions(now),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: podIP},
				{Type: corev1.NodeHostName, Address: n.opts.Name},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          "v1.36.4-standin",
				OperatingSystem:         runtime.GOOS,
				Architecture:            runtime.GOARCH,
				ContainerRuntimeVersion: "standin://local-process",
			},
		},
	}
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = n.client.CoreV1().Nodes().Get(ctx, n.opts.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	// Status is a subresource: set it explicitly in case create dropped it.
	created.Status = node.Status
	if _, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	return nil
}

// heartbeat renews the node Lease and the Ready condition every 10s, like a
// kubelet, until Stop.
func (n *Node) heartbeat() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := n.beat(n.ctx); err != nil && n.ctx.Err() == nil {
			n.logf("heartbeat: %v", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NowMicro()
	lease, err := leases.Get(ctx, n.opts.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.opts.Name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.opts.Name),
				LeaseDurationSeconds: ptr.To[int32](40),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
	case err == nil:
		lease.Spec.RenewTime = &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.opts.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node: %w", err)
	}
	mt := metav1.Now()
	for i := range node.Status.Conditions {
		node.Status.Conditions[i].LastHeartbeatTime = mt
	}
	if _, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	return nil
}

// observe handles an added or updated pod bound to this node.
func (n *Node) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return
	}
	if r, known := n.pods[pod.UID]; known {
		if pod.DeletionTimestamp != nil {
			r.terminate(deletionGrace(pod), false)
		}
		return
	}
	terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if pod.DeletionTimestamp != nil && !terminal {
		// Not ours to run (e.g. left from an earlier stand-in): just finish deletion.
		p := pod.DeepCopy()
		n.wg.Go(func() { n.forceDelete(p) })
		n.pods[pod.UID] = newRunner(n, pod, true)
		return
	}
	if terminal || pod.DeletionTimestamp != nil {
		return
	}
	r := newRunner(n, pod, false)
	n.pods[pod.UID] = r
	n.wg.Go(r.run)
}

// gone handles a pod that disappeared from the API: kill what still runs.
func (n *Node) gone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if r, known := n.pods[pod.UID]; known {
		r.terminate(0, true)
		delete(n.pods, pod.UID)
	}
}

func deletionGrace(pod *corev1.Pod) time.Duration {
	if pod.DeletionGracePeriodSeconds != nil {
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// forceDelete finishes a graceful deletion, as a kubelet confirms it once
// the containers are gone.
func (n *Node) forceDelete(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	err := n.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && n.ctx.Err() == nil {
		n.logf("delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}
