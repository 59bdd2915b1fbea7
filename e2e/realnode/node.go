package realnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/internal/proc"
)

// Options configure Start.
type Options struct {
	// NodeDir is the folder e2e/images/build.sh prints: bin/ (kubelet,
	// kube-proxy), images/*.tar, keda-config/, versions.env.
	NodeDir string
	// Cluster is the control plane, started with Options.NodeIP = NodeIP
	// and KEDAInCluster.
	Cluster *cluster.Cluster
	// WorkDir holds containerd's and kubelet's state, the local PVs and the
	// logs. Empty: a fresh dir under /tmp (unix socket paths must stay
	// short), removed by Stop unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// WithoutKEDA skips deploying the KEDA operator.
	WithoutKEDA bool
}

// Node is a running real node. Stop it with Stop.
type Node struct {
	opts       Options
	dir        string
	ownDir     bool
	sock       string // containerd's socket
	cgroupRoot string // kubelet's cgroupRoot, e.g. /redis-keda-e2e-1234
	versions   map[string]string
	images     map[string]string // KEDA_IMAGE, ..., PROJECT_IMAGE (versions.env)
	kube       kubernetes.Interface

	procs *proc.Group // the one starter, shared with the control plane
}

// Start brings the node up: containerd (images imported), kubelet
// (registered, Ready), kube-proxy, then the cluster add-ons: a default
// StorageClass with local PVs, CoreDNS, and unless WithoutKEDA the KEDA
// operator as a Deployment. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	if !InSandbox() {
		return nil, errors.New("realnode: Start outside the sandbox: call EnterSandbox and Prepare first")
	}
	if opts.NodeDir == "" || opts.Cluster == nil {
		return nil, errors.New("realnode: Options.NodeDir and Options.Cluster are required")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	n := &Node{opts: opts, dir: opts.WorkDir, cgroupRoot: fmt.Sprintf("/redis-keda-e2e-%d", os.Getpid())}
	if n.dir == "" {
		d, err := os.MkdirTemp("/tmp", "rk-node-")
		if err != nil {
			return nil, fmt.Errorf("realnode: work dir: %w", err)
		}
		n.dir, n.ownDir = d, true
	}
	for _, d := range []string{"logs", "containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "pv", "runc", "manifests"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("realnode: work dir: %w", err)
		}
	}
	n.sock = filepath.Join(n.dir, "containerd", "containerd.sock")
	n.procs = &proc.Group{What: "node", LogDir: n.LogDir(), Dir: n.dir}
	defer func() {
		if err != nil {
			if serr := n.Stop(); serr != nil {
				n.logf("cleanup after failed start: %v", serr)
			}
		}
	}()
	start := time.Now()
	if n.images, err = readEnvFile(filepath.Join(opts.NodeDir, "versions.env")); err != nil {
		return nil, err
	}
	if n.versions, err = n.readVersions(ctx); err != nil {
		return nil, err
	}
	if n.kube, err = kubernetes.NewForConfig(opts.Cluster.RESTConfig()); err != nil {
		return nil, fmt.Errorf("realnode: client: %w", err)
	}
	n.logf("work dir %s; %s", n.dir, n.Versions())
	if err := n.startContainerd(ctx); err != nil {
		return nil, err
	}
	if err := n.importImages(ctx); err != nil {
		return nil, err
	}
	if err := n.writeCNIConfig(); err != nil {
		return nil, err
	}
	if err := n.startKubelet(ctx); err != nil {
		return nil, err
	}
	if err := n.startKubeProxy(ctx); err != nil {
		return nil, err
	}
	n.logf("node %s Ready in %s", NodeName, time.Since(start).Round(time.Millisecond))
	if err := n.deployAddons(ctx); err != nil {
		return nil, err
	}
	n.logf("add-ons ready (storage, CoreDNS%s) in %s", map[bool]string{false: ", KEDA operator"}[opts.WithoutKEDA], time.Since(start).Round(time.Millisecond))
	return n, nil
}

// Versions is the one-line description the test suite prints:
// "kubelet v1.36.4, containerd 1.6.20~ds1, runc 1.1.5".
func (n *Node) Versions() string {
	return fmt.Sprintf("kubelet %s, containerd %s, runc %s", n.versions["kubelet"], n.versions["containerd"], n.versions["runc"])
}

// Image returns the image name versions.env gives for key (PROJECT_IMAGE,
// REDIS_IMAGE, KEDA_IMAGE, COREDNS_IMAGE, PAUSE_IMAGE).
func (n *Node) Image(key string) string { return n.images[key] }

// WorkDir is the node's state folder.
func (n *Node) WorkDir() string { return n.dir }

// LogDir holds containerd.log, kubelet.log, kube-proxy.log.
func (n *Node) LogDir() string { return filepath.Join(n.dir, "logs") }

// PodLogDir is kubelet's podLogsDir (<ns>_<pod>_<uid>/<container>/0.log).
func (n *Node) PodLogDir() string { return filepath.Join(n.dir, "pod-logs") }

// Ctr runs Debian's ctr against this node's containerd in namespace k8s.io.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ContainerPID returns the host PID of a running container given its
// status containerID ("containerd://<id>"), as containerd's task list has it.
func (n *Node) ContainerPID(ctx context.Context, containerID string) (int, error) {
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := n.Ctr(ctx, "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				return 0, fmt.Errorf("ctr tasks ls: pid %q: %w", f[1], err)
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("container %s has no task in containerd", id)
}

func (n *Node) logf(format string, args ...any) {
	fmt.Fprintf(n.opts.Log, "[realnode %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("realnode: %w (run e2e/images/build.sh)", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			m[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("realnode: read %s: %w", path, err)
	}
	return m, nil
}

// findVersion returns the first version-looking word of s ("v1.36.4",
// "1.6.20~ds1", "1.1.5+ds1"), or "".
func findVersion(s string) string {
	return regexp.MustCompile(`v?[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z~.+-]*`).FindString(s)
}

func (n *Node) readVersions(ctx context.Context) (map[string]string, error) {
	v := map[string]string{}
	for name, cmd := range map[string][]string{
		"kubelet":    {filepath.Join(n.opts.NodeDir, "bin", "kubelet"), "--version"},
		"containerd": {"containerd", "--version"},
		"runc":       {"runc", "--version"},
	} {
		out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("realnode: %s: %w: %s", strings.Join(cmd, " "), err, strings.TrimSpace(string(out)))
		}
		first, _, _ := strings.Cut(string(out), "\n")
		// "Kubernetes v1.36.4" · "containerd github.com/containerd/containerd 1.6.20~ds1 ..." · "runc version 1.1.5+ds1"
		ver := findVersion(first)
		if ver == "" {
			return nil, fmt.Errorf("realnode: no version in %q", first)
		}
		v[name] = ver
	}
	return v, nil
}

func (n *Node) start(_ context.Context, name, path string, args ...string) (*proc.Process, error) {
	return n.procs.Start(name, path, nil, args...)
}

// wait polls check every 200 ms until it returns nil, p exits or timeout.
func (n *Node) wait(ctx context.Context, p *proc.Process, what string, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("realnode: %s exited (%v) before %s; see %s", p.Name, p.Err(), what, filepath.Join(n.LogDir(), p.Name+".log"))
		case <-ctx.Done():
			return fmt.Errorf("realnode: %s: %w (last: %v); see %s", what, ctx.Err(), last, filepath.Join(n.LogDir(), p.Name+".log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (n *Node) startContainerd(ctx context.Context) error {
	cd := filepath.Join(n.dir, "containerd")
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # No CAP_SYS_RESOURCE on these machines: the sandbox's oom_score_adj of
  # -998 is refused unless containerd clamps it to its own (NOTES.md).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "runc"
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(cd, "root"), filepath.Join(cd, "state"), n.sock, filepath.Join(cd, "opt"),
		"docker.io/"+n.images["PAUSE_IMAGE"], filepath.Join(n.dir, "runc"), filepath.Join(n.dir, "cni", "net.d"))
	path := filepath.Join(cd, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("realnode: containerd config: %w", err)
	}
	p, err := n.start(ctx, "containerd", "containerd", "--config", path, "--log-level", "info")
	if err != nil {
		return err
	}
	if err := n.wait(ctx, p, "containerd answers", 60*time.Second, func() error {
		_, err := n.Ctr(ctx, "version")
		return err
	}); err != nil {
		return err
	}
	n.logf("containerd up (pid %d), socket %s", p.PID(), n.sock)
	return nil
}

// importImages loads every images/*.tar (docker-archive) into k8s.io.
func (n *Node) importImages(ctx context.Context) error {
	start := time.Now()
	tars, err := filepath.Glob(filepath.Join(n.opts.NodeDir, "images", "*.tar"))
	if err != nil || len(tars) == 0 {
		return fmt.Errorf("realnode: no image archives in %s (run e2e/images/build.sh)", filepath.Join(n.opts.NodeDir, "images"))
	}
	sort.Strings(tars)
	for _, t := range tars {
		if _, err := n.Ctr(ctx, "images", "import", "--no-unpack=false", t); err != nil {
			return fmt.Errorf("realnode: import %s: %w", filepath.Base(t), err)
		}
	}
	out, err := n.Ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return err
	}
	n.logf("imported %d images in %s: %s", len(tars), time.Since(start).Round(time.Millisecond), strings.Join(strings.Fields(out), " "))
	return nil
}

func (n *Node) writeCNIConfig() error {
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "redis-keda-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, Bridge, PodCIDR, NodeIP, filepath.Join(n.dir, "cni", "ipam"))
	if err := os.WriteFile(filepath.Join(n.dir, "cni", "net.d", "10-redis-keda-e2e.conflist"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("realnode: CNI config: %w", err)
	}
	return nil
}

// makeCgroupRoot creates kubelet's cgroupRoot in every cgroup v1 hierarchy
// (kubelet refuses a cgroupRoot that does not exist); cpuset needs its cpus
// and mems copied from the parent before anything can join.
func (n *Node) makeCgroupRoot() error {
	if fileExists("/sys/fs/cgroup/cgroup.controllers") {
		return os.MkdirAll(filepath.Join("/sys/fs/cgroup", n.cgroupRoot), 0o755) // cgroup v2
	}
	for _, h := range cgroupV1Hierarchies() {
		d := filepath.Join(h, n.cgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("realnode: cgroup %s: %w", d, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return fmt.Errorf("realnode: cpuset: %w", err)
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("realnode: cpuset: %w", err)
				}
			}
		}
	}
	return nil
}

// cgroupV1Hierarchies lists the mount points of cgroup v1 hierarchies.
func cgroupV1Hierarchies() []string {
	var hs []string
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "cgroup" {
			hs = append(hs, fs[1])
		}
	}
	return hs
}

func (n *Node) startKubelet(ctx context.Context) error {
	c := n.opts.Cluster
	pki := filepath.Join(n.dir, "kubelet-pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		return fmt.Errorf("realnode: %w", err)
	}
	// Node identity for the Node authorizer; serving cert the apiserver
	// verifies (--kubelet-certificate-authority) for logs/exec/attach.
	cert, key, err := c.IssueClientCert("kubelet-client", "system:node:"+NodeName, "system:nodes")
	if err != nil {
		return fmt.Errorf("realnode: kubelet client cert: %w", err)
	}
	scert, skey, err := c.IssueServingCert("kubelet-serving", NodeName, []net.IP{net.ParseIP(NodeIP), net.ParseIP("127.0.0.1")}, []string{NodeName, "localhost"})
	if err != nil {
		return fmt.Errorf("realnode: kubelet serving cert: %w", err)
	}
	kubeconfig := filepath.Join(n.dir, "kubelet.kubeconfig")
	server := fmt.Sprintf("https://127.0.0.1:%d", c.APIServerPort())
	if err := c.WriteKubeconfig(kubeconfig, server, cert, key); err != nil {
		return err
	}
	if err := n.makeCgroupRoot(); err != nil {
		return err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	// No upstream resolver: pods resolve cluster names only (CoreDNS answers
	// NXDOMAIN for everything else), so no DNS query leaves the sandbox.
	if err := os.WriteFile(resolv, []byte("nameserver "+NodeIP+"\n"), 0o644); err != nil {
		return fmt.Errorf("realnode: resolv.conf: %w", err)
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %[2]s
tlsPrivateKeyFile: %[3]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]s}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%[5]s
# cgroup v1 only on these machines: kubelet 1.35+ refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[6]s
# No CAP_SYS_RESOURCE: kubelet cannot lower its own oom_score_adj (-999).
oomScoreAdj: 0
clusterDNS: [%[7]s]
clusterDomain: cluster.local
resolvConf: %[8]s
podLogsDir: %[9]s
staticPodPath: ""
maxPods: 110
serializeImagePulls: false
# The images are imported, never pulled: keep them whatever the disk says.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
failSwapOn: false
# Quick status for the tests: pod phase changes reach the API at once,
# node status every 10 s.
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
fileCheckFrequency: 20s
shutdownGracePeriod: 0s
`, NodeIP, scert, skey, c.CACert(), n.sock, n.cgroupRoot, ClusterDNS, resolv, n.PodLogDir())
	cfgPath := filepath.Join(n.dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("realnode: kubelet config: %w", err)
	}
	p, err := n.start(ctx, "kubelet", filepath.Join(n.opts.NodeDir, "bin", "kubelet"),
		"--config", cfgPath,
		"--kubeconfig", kubeconfig,
		"--root-dir", filepath.Join(n.dir, "kubelet"),
		"--cert-dir", pki,
		"--hostname-override", NodeName,
		"--node-ip", NodeIP,
		"--v", "1",
	)
	if err != nil {
		return err
	}
	if err := n.wait(ctx, p, "node "+NodeName+" Ready", 120*time.Second, func() error {
		node, err := n.kube.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	}); err != nil {
		return err
	}
	n.logf("kubelet up (pid %d), node %s Ready", p.PID(), NodeName)
	return nil
}

func (n *Node) startKubeProxy(ctx context.Context) error {
	c := n.opts.Cluster
	cert, key, err := c.IssueClientCert("kube-proxy", "system:kube-proxy")
	if err != nil {
		return fmt.Errorf("realnode: kube-proxy cert: %w", err)
	}
	kubeconfig := filepath.Join(n.dir, "kube-proxy.kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", c.APIServerPort()), cert, key); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Only traffic from outside the pod range to a Service is masqueraded
# (to the bridge address, inside the sandbox); pod traffic never is.
iptables:
  masqueradeAll: false
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
nodePortAddresses: [%q]
# Leave the kernel's conntrack settings and our oom_score_adj alone (no
# CAP_SYS_RESOURCE; shared sysctls).
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, NodeName, PodCIDR, NodeIP+"/32")
	cfgPath := filepath.Join(n.dir, "kube-proxy-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("realnode: kube-proxy config: %w", err)
	}
	p, err := n.start(ctx, "kube-proxy", filepath.Join(n.opts.NodeDir, "bin", "kube-proxy"), "--config", cfgPath, "--v", "1")
	if err != nil {
		return err
	}
	if err := n.wait(ctx, p, "kube-proxy /healthz", 60*time.Second, func() error {
		resp, err := http.Get("http://127.0.0.1:10256/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		return err
	}
	n.logf("kube-proxy up (pid %d), iptables mode", p.PID())
	return nil
}

// Stop tears the node down: kube-proxy and kubelet (SIGTERM), every
// container process (SIGKILL, by the PIDs in the node's cgroups), the
// containerd shims of this containerd (by the PIDs whose command line names
// its socket), containerd; then unmounts what is mounted under the work
// dir, removes the node's cgroups and the work dir. Safe to call twice.
// The bridge, iptables rules and netns go with the sandbox's namespaces.
func (n *Node) Stop() error {
	if n.procs == nil { // Start failed before anything could run
		return nil
	}
	procs, first := n.procs.Close()
	if !first {
		return nil
	}
	// containerd last: after the containers and their shims.
	errs := []error{proc.StopReverse(procs, 10*time.Second, "containerd")}
	var containerd *proc.Process
	for _, p := range procs {
		if p.Name == "containerd" {
			containerd = p
		}
	}
	killed := n.killCgroupProcs()
	shims := n.killShims()
	if containerd != nil {
		if err := containerd.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	n.procs.CloseLogs()
	if err := unmountUnder(n.dir); err != nil {
		errs = append(errs, err)
	}
	if err := n.removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	if n.ownDir && !n.opts.KeepWorkDir {
		if err := os.RemoveAll(n.dir); err != nil {
			errs = append(errs, fmt.Errorf("realnode: remove work dir: %w", err))
		}
	}
	n.logf("stopped: %d node processes, %d container processes, %d shims", len(procs), killed, shims)
	return errors.Join(errs...)
}

// killCgroupProcs SIGKILLs every process in the node's cgroups (the
// containers and sandboxes), a few rounds until none is left.
func (n *Node) killCgroupProcs() int {
	killed := 0
	for round := 0; round < 20; round++ {
		pids := n.cgroupPIDs()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return killed
}

func (n *Node) cgroupPIDs() []int {
	seen := map[int]bool{}
	roots := []string{filepath.Join("/sys/fs/cgroup", n.cgroupRoot)}
	if !fileExists("/sys/fs/cgroup/cgroup.controllers") {
		roots = nil
		for _, h := range cgroupV1Hierarchies() {
			roots = append(roots, filepath.Join(h, n.cgroupRoot))
		}
	}
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for p := range seen {
		pids = append(pids, p)
	}
	return pids
}

// killShims SIGKILLs the containerd-shim-runc-v2 processes started by this
// node's containerd: those whose command line has "-address <our socket>".
func (n *Node) killShims() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	killed := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == n.sock {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
				break
			}
		}
	}
	return killed
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("realnode: mountinfo: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("realnode: unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the node's cgroup trees, deepest first.
func (n *Node) removeCgroups() error {
	roots := []string{filepath.Join("/sys/fs/cgroup", n.cgroupRoot)}
	if !fileExists("/sys/fs/cgroup/cgroup.controllers") {
		roots = nil
		for _, h := range cgroupV1Hierarchies() {
			roots = append(roots, filepath.Join(h, n.cgroupRoot))
		}
	}
	var errs []error
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("realnode: rmdir cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}
