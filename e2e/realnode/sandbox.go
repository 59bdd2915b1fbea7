// Package realnode runs a real Kubernetes node for the e2e tests: kubelet
// and kube-proxy (k8s.io/kubernetes v1.36.4: links to the multi-call kube
// binary e2e/build.sh builds),
// containerd and runc (Debian's packages), the CNI bridge plugin, and, as
// pods, CoreDNS and the KEDA operator, with images built locally and
// imported into containerd's k8s.io namespace: no registry.
//
// Everything runs inside a network namespace and a mount namespace of its
// own (EnterSandbox), so the node's bridge, iptables rules, ports, netns
// and overlay mounts never touch the host's, and vanish with the process.
package realnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/redis-keda/redis-keda/e2e/cluster"
)

// Network layout of the sandbox. Pod and Service traffic never leaves it:
// the bridge has no uplink, there is no default route beyond it and no
// masquerading to the outside.
const (
	Bridge      = "rkbr0"             // the CNI bridge (made by Prepare)
	NodeIP      = "10.244.0.1"        // the bridge's address: kubelet's node IP, the apiserver's advertise address
	PodCIDR     = "10.244.0.0/24"     // host-local IPAM range of the bridge
	ClusterDNS  = "10.0.0.10"         // CoreDNS Service IP, in ServiceCIDR
	ServiceCIDR = cluster.ServiceCIDR // Services (kube-proxy, CoreDNS)
	NodeName    = "e2e-node"          // the Node object
	sandboxEnv  = "REDIS_KEDA_E2E_SANDBOX"
)

// InSandbox reports whether this process runs inside the namespaces made by
// EnterSandbox.
func InSandbox() bool { return os.Getenv(sandboxEnv) == "1" }

// EnterSandbox re-executes the running program (same arguments, same
// environment plus a marker) inside new network and mount namespaces with
// unshare(1), replacing this process (same PID, so `go test` and a shell see
// no difference). It returns only on error, or at once when already inside.
// Call it before anything else runs (TestMain, main): whatever must reach
// the network (module proxy, debootstrap, image builds) must happen first.
func EnterSandbox() error {
	if InSandbox() {
		return nil
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("realnode: unshare(1) (util-linux) not found: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("realnode: own executable: %w", err)
	}
	args := append([]string{"unshare", "--net", "--mount", "--propagation", "private", "--", self}, os.Args[1:]...)
	env := append(os.Environ(), sandboxEnv+"=1")
	if err := syscall.Exec(unshare, args, env); err != nil {
		return fmt.Errorf("realnode: exec %s: %w", strings.Join(args, " "), err)
	}
	return nil // not reached
}

// Prepare sets up the sandbox once inside it: loopback up, the bridge with
// NodeIP (so the apiserver can advertise it before the first pod exists),
// bridged traffic through iptables (Services between pods on the bridge),
// and private tmpfs mounts over the host paths containerd and the CNI
// plugins use without a setting (/run/containerd for shim sockets,
// /var/lib/cni for CNI result caches), so nothing lands in the host's.
func Prepare() error {
	if !InSandbox() {
		return errors.New("realnode: Prepare outside the sandbox (call EnterSandbox first)")
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
		// Services are reached from the node itself too (the tests, kubelet's
		// probes go to pod IPs): kube-proxy's DNAT needs a route to start from.
		{"ip", "route", "add", ServiceCIDR, "dev", Bridge, "src", NodeIP},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("realnode: %s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// Per network namespace since Linux 5.3 (br_netfilter loaded).
	for _, f := range []string{"/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/ipv4/ip_forward"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("realnode: set %s: %w", f, err)
		}
	}
	for _, d := range []string{"/run/containerd", "/var/lib/cni"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("realnode: %w", err)
		}
		if err := syscall.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("realnode: mount tmpfs on %s: %w", d, err)
		}
	}
	return nil
}
