package k8s_test

// No Docker engine on CI: check what can be checked of the image here. The
// Dockerfile's `go build` lines are read from the Dockerfile itself and run
// as written (same env, flags and package), and the result must be a static
// binary that fits the image size budget and answers to the names the
// manifests use (/jobs, /publisher: links to it).

import (
	"compress/gzip"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image target is <= 15 MB. distroless static-debian12 is ~2 MiB
// uncompressed; the one multi-call binary must leave room for it.
const binaryBudget = 13 << 20

var goBuildRe = regexp.MustCompile(`CGO_ENABLED=0[^\n]*?\n?\s*go build (.*?) -o /out/(\S+) \./(\S+)`)

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(b), "\\\n", "\n")
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(goMod)
	if goLine == nil || !strings.Contains(df, "ARG GO_VERSION="+string(goLine[1])) {
		t.Errorf("Dockerfile GO_VERSION does not match go.mod's go %s", goLine[1])
	}
	for _, want := range []string{
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		"org.opencontainers.image.source",
		"org.opencontainers.image.version",
		"org.opencontainers.image.revision",
		// The manifests run /jobs and /publisher: links to the one binary.
		"ln -s redis-keda /out/jobs",
		"ln -s redis-keda /out/publisher",
		"COPY --from=build /out/ /",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	builds := goBuildRe.FindAllStringSubmatch(df, -1)
	if len(builds) != 1 || builds[0][2] != "redis-keda" || builds[0][3] != "cmd/redis-keda" {
		t.Fatalf("want one go build of ./cmd/redis-keda into /out/redis-keda, got %v", builds)
	}
	flags := builds[0][1]
	for _, flag := range []string{"-trimpath", "-s -w", "-X main.version="} {
		if !strings.Contains(flags, flag) {
			t.Errorf("go build lacks %s", flag)
		}
	}

	if testing.Short() {
		t.Skip("-short: not building the binary")
	}
	out := t.TempDir()
	bin := filepath.Join(out, "redis-keda")
	// The Dockerfile's flags, with VERSION substituted as the build arg would.
	args := append([]string{"build"}, splitFlags(strings.ReplaceAll(flags, "${VERSION}", "test-version"))...)
	args = append(args, "-o", bin, "./cmd/redis-keda")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("redis-keda is dynamically linked: the distroless static image cannot run it")
		}
	}
	f.Close()
	vb, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vb), "test-version") {
		t.Errorf("-X main.version did not stamp the version (is `var version` declared in package main?)")
	}
	var gz countWriter
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(vb)
	zw.Close()
	t.Logf("redis-keda: %.1f MiB (+ ~2 MiB base: image ~%.1f MiB, target 15 MB), %.1f MiB compressed",
		float64(len(vb))/(1<<20), float64(len(vb))/(1<<20)+2, float64(gz)/(1<<20))
	if len(vb) > binaryBudget {
		t.Errorf("redis-keda is %.1f MiB: with the ~2 MiB base the image exceeds 15 MB", float64(len(vb))/(1<<20))
	}

	// The links the image has pick the program by name: each answers a bad
	// setting with its own name and exit 1 (config is read before anything
	// touches Redis).
	for _, name := range []string{"jobs", "publisher"} {
		link := filepath.Join(out, name)
		if err := os.Symlink("redis-keda", link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link)
		cmd.Env = []string{"LEASE_DURATION=soon"}
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.HasPrefix(string(b), name+": invalid configuration") {
			t.Errorf("%s link: err %v, output %q; want exit 1 and a %s configuration error", name, err, b, name)
		}
	}
	cmd = exec.Command(bin)
	cmd.Env = []string{}
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "run as jobs or publisher") {
		t.Errorf("redis-keda without a program name: err %v, output %q; want usage", err, b)
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// splitFlags splits `-trimpath -ldflags "-s -w -X ..."` shell-style (double
// quotes only, which is all the Dockerfile uses).
func splitFlags(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, any := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQ, any = !inQ, true
		case (r == ' ' || r == '\t') && !inQ:
			if any {
				out = append(out, cur.String())
				cur.Reset()
				any = false
			}
		default:
			cur.WriteRune(r)
			any = true
		}
	}
	if any {
		out = append(out, cur.String())
	}
	return out
}
