package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// FindE2EDir walks up from dir to the e2e module folder (the one holding
// build.sh and tools/), accepting a repository root that contains e2e/.
func FindE2EDir(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find e2e dir: %w", err)
	}
	for {
		for _, cand := range []string{d, filepath.Join(d, "e2e")} {
			if fileExists(filepath.Join(cand, "build.sh")) && fileExists(filepath.Join(cand, "tools", "k8s", "go.mod")) {
				return cand, nil
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find e2e dir: no e2e/build.sh above %s", dir)
		}
		d = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// BuildControlPlane runs e2eDir/build.sh, the one builder of the bed's Go
// binaries (see its header for what it builds and the measured cold time),
// which builds whatever is missing, and returns the bin folder. Progress
// goes to log.
func BuildControlPlane(ctx context.Context, e2eDir string, log io.Writer) (string, error) {
	bin, err := RunBuildScript(ctx, e2eDir, log, "build.sh")
	if err != nil {
		return "", err
	}
	if !fileExists(filepath.Join(bin, "kube-apiserver")) {
		return "", fmt.Errorf("e2e/build.sh: no kube-apiserver in the bin dir it printed (%s)", bin)
	}
	return bin, nil
}

// RunBuildScript runs one of the bed's build scripts (path relative to
// e2eDir, e.g. "build.sh" or "images/build.sh") with args, its progress to
// log, and returns the last line it printed on stdout: the folder it built.
func RunBuildScript(ctx context.Context, e2eDir string, log io.Writer, script string, args ...string) (string, error) {
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(e2eDir, script)}, args...)...)
	cmd.Dir = e2eDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("e2e/%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("e2e/%s: no folder printed", script)
	}
	return dir, nil
}

// GoBuild builds Go main packages (e.g. "./jobs") of the module in modDir
// into outDir, one binary per package named after its folder.
func GoBuild(ctx context.Context, modDir, outDir string, log io.Writer, pkgs ...string) error {
	if log == nil {
		log = io.Discard
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	args := append([]string{"build", "-o", outDir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(log, "[build] go build %s (in %s)\n", strings.Join(pkgs, " "), modDir)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", strings.Join(pkgs, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
