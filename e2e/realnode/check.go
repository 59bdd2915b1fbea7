package realnode

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Choose decides which node the e2e suite and the demo use:
//   - the real node (real true) where the machine can run containers and has
//     every package the node needs;
//   - the stand-in (real false, reason says why, for "node: stand-in
//     (<reason>)") where it cannot run containers (Available), or with
//     E2E_NODE=standin;
//   - an error where it CAN run containers but a package is missing
//     (Missing): the caller stops with it — a machine that can run the real
//     node never falls back to the stand-in in silence.
func Choose() (real bool, reason string, err error) {
	if os.Getenv("E2E_NODE") == "standin" {
		return false, "E2E_NODE=standin", nil
	}
	if ok, reason := Available(); !ok {
		return false, reason, nil
	}
	if err := Missing(); err != nil {
		return false, "", err
	}
	return true, "", nil
}

// Available reports whether this machine can run the real node's
// containers, and if not, why (one line): root, a memory cgroup,
// br_netfilter. scripts/deps.sh applies the same rule (root, memory cgroup)
// to decide whether to install the node's packages. It does not start
// anything.
func Available() (ok bool, reason string) {
	if os.Geteuid() != 0 {
		return false, "not root: kubelet, containerd and network namespaces need root"
	}
	if !fileExists("/sys/fs/cgroup/memory/memory.limit_in_bytes") && !strings.Contains(readFile("/sys/fs/cgroup/cgroup.controllers"), "memory") {
		return false, "no memory cgroup controller (neither cgroup v1 memory nor cgroup v2 with memory)"
	}
	if !fileExists("/proc/sys/net/bridge/bridge-nf-call-iptables") {
		if out, err := exec.Command("modprobe", "br_netfilter").CombinedOutput(); err != nil {
			return false, fmt.Sprintf("br_netfilter not available (modprobe: %v: %s)", err, strings.TrimSpace(string(out)))
		}
	}
	return true, ""
}

// Missing returns nil when every command and file the real node and
// images/build.sh use is installed (containerd, its shim, ctr, runc, the CNI
// plugins, buildah, debootstrap, iptables, ip, unshare, nsenter), else an
// error naming what is missing and the command that installs it.
func Missing() error {
	var missing []string
	for _, c := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "buildah", "debootstrap", "iptables", "ip", "unshare", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err != nil {
			missing = append(missing, "/usr/lib/cni/"+p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("this machine can run the real node, but %s %s missing: install the node's packages with\n"+
		"  go tool task deps GROUPS=node\n"+
		"(or: apt-get install -y --no-install-recommends containerd runc containernetworking-plugins buildah debootstrap iptables iproute2 util-linux),\n"+
		"or run on the node stand-in with E2E_NODE=standin", strings.Join(missing, ", "), isAre(len(missing)))
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
