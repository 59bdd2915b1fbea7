package k8s_test

// The image and deploy scripts (task image, task push, task deploy), run as
// written against STAND-INS for docker, kubectl, kind and minikube: small
// shell scripts that log their arguments and answer like the real tools do
// for the few calls the scripts make. No Docker engine or cluster exists
// where the tests run; what is checked is what the scripts decide: the
// build command, where the image is loaded or pushed, its tag, the image
// the rendered manifests end up with, and the messages when something is
// missing. `kubectl kustomize` / `kubectl apply -k` in the stand-in render
// with the kustomize library through this test binary (TestMain), so the
// manifests deploy.sh would apply are checked for real.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderEnv makes the test binary render a kustomization and exit (see
// TestMain): the kubectl stand-in's `kustomize` and `apply -k`.
const renderEnv = "K8S_TEST_RENDER_DIR"

// renderForStandIn is TestMain's render mode.
func renderForStandIn(dir string) int {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		os.Stderr.WriteString("error: " + err.Error() + "\n")
		return 1
	}
	out, err := m.AsYaml()
	if err != nil {
		os.Stderr.WriteString("error: " + err.Error() + "\n")
		return 1
	}
	os.Stdout.Write(out)
	return 0
}

var standIns = map[string]string{
	"docker": `#!/bin/sh
echo "docker $*" >>"$STUB_LOG"
case "$1 $2" in
"buildx version") exit "${STUB_BUILDX_RC:-0}" ;;
"buildx build") exit 0 ;;
"image inspect") echo 11534336 ;;
"info "*) exit "${STUB_ENGINE_RC:-0}" ;;
esac
`,
	"kubectl": `#!/bin/sh
echo "kubectl $*" >>"$STUB_LOG"
case "$1" in
config) [ -n "$STUB_CONTEXT" ] || exit 1; echo "$STUB_CONTEXT" ;;
get) exit "${STUB_KEDA_RC:-0}" ;;
kustomize) K8S_TEST_RENDER_DIR="$2" exec "$STUB_TEST_BINARY" ;;
apply) K8S_TEST_RENDER_DIR="$3" "$STUB_TEST_BINARY" >"$STUB_APPLIED" ;;
esac
`,
	"kind": `#!/bin/sh
echo "kind $*" >>"$STUB_LOG"
[ "$1 $2" = "get clusters" ] && printf '%b\n' "$STUB_KIND_CLUSTERS"
exit 0
`,
	"minikube": `#!/bin/sh
echo "minikube $*" >>"$STUB_LOG"
[ "$1" = -p ] && [ "$2" = "$STUB_MINIKUBE_PROFILE" ] || exit 1
exit 0
`,
}

// scriptsRepo is a throw-away git checkout holding a copy of k8s/ (base,
// components, overlays, scripts), so the scripts' git describe and
// .task/last-image are the test's, not this repository's.
type scriptsRepo struct {
	t    *testing.T
	root string
	path string // PATH: the stand-ins, then links to the system tools the scripts use
	log  string
}

func newScriptsRepo(t *testing.T, absent ...string) *scriptsRepo {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "k8s"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"base", "components", "overlays", "scripts"} {
		if out, err := exec.Command("cp", "-r", d, filepath.Join(root, "k8s", d)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", d, err, out)
		}
	}
	r := &scriptsRepo{t: t, root: root, log: filepath.Join(t.TempDir(), "calls.log")}
	r.git("init", "-q", "-b", "main")
	r.git("add", ".")
	r.git("commit", "-q", "-m", "k8s")
	r.git("tag", "v1.2.3")

	stubs, sys := t.TempDir(), t.TempDir()
	for name, body := range standIns {
		if slices.Contains(absent, name) {
			continue
		}
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Only these system tools: a real docker/kubectl/kind on this machine
	// must not leak in.
	for _, tool := range []string{"bash", "sh", "git", "sha256sum", "cut", "tr", "xargs", "awk", "sed", "grep",
		"mkdir", "mktemp", "rm", "cat", "date", "dirname", "basename", "env", "printf"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not installed: the scripts need it", tool)
		}
		if err := os.Symlink(p, filepath.Join(sys, tool)); err != nil {
			t.Fatal(err)
		}
	}
	r.path = stubs + ":" + sys
	return r
}

func (r *scriptsRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.root
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// run runs k8s/scripts/<script> with env and returns its
// combined output, the stand-ins' calls, and the exit code.
func (r *scriptsRepo) run(script string, env ...string) (out string, calls []string, code int) {
	r.t.Helper()
	self, err := os.Executable()
	if err != nil {
		r.t.Fatal(err)
	}
	_ = os.Remove(r.log)
	cmd := exec.Command("bash", filepath.Join(r.root, "k8s", "scripts", script))
	cmd.Dir = r.root
	cmd.Env = []string{"PATH=" + r.path, "HOME=" + r.t.TempDir(), "STUB_LOG=" + r.log, "STUB_TEST_BINARY=" + self,
		"STUB_APPLIED=" + filepath.Join(r.root, "applied.yaml")}
	cmd.Env = append(cmd.Env, env...)
	b, err := cmd.CombinedOutput()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	logb, _ := os.ReadFile(r.log)
	for _, l := range strings.Split(strings.TrimSpace(string(logb)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return string(b), calls, code
}

func (r *scriptsRepo) lastImage() string {
	b, _ := os.ReadFile(filepath.Join(r.root, ".task", "last-image"))
	return strings.TrimSpace(string(b))
}

func findCall(calls []string, prefix string) string {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return c
		}
	}
	return ""
}

// imagesIn returns the image of every container of the rendered workloads.
func imagesIn(t *testing.T, yamlText string) map[string]string {
	t.Helper()
	objs, err := parseMulti([]byte(yamlText))
	if err != nil {
		t.Fatalf("parse rendered manifests: %v\n%s", err, yamlText)
	}
	out := map[string]string{}
	for _, p := range podSpecs(rendered{objs: objs}) {
		for _, c := range list(p.spec, "containers") {
			out[p.where+"/"+str(c, "name")] = str(c, "image")
		}
	}
	return out
}

func TestImageScriptNeedsBuildKit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		absent []string
		env    []string
		want   string
	}{
		{"no docker CLI", []string{"docker"}, nil, "docker CLI not found"},
		{"docker without buildx", nil, []string{"STUB_BUILDX_RC=1"}, "docker buildx is missing: this Dockerfile needs BuildKit (RUN --mount, --platform=$BUILDPLATFORM)"},
		{"no engine", nil, []string{"STUB_ENGINE_RC=1"}, "no Docker engine reachable (docker info failed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newScriptsRepo(t, tc.absent...)
			out, calls, code := r.run("image.sh", tc.env...)
			if code != 1 || !strings.Contains(out, "image: "+tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
			if c := findCall(calls, "docker buildx build"); c != "" {
				t.Errorf("built anyway: %s", c)
			}
			if r.lastImage() != "" {
				t.Errorf("recorded an image that was not built: %s", r.lastImage())
			}
		})
	}
}

func TestImageScriptLoadsIntoLocalClusters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      []string
		wantCall string // "" = no load at all
		wantOut  string
	}{
		{"kind", []string{"STUB_CONTEXT=kind-demo", `STUB_KIND_CLUSTERS=other\ndemo`},
			"kind load docker-image redis-keda:v1.2.3 --name demo", "loaded redis-keda:v1.2.3 into kind cluster demo"},
		{"minikube", []string{"STUB_CONTEXT=minikube", "STUB_MINIKUBE_PROFILE=minikube"},
			"minikube -p minikube image load redis-keda:v1.2.3", "loaded redis-keda:v1.2.3 into minikube profile minikube"},
		{"minikube profile", []string{"STUB_CONTEXT=dev-cluster", "STUB_MINIKUBE_PROFILE=dev-cluster"},
			"minikube -p dev-cluster image load redis-keda:v1.2.3", ""},
		{"kind context, cluster gone", []string{"STUB_CONTEXT=kind-old", `STUB_KIND_CLUSTERS=demo`},
			"", "task push REGISTRY="},
		{"remote cluster", []string{"STUB_CONTEXT=arn:aws:eks:eu-west-1:1:cluster/prod"},
			"", "the current kubectl context (arn:aws:eks:eu-west-1:1:cluster/prod) is not a kind or minikube cluster"},
		{"no context", nil, "", "the current kubectl context (none) is not a kind or minikube cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newScriptsRepo(t)
			out, calls, code := r.run("image.sh", tc.env...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			build := findCall(calls, "docker buildx build")
			for _, want := range []string{"--build-arg VERSION=v1.2.3 ", "--build-arg REVISION=" + r.git("rev-parse", "HEAD"), "-t redis-keda:v1.2.3 ", "--load ."} {
				if !strings.Contains(build+" ", want) {
					t.Errorf("build command %q lacks %q", build, want)
				}
			}
			var loaded string
			for _, c := range calls {
				if strings.HasPrefix(c, "kind load") || strings.Contains(c, " image load ") {
					loaded = c
				}
			}
			if loaded != tc.wantCall {
				t.Errorf("load call %q, want %q (calls: %q)", loaded, tc.wantCall, calls)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
			if got := r.lastImage(); got != "redis-keda:v1.2.3" {
				t.Errorf(".task/last-image %q, want redis-keda:v1.2.3", got)
			}
		})
	}
}

func TestPushScript(t *testing.T) {
	r := newScriptsRepo(t)
	out, calls, code := r.run("push.sh", "REGISTRY=registry.example.com/team/", "PLATFORMS=linux/amd64,linux/arm64", "STUB_CONTEXT=kind-demo", "STUB_KIND_CLUSTERS=demo")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	build := findCall(calls, "docker buildx build")
	for _, want := range []string{"-t registry.example.com/team/redis-keda:v1.2.3 ", "--platform linux/amd64,linux/arm64 ", "--push ."} {
		if !strings.Contains(build+" ", want) {
			t.Errorf("build command %q lacks %q", build, want)
		}
	}
	if c := findCall(calls, "kind load"); c != "" {
		t.Errorf("a push also loaded into kind: %s", c)
	}
	if !strings.Contains(out, "task deploy OVERLAY=<overlay> IMAGE=registry.example.com/team/redis-keda TAG=v1.2.3") {
		t.Errorf("push does not say how to deploy what it pushed:\n%s", out)
	}
	out, calls, code = r.run("push.sh")
	if code != 1 || !strings.Contains(out, "push: set REGISTRY=<registry>/<namespace>") || findCall(calls, "docker buildx build") != "" {
		t.Errorf("push without REGISTRY: exit %d, calls %q, output:\n%s", code, calls, out)
	}
}

var dirtyTag = regexp.MustCompile(`^v1\.2\.3-1-g[0-9a-f]{7,}-dirty-[0-9a-f]{10}$`)

// TestImageTags: tags come from git describe; a tree with uncommitted
// changes gets a tag derived from those changes, so a rebuild after an edit
// gets a new tag (a reused tag would not roll the publisher) and a rebuild
// of the same tree the same one.
func TestImageTags(t *testing.T) {
	r := newScriptsRepo(t)
	tag := func() string {
		t.Helper()
		out, calls, code := r.run("image.sh", "DRY_RUN=1")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if len(calls) != 0 {
			t.Errorf("DRY_RUN ran %q", calls)
		}
		m := regexp.MustCompile(`-t redis-keda:(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no -t in %q", out)
		}
		return m[1]
	}
	if got := tag(); got != "v1.2.3" {
		t.Errorf("at tag v1.2.3: %q", got)
	}
	if err := os.WriteFile(filepath.Join(r.root, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.git("add", "main.go")
	r.git("commit", "-q", "-m", "code")
	clean := tag()
	if want := "v1.2.3-1-g" + r.git("rev-parse", "--short", "HEAD"); clean != want {
		t.Errorf("one commit after v1.2.3: %q, want %q", clean, want)
	}
	edit := func(s string) {
		if err := os.WriteFile(filepath.Join(r.root, "main.go"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("package main\n\nfunc main() {}\n")
	first := tag()
	if !dirtyTag.MatchString(first) {
		t.Errorf("dirty tree: %q, want %s", first, dirtyTag)
	}
	if again := tag(); again != first {
		t.Errorf("same dirty tree, two tags: %q, %q", first, again)
	}
	edit("package main\n\nfunc main() { println() }\n")
	second := tag()
	if second == first || !dirtyTag.MatchString(second) {
		t.Errorf("after another edit: %q (before %q): want a new dirty tag", second, first)
	}
	if err := os.WriteFile(filepath.Join(r.root, "new.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if third := tag(); third == second {
		t.Errorf("a new untracked file does not change the tag %q", third)
	}
	if out, _, code := r.run("image.sh", "DRY_RUN=1", "TAG=custom-1"); code != 0 || !strings.Contains(out, "-t redis-keda:custom-1 ") {
		t.Errorf("TAG=custom-1: exit %d, %q", code, out)
	}
}

func TestDeployScript(t *testing.T) {
	r := newScriptsRepo(t)
	render := func(env ...string) map[string]string {
		t.Helper()
		out, _, code := r.run("deploy.sh", append([]string{"DRY_RUN=1"}, env...)...)
		if code != 0 {
			t.Fatalf("deploy %v: exit %d:\n%s", env, code, out)
		}
		_, yamlText, _ := strings.Cut(out, "apiVersion:") // after the notes on stderr
		return imagesIn(t, "apiVersion:"+yamlText)
	}
	same := func(what string, images map[string]string, want string) {
		t.Helper()
		if len(images) == 0 {
			t.Fatalf("%s: no workloads rendered", what)
		}
		for where, img := range images {
			if strings.HasPrefix(where, "StatefulSet/") {
				continue // the in-cluster Redis keeps its own image
			}
			if img != want {
				t.Errorf("%s: %s runs %q, want %q", what, where, img, want)
			}
		}
	}
	// TAG alone keeps the overlay's registry and repository.
	same("prod TAG=v9.9.9", render("OVERLAY=prod", "TAG=v9.9.9"), "ghcr.io/redis-keda/redis-keda:v9.9.9")
	same("prod IMAGE+TAG", render("OVERLAY=prod", "IMAGE=registry.example.com/team/redis-keda", "TAG=v2"), "registry.example.com/team/redis-keda:v2")
	same("dev IMAGE only", render("OVERLAY=dev", "IMAGE=registry.example.com/team/redis-keda"), "registry.example.com/team/redis-keda:dev")

	// task image, then task deploy: the image just built. Rebuilt after an
	// edit: a new tag, so the publisher's pod template changes and it rolls.
	stubs := []string{"STUB_CONTEXT=kind-demo", "STUB_KIND_CLUSTERS=demo"}
	if out, _, code := r.run("image.sh", stubs...); code != 0 {
		t.Fatalf("image: %d\n%s", code, out)
	}
	first := r.lastImage()
	same("dev after task image", render("OVERLAY=dev"), first)
	if err := os.WriteFile(filepath.Join(r.root, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := r.run("image.sh", stubs...); code != 0 {
		t.Fatalf("image: %d\n%s", code, out)
	}
	second := r.lastImage()
	if second == first {
		t.Fatalf("rebuild after an edit reused the tag %s", first)
	}
	same("dev after a rebuild", render("OVERLAY=dev"), second)
	// prod never deploys a local build by accident.
	same("prod after task image", render("OVERLAY=prod"), "ghcr.io/redis-keda/redis-keda:v0.1.0")

	// Without KEDA: a clear message, nothing applied.
	out, calls, code := r.run("deploy.sh", "STUB_KEDA_RC=1", "STUB_CONTEXT=kind-demo")
	if code != 1 || !strings.Contains(out, "deploy: KEDA is not installed in the cluster of context kind-demo (no CRD scaledjobs.keda.sh)") ||
		!strings.Contains(out, "kubectl apply --server-side -f https://github.com/kedacore/keda/releases/download/v2.21.0/keda-2.21.0.yaml") {
		t.Errorf("deploy without KEDA: exit %d, output:\n%s", code, out)
	}
	if c := findCall(calls, "kubectl apply"); c != "" {
		t.Errorf("applied without KEDA: %s", c)
	}
	// With KEDA: kubectl apply -k of the overlay with the last image.
	out, calls, code = r.run("deploy.sh")
	if code != 0 || findCall(calls, "kubectl apply -k") == "" {
		t.Fatalf("deploy: exit %d, calls %q:\n%s", code, calls, out)
	}
	applied, err := os.ReadFile(filepath.Join(r.root, "applied.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	same("applied", imagesIn(t, string(applied)), second)
}
