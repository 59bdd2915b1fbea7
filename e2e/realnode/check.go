package realnode

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Available reports whether this machine can run the real node, and if not,
// why (one line, for "node: stand-in (<reason>)"). It checks what Start and
// images/build.sh need: root, the Debian packages (containerd, runc, ctr,
// the CNI plugins, buildah, debootstrap, iptables, iproute2, util-linux), a
// memory cgroup and br_netfilter. It does not start anything.
func Available() (ok bool, reason string) {
	if os.Geteuid() != 0 {
		return false, "not root: kubelet, containerd and network namespaces need root"
	}
	var missing []string
	for _, c := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "buildah", "debootstrap", "iptables", "ip", "unshare"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err != nil {
			missing = append(missing, "/usr/lib/cni/"+p)
		}
	}
	if len(missing) > 0 {
		return false, "missing " + strings.Join(missing, ", ") + " (apt-get install containerd runc containernetworking-plugins buildah debootstrap iptables)"
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

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
