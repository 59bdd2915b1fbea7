package realnode

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/redis-keda/redis-keda/e2e/cluster"
)

// Build runs e2eDir/images/build.sh all: the bed's Go binaries (through
// e2e/build.sh, the one builder: kubelet and kube-proxy are links to its
// multi-call kube binary; CoreDNS, pause), the base images (cached by
// version stamp) and the project image from the repository's Dockerfile
// (rebuilt each time; buildah's layer cache makes an unchanged tree quick).
// On a cold cache the debootstraps and the project image are made while the
// binaries compile. It needs the network (Go module proxy, Debian mirror on
// a cold cache): call it before EnterSandbox. Returns the node folder for
// Options.NodeDir; progress goes to log.
func Build(ctx context.Context, e2eDir string, log io.Writer) (string, error) {
	dir, err := cluster.RunBuildScript(ctx, e2eDir, log, filepath.Join("images", "build.sh"), "all")
	if err != nil {
		return "", err
	}
	if !fileExists(filepath.Join(dir, "versions.env")) {
		return "", fmt.Errorf("e2e/images/build.sh: no versions.env in the node dir it printed (%s)", dir)
	}
	return dir, nil
}

// HostVersions returns "kubelet <v>, containerd <v>, runc <v>" for the
// kubelet in nodeDir/bin and the installed containerd and runc, without
// starting anything.
func HostVersions(ctx context.Context, nodeDir string) (string, error) {
	n := &Node{opts: Options{NodeDir: nodeDir}}
	v, err := n.readVersions(ctx)
	if err != nil {
		return "", err
	}
	n.versions = v
	return n.Versions(), nil
}

// Which is the one line `go tool task test` and `demo` print first:
// "node: kubelet <v>, containerd <v>, runc <v>" when the machine can run the
// real node (kubelet's version is the pin in tools/k8s/go.mod: it may not be
// built yet), else "node: stand-in (<reason>)" (see Choose). The error is
// Choose's: the machine can run the real node but a package is missing.
func Which(ctx context.Context, e2eDir string) (line string, real bool, err error) {
	real, reason, err := Choose()
	if err != nil {
		return "", false, err
	}
	if !real {
		return "node: stand-in (" + reason + ")", false, nil
	}
	kubelet, err := modVersion(filepath.Join(e2eDir, "tools", "k8s", "go.mod"), "k8s.io/kubernetes")
	if err != nil {
		return "", false, err
	}
	n := &Node{versions: map[string]string{"kubelet": kubelet}}
	for name, cmd := range map[string][]string{"containerd": {"containerd", "--version"}, "runc": {"runc", "--version"}} {
		out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
		first, _, _ := strings.Cut(string(out), "\n")
		if err != nil || findVersion(first) == "" {
			return "", false, fmt.Errorf("%s --version: %v %s", name, err, strings.TrimSpace(first))
		}
		n.versions[name] = findVersion(first)
	}
	return "node: " + n.Versions(), true, nil
}

// modVersion reads the required version of module mod from a go.mod.
func modVersion(gomod, mod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", gomod, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == mod && strings.HasPrefix(f[1], "v") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("no %s in %s", mod, gomod)
}
