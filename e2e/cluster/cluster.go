// Package cluster starts a real, local Kubernetes control plane for
// end-to-end tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler (all upstream v1.36.4 binaries built by e2e/build.sh) and the
// real KEDA operator (v2.21.0), run out of cluster. Every process listens on
// 127.0.0.1 on ports picked at start, so several clusters can run at once.
//
// Pods run on one of two nodes: the stand-in (package e2e/node, local
// processes, no kubelet), or the real node (package e2e/realnode: kubelet,
// containerd, runc, kube-proxy, CoreDNS), for which Start is given
// Options.NodeIP.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/redis-keda/redis-keda/e2e/internal/proc"
)

// Options configure Start.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubectl, keda-operator and keda-crds/ (see e2e/build.sh).
	BinDir string
	// WorkDir is where PKI, etcd data, kubeconfig and logs go. Empty: a fresh
	// temp dir, removed by Stop unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// WithoutKEDA skips the KEDA CRDs and operator.
	WithoutKEDA bool
	// StopGrace is how long each process gets between SIGTERM and SIGKILL
	// (default 10s).
	StopGrace time.Duration

	// NodeIP, when set, prepares the control plane for the real node
	// (package realnode): the apiserver listens on every address of its
	// network namespace (which realnode makes private) and advertises
	// NodeIP, so pods reach it through the "kubernetes" Service; the
	// ServiceAccount admission plugin is on (pods get tokens); the Node
	// authorizer runs; the apiserver talks to kubelets with the admin cert
	// and verifies their serving certs with the cluster CA; the controllers
	// a real workload needs (EndpointSlices, StatefulSets, PV binding) run.
	NodeIP string
	// KEDAInCluster installs KEDA's CRDs but runs no operator process: the
	// real node deploys the operator as a pod.
	KEDAInCluster bool
}

// Cluster is a running control plane. Stop it with Stop.
type Cluster struct {
	opts       Options
	workDir    string
	ownWorkDir bool
	pki        *pki
	kubeconfig string
	apiURL     string
	etcdURL    string
	kedaHealth string // http://127.0.0.1:P, KEDA's health probe address
	rest       *rest.Config

	procs *proc.Group // the one starter, shared with the real node
}

// Start brings up the control plane and, unless WithoutKEDA, installs KEDA's
// CRDs and starts the KEDA operator. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.BinDir == "" {
		return nil, errors.New("cluster: Options.BinDir is required")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	c := &Cluster{opts: opts, workDir: opts.WorkDir}
	if c.workDir == "" {
		d, err := os.MkdirTemp("", "redis-keda-e2e-")
		if err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
		c.workDir, c.ownWorkDir = d, true
	}
	c.procs = &proc.Group{What: "cluster", LogDir: c.LogDir(), Dir: c.workDir}
	for _, d := range []string{"logs", "etcd", "pki"} {
		if err := os.MkdirAll(filepath.Join(c.workDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				c.logf("cleanup after failed start: %v", serr)
			}
		}
	}()
	start := time.Now()
	c.logf("work dir %s (process logs in %s)", c.workDir, c.LogDir())

	var extraIPs []net.IP
	if opts.NodeIP != "" {
		ip := net.ParseIP(opts.NodeIP)
		if ip == nil {
			return nil, fmt.Errorf("cluster: Options.NodeIP %q is not an IP address", opts.NodeIP)
		}
		extraIPs = append(extraIPs, ip)
	}
	if c.pki, err = newPKI(filepath.Join(c.workDir, "pki"), extraIPs...); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := c.startControllerManager(ctx); err != nil {
		return nil, err
	}
	if err := c.startScheduler(ctx); err != nil {
		return nil, err
	}
	c.logf("control plane ready in %s; kubeconfig: %s", time.Since(start).Round(time.Millisecond), c.kubeconfig)
	switch {
	case opts.WithoutKEDA:
	case opts.KEDAInCluster:
		if err := c.installKEDACRDs(ctx); err != nil {
			return nil, err
		}
		c.logf("KEDA CRDs installed (operator to be deployed in the cluster) in %s", time.Since(start).Round(time.Millisecond))
	default:
		if err := c.startKEDA(ctx); err != nil {
			return nil, err
		}
		c.logf("KEDA operator ready in %s", time.Since(start).Round(time.Millisecond))
	}
	return c, nil
}

// Kubeconfig returns the path of an admin (system:masters) kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// RESTConfig returns a copy of the admin client config.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// WorkDir is the cluster's working directory.
func (c *Cluster) WorkDir() string { return c.workDir }

// LogDir holds one log file per process (etcd.log, kube-apiserver.log, ...).
func (c *Cluster) LogDir() string { return filepath.Join(c.workDir, "logs") }

// BinDir is the folder of the binaries the cluster runs.
func (c *Cluster) BinDir() string { return c.opts.BinDir }

// APIServerURL is https://127.0.0.1:PORT.
func (c *Cluster) APIServerURL() string { return c.apiURL }

// APIServerPort is the apiserver's secure port.
func (c *Cluster) APIServerPort() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(c.apiURL, "https://"))
	n, _ := strconv.Atoi(p)
	return n
}

// CACert is the cluster CA's certificate (PEM file): client CA of the
// apiserver, issuer of every serving cert.
func (c *Cluster) CACert() string { return c.pki.CACert }

// KEDACertDir holds ca.crt, tls.crt and tls.key for the KEDA operator.
func (c *Cluster) KEDACertDir() string { return c.pki.KEDACertDir }

// IssueClientCert writes a client cert and key for user cn in groups orgs,
// signed by the cluster CA, into the PKI dir as <name>.crt/.key.
func (c *Cluster) IssueClientCert(name, cn string, orgs ...string) (cert, key string, err error) {
	return c.pki.issueClient(name, cn, orgs...)
}

// IssueServingCert writes a serving cert and key for ips and dns, signed
// by the cluster CA, into the PKI dir as <name>.crt/.key.
func (c *Cluster) IssueServingCert(name, cn string, ips []net.IP, dns []string) (cert, key string, err error) {
	return c.pki.issueServing(name, cn, ips, dns)
}

// WriteKubeconfig writes a kubeconfig for the apiserver at server
// (https://HOST:PORT) with the given client cert and key.
func (c *Cluster) WriteKubeconfig(path, server, cert, key string) error {
	kc := fmt.Sprintf(kubeconfigTemplate, server, c.pki.CACert, cert, key)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// KEDAHealthURL is the base URL of the KEDA operator's health probe endpoint
// (serving /healthz and /readyz), empty without KEDA.
func (c *Cluster) KEDAHealthURL() string { return c.kedaHealth }

// PIDs returns the PIDs of the running control-plane processes by name.
func (c *Cluster) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range c.procs.Procs() {
		m[p.Name] = p.PID()
	}
	return m
}

// Kubectl runs the built kubectl against the cluster and returns its combined
// output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlStdin(ctx, nil, args...)
}

// KubectlStdin is Kubectl with stdin.
func (c *Cluster) KubectlStdin(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.BinDir, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Stop stops every process in reverse start order (SIGTERM to its process
// group, StopGrace, SIGKILL) and removes the work dir if Start made it. It is
// safe to call more than once.
func (c *Cluster) Stop() error {
	procs, first := c.procs.Close()
	if !first {
		return nil
	}
	errs := []error{proc.StopReverse(procs, c.opts.StopGrace)}
	c.procs.CloseLogs()
	if c.ownWorkDir && !c.opts.KeepWorkDir {
		if err := os.RemoveAll(c.workDir); err != nil {
			errs = append(errs, fmt.Errorf("remove work dir: %w", err))
		}
	}
	if len(procs) > 0 {
		c.logf("stopped %d processes", len(procs))
	}
	return errors.Join(errs...)
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.opts.Log, "[cluster %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// start launches a binary from BinDir with its output in logs/<name>.log.
func (c *Cluster) start(name, binary string, env []string, args ...string) (*proc.Process, error) {
	return c.procs.Start(name, filepath.Join(c.opts.BinDir, binary), env, args...)
}

// freePort asks the kernel for a free loopback port. The port is released
// before use, so another process could take it in between: unlikely on
// loopback, and a taken port shows as a failed start.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is picked so they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200 (or ok returns true), p exits or
// the timeout passes.
func (c *Cluster) waitHTTP(ctx context.Context, p *proc.Process, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait %s: %w", p.Name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before %s was ready; see %s", p.Name, p.Err(), url, filepath.Join(c.LogDir(), p.Name+".log"))
		case <-ctx.Done():
			return fmt.Errorf("wait for %s at %s: %w (last: %s); see %s", p.Name, url, ctx.Err(), last, filepath.Join(c.LogDir(), p.Name+".log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	p, err := c.start("etcd", "etcd", nil,
		"--name", "e2e",
		"--data-dir", filepath.Join(c.workDir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer,
		"--unsafe-no-fsync", "--log-level", "warn",
	)
	if err != nil {
		return err
	}
	c.etcdURL = client
	if err := c.waitHTTP(ctx, p, http.DefaultClient, client+"/health", 30*time.Second); err != nil {
		return err
	}
	c.logf("etcd up at %s (pid %d)", client, p.PID())
	return nil
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	k := c.pki
	args := []string{
		"--etcd-servers", c.etcdURL,
		"--secure-port", strconv.Itoa(port),
		"--tls-cert-file", k.ServingCert, "--tls-private-key-file", k.ServingKey,
		"--client-ca-file", k.CACert,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", k.SAPub,
		"--service-account-signing-key-file", k.SAKey,
		"--service-cluster-ip-range", ServiceCIDR,
		"--allow-privileged",
		"--profiling=false",
		"--v", "1",
	}
	if c.opts.NodeIP == "" {
		args = append(args,
			"--bind-address", "127.0.0.1",
			"--advertise-address", "127.0.0.1",
			"--authorization-mode", "RBAC",
			// ServiceAccount admission would require a token volume a stand-in
			// node cannot mount; TaintNodesByCondition would taint the stand-in
			// node not-ready at registration.
			"--disable-admission-plugins", "ServiceAccount,TaintNodesByCondition",
			"--endpoint-reconciler-type", "none",
		)
	} else {
		args = append(args,
			// Every address of the network namespace realnode makes for the
			// test: loopback and the node's bridge, nothing else.
			"--bind-address", "0.0.0.0",
			"--advertise-address", c.opts.NodeIP,
			"--authorization-mode", "Node,RBAC",
			// No node-lifecycle controller runs, so nothing would lift the
			// not-ready taint this plugin puts on a registering node.
			"--disable-admission-plugins", "TaintNodesByCondition",
			"--kubelet-client-certificate", k.AdminCert,
			"--kubelet-client-key", k.AdminKey,
			"--kubelet-certificate-authority", k.CACert,
			"--kubelet-preferred-address-types", "InternalIP",
		)
	}
	p, err := c.start("kube-apiserver", "kube-apiserver", nil, args...)
	if err != nil {
		return err
	}
	c.apiURL = "https://127.0.0.1:" + strconv.Itoa(port)
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	hc, err := c.adminHTTPClient()
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, p, hc, c.apiURL+"/readyz", 90*time.Second); err != nil {
		return err
	}
	c.logf("kube-apiserver up at %s (pid %d)", c.apiURL, p.PID())
	return nil
}

// componentHealthClient talks to the controller-manager's and scheduler's
// /healthz, served with a self-signed cert they make at start: on loopback
// the cert is not verified (nothing but liveness is read).
func componentHealthClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // loopback liveness only
	}}
}

func (c *Cluster) adminHTTPClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(c.pki.CACert)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(c.pki.AdminCert, c.pki.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("load admin cert: %w", err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}, nil
}

func (c *Cluster) writeKubeconfig() error {
	c.kubeconfig = filepath.Join(c.workDir, "kubeconfig")
	if err := c.WriteKubeconfig(c.kubeconfig, c.apiURL, c.pki.AdminCert, c.pki.AdminKey); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	c.rest = cfg
	return nil
}

// ServiceCIDR is the Service IP range of every cluster (the real node's
// kube-proxy and CoreDNS use 10.0.0.1 and 10.0.0.10 from it).
const ServiceCIDR = "10.0.0.0/24"

const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: e2e
  context:
    cluster: e2e
    user: admin
    namespace: default
current-context: e2e
`

// controllers are the kube-controller-manager controllers Jobs (and the odd
// Deployment) need; nothing node-, volume- or cloud-related.
var controllers = []string{
	"job-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"ttl-after-finished-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"deployment-controller",
	"replicaset-controller",
	"pod-garbage-collector-controller",
	"clusterrole-aggregation-controller",
}

// realNodeControllers run in addition for the real node: Services get
// EndpointSlices (kube-proxy, CoreDNS), StatefulSets (the in-cluster Redis)
// get pods and PVCs, PVCs get bound to the node's local PVs.
func realNodeControllers() []string {
	return []string{
		"endpoints-controller",
		"endpointslice-controller",
		"endpointslice-mirroring-controller",
		"statefulset-controller",
		"persistentvolume-binder-controller",
		"persistentvolume-protection-controller",
		"persistentvolumeclaim-protection-controller",
	}
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	ctrls := controllers
	if c.opts.NodeIP != "" {
		ctrls = append(append([]string(nil), controllers...), realNodeControllers()...)
	}
	p, err := c.start("kube-controller-manager", "kube-controller-manager", nil,
		"--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig,
		"--authorization-kubeconfig", c.kubeconfig,
		"--controllers", strings.Join(ctrls, ","),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--service-account-private-key-file", c.pki.SAKey,
		"--root-ca-file", c.pki.CACert,
		"--use-service-account-credentials=false",
		"--v", "1",
	)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, p, componentHealthClient(), "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", 60*time.Second); err != nil {
		return err
	}
	c.logf("kube-controller-manager up (pid %d)", p.PID())
	return nil
}

func (c *Cluster) startScheduler(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := c.start("kube-scheduler", "kube-scheduler", nil,
		"--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig,
		"--authorization-kubeconfig", c.kubeconfig,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--v", "1",
	)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, p, componentHealthClient(), "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", 60*time.Second); err != nil {
		return err
	}
	c.logf("kube-scheduler up (pid %d)", p.PID())
	return nil
}

// startKEDA applies KEDA's CRDs server-side (the ScaledJob CRD is too big
// for client-side apply), creates namespace keda and runs the operator out
// of cluster with the admin kubeconfig.
func (c *Cluster) startKEDA(ctx context.Context) error {
	if err := c.installKEDACRDs(ctx); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "create", "namespace", "keda"); err != nil {
		return fmt.Errorf("create namespace keda: %w", err)
	}
	return c.runKEDAOperator(ctx)
}

// installKEDACRDs applies KEDA's CRDs server-side (the ScaledJob CRD is too
// big for client-side apply) and waits until they are established.
func (c *Cluster) installKEDACRDs(ctx context.Context) error {
	crds := filepath.Join(c.opts.BinDir, "keda-crds")
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "--field-manager", "e2e", "-k", crds); err != nil {
		return fmt.Errorf("apply KEDA CRDs: %w", err)
	}
	// kubectl wait gives up at once, instead of waiting, when it reads a CRD
	// before the API server has written any status condition (".status.conditions
	// accessor error: <nil> is of the type <nil>"; seen on a loaded machine):
	// retry that case until the deadline.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.Kubectl(ctx, "wait", "--for", "condition=Established", "--timeout", "60s",
			"crd/scaledjobs.keda.sh", "crd/scaledobjects.keda.sh",
			"crd/triggerauthentications.keda.sh", "crd/clustertriggerauthentications.keda.sh")
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), ".status.conditions accessor error") || time.Now().After(deadline) {
			return fmt.Errorf("wait for KEDA CRDs: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for KEDA CRDs: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func (c *Cluster) runKEDAOperator(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	env := append(os.Environ(),
		"KUBECONFIG="+c.kubeconfig,
		"WATCH_NAMESPACE=",
		"KEDA_CLUSTER_OBJECT_NAMESPACE=keda",
		"POD_NAMESPACE=keda",
		"POD_NAME=keda-operator-e2e",
	)
	p, err := c.start("keda-operator", "keda-operator", env,
		"--kubeconfig", c.kubeconfig,
		"--cert-dir", c.pki.KEDACertDir,
		"--ca-dir", c.pki.KEDACADir,
		"--enable-cert-rotation=false",
		"--enable-webhook-patching=false",
		"--enable-apiservice-patching=false",
		"--leader-elect=false",
		"--metrics-bind-address", addr(0),
		"--health-probe-bind-address", addr(1),
		"--metrics-service-bind-address", addr(2),
		"--zap-log-level", "info",
	)
	if err != nil {
		return err
	}
	c.kedaHealth = "http://" + addr(1)
	if err := c.waitHTTP(ctx, p, http.DefaultClient, c.kedaHealth+"/readyz", 60*time.Second); err != nil {
		return err
	}
	c.logf("keda-operator up, health at %s (pid %d)", c.kedaHealth, p.PID())
	return nil
}
