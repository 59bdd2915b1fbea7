package scripts_test

// scripts/deps.sh (the one install step of `task test`, `task demo` and
// .ci/run), run as written with a hermetic PATH: STAND-INS for apt-get,
// sudo and id, plus links to the few system tools the script uses. The
// apt-get stand-in models the dpkg lock as apt does: without
// -o DPkg::Lock::Timeout it fails at once on a held lock with apt's message
// (that is the race of issue 14), with it it waits. Its `install` creates
// the commands the named packages provide in the PATH folder, so the
// script's re-check sees them.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const aptStandIn = `#!/bin/sh
# STAND-IN for apt-get (scripts/deps_test.go).
echo "apt-get $*" >>"$STUB_LOG"
timeout=
prev=
for a in "$@"; do
  [ "$prev" = -o ] && case $a in DPkg::Lock::Timeout=*) timeout=${a#*=} ;; esac
  prev=$a
done
exec 8>"$STUB_DPKG_LOCK"
if [ -n "$timeout" ]; then
  flock -w "$timeout" 8 || { echo "E: Could not get lock $STUB_DPKG_LOCK. It is held by process 4242 (apt-get)" >&2; exit 100; }
else
  flock -n 8 || { echo "E: Could not get lock $STUB_DPKG_LOCK. It is held by process 4242 (apt-get)" >&2; exit 100; }
fi
case " $* " in *" update "*) exit 0 ;; esac
if [ -n "$STUB_APT_FAIL" ]; then echo "$STUB_APT_FAIL" >&2; exit 100; fi
pkgs=
seen=
for a in "$@"; do
  case $a in
  install) seen=1 ;;
  -*) ;;
  *) [ -n "$seen" ] && pkgs="$pkgs $a" ;;
  esac
done
echo "install start:$pkgs" >>"$STUB_LOG"
mk() { for c in "$@"; do printf '#!/bin/sh\n' >"$STUB_BIN/$c"; chmod +x "$STUB_BIN/$c"; done; }
for p in $pkgs; do
  case $p in
  redis-server) mk redis-server ;;
  redis-tools) mk redis-cli redis-benchmark ;;
  prometheus) mk promtool ;;
  containerd) mk containerd containerd-shim-runc-v2 ctr ;;
  containernetworking-plugins) mkdir -p "$STUB_CNI" && for c in bridge host-local loopback; do printf '#!/bin/sh\n' >"$STUB_CNI/$c"; chmod +x "$STUB_CNI/$c"; done ;;
  iproute2) mk ip ;;
  util-linux) mk unshare nsenter ;;
  *) mk "$p" ;;
  esac
done
sleep "${STUB_APT_SECONDS:-0}"
echo "install end:$pkgs" >>"$STUB_LOG"
`

// The system tools deps.sh and the stand-ins run; nothing else is on PATH.
var systemTools = []string{"bash", "sh", "env", "flock", "grep", "sleep", "chmod", "mkdir"}

// Each group's commands, as the packages the stand-in installs provide them.
var groupCommands = map[string][]string{
	"redis":    {"redis-server", "redis-cli", "redis-benchmark"},
	"promtool": {"promtool"},
	"chromium": {"chromium"},
	"node":     {"containerd", "containerd-shim-runc-v2", "ctr", "runc", "buildah", "debootstrap", "iptables", "ip", "unshare", "nsenter"},
}

type depsBed struct {
	t                    *testing.T
	bin, log, lock, dpkg string
	cni, cgroup, script  string
	uid                  string
	extraEnv             []string
}

// newDepsBed makes a PATH folder with the stand-ins and the system tools,
// and the commands of the groups named in present (as if installed). The
// machine can run containers (root, a cgroup v1 memory controller) unless
// the test changes uid or cgroup.
func newDepsBed(t *testing.T, present ...string) *depsBed {
	t.Helper()
	dir := t.TempDir()
	b := &depsBed{t: t, bin: filepath.Join(dir, "bin"), log: filepath.Join(dir, "calls.log"), lock: filepath.Join(dir, "deps.lock"),
		dpkg: filepath.Join(dir, "dpkg.lock"), cni: filepath.Join(dir, "cni"), cgroup: filepath.Join(dir, "cgroup"), uid: "0"}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b.script = filepath.Join(root, "scripts", "deps.sh")
	for _, d := range []string{b.bin, filepath.Join(b.cgroup, "memory")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(b.cgroup, "memory", "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tool := range systemTools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s is needed to run deps.sh: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(b.bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	b.write("apt-get", aptStandIn)
	b.write("id", "#!/bin/sh\n# STAND-IN for id: only -u is asked\necho \"$STUB_UID\"\n")
	for _, g := range present {
		b.install(g)
	}
	if err := os.WriteFile(b.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *depsBed) write(name, text string) {
	b.t.Helper()
	if err := os.WriteFile(filepath.Join(b.bin, name), []byte(text), 0o755); err != nil {
		b.t.Fatal(err)
	}
}

// install puts a group's commands (and, for node, the CNI plugins) in place.
func (b *depsBed) install(group string) {
	b.t.Helper()
	for _, c := range groupCommands[group] {
		b.write(c, "#!/bin/sh\n")
	}
	if group == "node" {
		if err := os.MkdirAll(b.cni, 0o755); err != nil {
			b.t.Fatal(err)
		}
		for _, c := range []string{"bridge", "host-local", "loopback"} {
			if err := os.WriteFile(filepath.Join(b.cni, c), []byte("#!/bin/sh\n"), 0o755); err != nil {
				b.t.Fatal(err)
			}
		}
	}
}

func (b *depsBed) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(b.bin, "bash"), append([]string{b.script}, args...)...)
	cmd.Env = append([]string{"PATH=" + b.bin, "STUB_LOG=" + b.log, "STUB_BIN=" + b.bin, "STUB_CNI=" + b.cni,
		"STUB_DPKG_LOCK=" + b.dpkg, "STUB_UID=" + b.uid, "DEPS_LOCK=" + b.lock, "DEPS_CNI_DIR=" + b.cni,
		"DEPS_CGROUP=" + b.cgroup, "DEPS_LOCK_TIMEOUT=120"}, b.extraEnv...)
	return cmd
}

// run runs deps.sh to the end: its stderr (stdout stays empty) and exit code.
func (b *depsBed) run(args ...string) (stderr string, code int) {
	b.t.Helper()
	cmd := b.cmd(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if out.Len() > 0 {
		b.t.Errorf("deps.sh wrote to stdout: %q", out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		b.t.Fatalf("run deps.sh: %v", err)
	}
	return errb.String(), code
}

func (b *depsBed) calls() []string {
	b.t.Helper()
	data, err := os.ReadFile(b.log)
	if err != nil {
		b.t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// holdLock takes an exclusive flock on path, as another process holding it
// would; release gives it up.
func holdLock(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once bool
	release = func() {
		if !once {
			once = true
			f.Close() // closing the only descriptor drops the lock
		}
	}
	t.Cleanup(release)
	return release
}

// started is a deps.sh running in the background whose stderr lines arrive
// on lines.
type started struct {
	cmd   *exec.Cmd
	lines chan string
	all   []string
}

func (b *depsBed) start(args ...string) *started {
	b.t.Helper()
	cmd := b.cmd(args...)
	pr, err := cmd.StderrPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	s := &started{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	b.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return s
}

// waitLine waits for a stderr line equal to want (no time bound: the test's
// own timeout ends a hang).
func (s *started) waitLine(t *testing.T, want string) {
	t.Helper()
	for line := range s.lines {
		s.all = append(s.all, line)
		if line == want {
			return
		}
	}
	t.Fatalf("deps.sh ended without printing %q; it printed:\n%s", want, strings.Join(s.all, "\n"))
}

// finish reads the rest of stderr and the exit code.
func (s *started) finish(t *testing.T) (stderr string, code int) {
	t.Helper()
	for line := range s.lines {
		s.all = append(s.all, line)
	}
	err := s.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("deps.sh: %v", err)
	}
	if exit != nil {
		code = exit.ExitCode()
	}
	return strings.Join(s.all, "\n") + "\n", code
}

func TestDepsNothingMissingRunsNoAptGet(t *testing.T) {
	b := newDepsBed(t, "redis", "promtool", "node")
	out, code := b.run("redis", "promtool", "node")
	if code != 0 || out != "deps: all present for: redis promtool node\n" {
		t.Errorf("exit %d, stderr %q", code, out)
	}
	if _, code := b.run("--check", "redis", "promtool", "node"); code != 0 {
		t.Errorf("--check with nothing missing: exit %d, want 0", code)
	}
	if c := b.calls(); c != nil {
		t.Errorf("apt-get was called: %q", c)
	}
}

func TestDepsInstallsEveryMissingPackageInOneAptGetRun(t *testing.T) {
	b := newDepsBed(t)
	if out, code := b.run("--check", "redis", "promtool", "node"); code != 1 || out != "" {
		t.Errorf("--check with packages missing: exit %d, stderr %q; want 1 and nothing", code, out)
	}
	out, code := b.run("redis", "promtool", "node")
	pkgs := "redis-server redis-tools prometheus containerd runc containernetworking-plugins buildah debootstrap iptables iproute2 util-linux"
	want := "deps: installing: " + pkgs + " (one apt-get run)\ndeps: installed: " + pkgs + "\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 0, stderr:\n%s", code, out, want)
	}
	wantCalls := []string{
		"apt-get -o DPkg::Lock::Timeout=120 update -qq",
		"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends " + pkgs,
		"install start: " + pkgs,
		"install end: " + pkgs,
	}
	if c := b.calls(); !slices.Equal(c, wantCalls) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(c, "\n"), strings.Join(wantCalls, "\n"))
	}
	// Only what is missing: a second run installs nothing.
	if out, code := b.run("redis", "promtool", "node"); code != 0 || out != "deps: all present for: redis promtool node\n" {
		t.Errorf("second run: exit %d, stderr %q", code, out)
	}
}

// The race of issue 14: `deps:redis` and `deps:node` ran at once and the
// second apt-get failed on the lock. Control arm: the apt-get stand-in, run
// the old way (no lock timeout) while the dpkg lock is held, fails with
// apt's message.
func TestDepsWaitsForTheDpkgLockInsteadOfFailing(t *testing.T) {
	b := newDepsBed(t, "promtool", "node")
	release := holdLock(t, b.dpkg) // another apt-get / dpkg at work

	old := exec.Command(filepath.Join(b.bin, "apt-get"), "install", "-y", "-qq", "redis-server", "redis-tools")
	old.Env = b.cmd().Env
	out, err := old.CombinedOutput()
	if wantMsg := "E: Could not get lock " + b.dpkg + ". It is held by process 4242 (apt-get)\n"; err == nil || string(out) != wantMsg {
		t.Fatalf("control: apt-get without a lock timeout while the lock is held: %v %q; want exit 100 and %q", err, out, wantMsg)
	}

	s := b.start("redis")
	s.waitLine(t, "deps: installing: redis-server redis-tools (one apt-get run)")
	// apt-get update is now waiting for the lock (its call is logged first).
	for !slices.Contains(b.calls(), "apt-get -o DPkg::Lock::Timeout=120 update -qq") {
		time.Sleep(20 * time.Millisecond)
	}
	if slices.ContainsFunc(b.calls(), func(c string) bool { return strings.HasPrefix(c, "install start") }) {
		t.Fatal("installed while the dpkg lock was held")
	}
	release()
	stderr, code := s.finish(t)
	want := "deps: installing: redis-server redis-tools (one apt-get run)\ndeps: installed: redis-server redis-tools\n"
	if code != 0 || stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 0, stderr:\n%s", code, stderr, want)
	}
}

// Two deps.sh at once, as `task demo` starting its install with `task test`
// in another terminal: the second waits for the first, then re-checks and
// installs only what is still missing; the two installs never overlap.
func TestDepsRunsOneInstallAtATime(t *testing.T) {
	b := newDepsBed(t, "promtool")
	b.extraEnv = []string{"STUB_APT_SECONDS=0.3"}
	release := holdLock(t, b.lock) // both must queue up behind this lock
	first := b.start("redis")
	second := b.start("redis", "node")
	first.waitLine(t, "deps: another install is running (lock "+b.lock+"); waiting for it")
	second.waitLine(t, "deps: another install is running (lock "+b.lock+"); waiting for it")
	if c := b.calls(); c != nil {
		t.Fatalf("apt-get ran while the lock was held: %q", c)
	}
	release()
	out1, code1 := first.finish(t)
	out2, code2 := second.finish(t)
	if code1 != 0 || code2 != 0 {
		t.Fatalf("exit codes %d, %d\n%s\n%s", code1, code2, out1, out2)
	}
	// The starts and ends alternate: one install at a time.
	var seq []string
	for _, c := range b.calls() {
		if strings.HasPrefix(c, "install ") {
			seq = append(seq, c)
		}
	}
	node := "containerd runc containernetworking-plugins buildah debootstrap iptables iproute2 util-linux"
	wantA := []string{"install start: redis-server redis-tools", "install end: redis-server redis-tools",
		"install start: " + node, "install end: " + node}
	wantB := []string{"install start: redis-server redis-tools " + node, "install end: redis-server redis-tools " + node}
	// Whichever got the lock first: redis alone then node only (the
	// second's re-check), or redis+node in one run then nothing left.
	switch {
	case slices.Equal(seq, wantA):
		if !strings.HasSuffix(out2, "deps: installed: "+node+"\n") {
			t.Errorf("second run (after the first installed redis) should install the node packages only:\n%s", out2)
		}
	case slices.Equal(seq, wantB):
		if !strings.HasSuffix(out1, "deps: all present for: redis (installed by the other run)\n") {
			t.Errorf("first run should find redis installed by the other run:\n%s", out1)
		}
	default:
		t.Errorf("installs:\n%s\nwant one at a time:\n%s\nor\n%s", strings.Join(seq, "\n"), strings.Join(wantA, "\n"), strings.Join(wantB, "\n"))
	}
}

func TestDepsFailedInstallStopsWithAptErrorAndTheCommand(t *testing.T) {
	b := newDepsBed(t, "redis", "promtool")
	b.install("node")
	if err := os.Remove(filepath.Join(b.bin, "buildah")); err != nil {
		t.Fatal(err)
	}
	b.extraEnv = []string{"STUB_APT_FAIL=E: Unable to locate package buildah"}
	out, code := b.run("redis", "node")
	want := "deps: installing: buildah (one apt-get run)\n" +
		"E: Unable to locate package buildah\n" +
		"deps: apt-get install failed (its error is above). Fix it, then run:\n" +
		"deps:   apt-get update && apt-get install -y --no-install-recommends buildah\n"
	if code != 1 || out != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", code, out, want)
	}
}

func TestDepsNodeOnlyWhereContainersCanRun(t *testing.T) {
	for _, tc := range []struct {
		name, uid string
		noCgroup  bool
		env       []string
		reason    string
	}{
		{name: "not root", uid: "1000", reason: "not root: kubelet, containerd and network namespaces need root"},
		{name: "no memory cgroup", uid: "0", noCgroup: true, reason: "no memory cgroup controller (neither cgroup v1 memory nor cgroup v2 with memory)"},
		{name: "forced", uid: "0", env: []string{"E2E_NODE=standin"}, reason: "E2E_NODE=standin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newDepsBed(t, "redis")
			b.uid, b.extraEnv = tc.uid, tc.env
			if tc.noCgroup {
				if err := os.RemoveAll(filepath.Join(b.cgroup, "memory")); err != nil {
					t.Fatal(err)
				}
			}
			out, code := b.run("redis", "node")
			want := fmt.Sprintf("deps: node: this machine cannot run containers (%s): the e2e suite and the demo use the node stand-in; its packages are not installed\n"+
				"deps: all present for: redis node\n", tc.reason)
			if code != 0 || out != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 0, stderr:\n%s", code, out, want)
			}
			if c := b.calls(); c != nil {
				t.Errorf("apt-get was called: %q", c)
			}
		})
	}
}

func TestDepsNotRoot(t *testing.T) {
	t.Run("sudo", func(t *testing.T) {
		b := newDepsBed(t)
		b.uid = "1000"
		b.write("sudo", "#!/bin/sh\n# STAND-IN for sudo\necho \"sudo $*\" >>\"$STUB_LOG\"\nexec \"$@\"\n")
		out, code := b.run("promtool")
		if code != 0 || out != "deps: installing: prometheus (one apt-get run)\ndeps: installed: prometheus\n" {
			t.Errorf("exit %d, stderr %q", code, out)
		}
		want := []string{
			"sudo apt-get -o DPkg::Lock::Timeout=120 update -qq",
			"apt-get -o DPkg::Lock::Timeout=120 update -qq",
			"sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends prometheus",
			"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends prometheus",
			"install start: prometheus", "install end: prometheus",
		}
		if c := b.calls(); !slices.Equal(c, want) {
			t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(c, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("no sudo", func(t *testing.T) {
		b := newDepsBed(t)
		b.uid = "1000"
		out, code := b.run("promtool")
		want := "deps: missing: prometheus; not root and no sudo. Run as root:\n" +
			"deps:   apt-get update && apt-get install -y --no-install-recommends prometheus\n"
		if code != 1 || out != want {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", code, out, want)
		}
	})
}

func TestDepsRefusesUnknownGroups(t *testing.T) {
	b := newDepsBed(t)
	if out, code := b.run("redis", "docker"); code != 2 || out != "deps: unknown group \"docker\" (redis, promtool, chromium, node)\n" {
		t.Errorf("exit %d, stderr %q", code, out)
	}
}

// The browser tests' group: chromium, installed in the same one apt-get run
// as the others when missing, nothing when present.
func TestDepsChromium(t *testing.T) {
	b := newDepsBed(t, "redis")
	out, code := b.run("redis", "chromium")
	want := "deps: installing: chromium (one apt-get run)\ndeps: installed: chromium\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stderr %q; want 0, %q", code, out, want)
	}
	if out, code := b.run("chromium"); code != 0 || out != "deps: all present for: chromium\n" {
		t.Errorf("second run: exit %d, stderr %q", code, out)
	}
}
