package realnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Build runs e2eDir/images/build.sh all: kubelet, kube-proxy, CoreDNS and
// pause binaries, the base images (cached by version stamp) and the project
// image from the repository's Dockerfile (rebuilt each time; buildah's layer
// cache makes an unchanged tree quick). It needs the network (Go module
// proxy, Debian mirror on a cold cache): call it before EnterSandbox.
// Returns the node folder for Options.NodeDir; progress goes to log.
func Build(ctx context.Context, e2eDir string, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(e2eDir, "images", "build.sh"), "all")
	cmd.Dir = e2eDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("e2e/images/build.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" || !fileExists(filepath.Join(dir, "versions.env")) {
		return "", errors.New("e2e/images/build.sh: no node dir printed")
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
