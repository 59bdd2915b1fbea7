package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/internal/testbin"
	"github.com/redis-keda/redis-keda/queue"
)

// bin is the real redis-keda binary (cmd/redis-keda), built once: the tests
// run `redis-keda run -- sh -c …` as real processes, against a real
// redis-server.
var bin string

func TestMain(m *testing.M) { testbin.Main(m, "redis-keda", "../../cmd/redis-keda", &bin, "-race") }

type fixture struct {
	srv *redistest.Server
	q   *queue.Queue
	dir string // the programs' scratch directory ($OUT)
	env []string
}

const password = "s3cret-redis-password"

func newFixture(t *testing.T, maxAttempts int) *fixture {
	t.Helper()
	srv := redistest.Start(t, redistest.WithPassword(password))
	q, err := queue.New(srv.Client(), queue.Config{Name: "events", LeaseDuration: 10 * time.Second, MaxAttempts: maxAttempts,
		MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &fixture{srv: srv, q: q, dir: dir, env: []string{
		"PATH=" + os.Getenv("PATH"), "OUT=" + dir, "TMPDIR=" + dir,
		"REDIS_ADDR=" + srv.Addr, "REDIS_PASSWORD=" + password, "QUEUE=events",
		"MAX_ATTEMPTS=" + strconv.Itoa(maxAttempts), "CLAIM_TIMEOUT=1s", "LEASE_DURATION=10s",
	}}
}

func (f *fixture) publish(t *testing.T, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := f.q.PublishRaw(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// proc is one running `redis-keda run`.
type proc struct {
	cmd    *exec.Cmd
	log    string // its stdout and stderr (a file: a daemon may hold them open)
	waited chan struct{}
}

func (f *fixture) start(t *testing.T, extraEnv []string, args ...string) *proc {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "runner-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.Env = append(slices.Clone(f.env), extraEnv...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	p := &proc{cmd: cmd, log: out.Name(), waited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.waited })
	return p
}

// sh runs script with sh -c through the runner.
func (f *fixture) sh(t *testing.T, script string, extraEnv ...string) *proc {
	return f.start(t, extraEnv, "--", "sh", "-c", script)
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// wait returns the exit code; the bound only turns a hang into a failure.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.waited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("redis-keda run did not exit; output:\n%s", p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// lines returns the runner's JSON log lines whose msg contains substr.
func (p *proc) lines(substr string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if msg, _ := m["msg"].(string); strings.Contains(msg, substr) {
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) stats(t *testing.T) queue.Stats {
	t.Helper()
	s, err := f.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) pending(t *testing.T) []string {
	t.Helper()
	l, err := f.srv.Client().LRange(context.Background(), "events", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) deadReasons(t *testing.T) []string {
	t.Helper()
	dls, err := f.q.DeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dls {
		out = append(out, d.Reason)
	}
	return out
}

// waitFile waits until path exists (a program's sign that it got there).
func waitFile(t *testing.T, p *proc, path string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-p.waited:
			t.Fatalf("runner exited before %s appeared; output:\n%s", path, p.output())
		default:
		}
		if time.Now().After(deadline) {
			ls, _ := exec.Command("ls", "-la", filepath.Dir(path)).CombinedOutput()
			t.Fatalf("%s never appeared; output:\n%s\n%s", path, p.output(), ls)
		}
	}
}

func counters(s queue.Stats) map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.Counters {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// Each verdict, with the exact reason and queue state.
func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		script      string
		env         []string
		maxAttempts int
		counters    map[string]int64
		dead        []string // exact dead-letter reasons
		retried     string   // exact reason of the "event retried" line
		delay       time.Duration
		snoozed     bool // scheduled without counting the attempt
	}{
		{name: "exit 0 acks", script: `cat >/dev/null; echo done`, maxAttempts: 5,
			counters: map[string]int64{"acked": 1}},
		{name: "exit 1 retries with the stderr tail", script: `echo "cannot reach the printer" >&2; exit 1`, maxAttempts: 5,
			counters: map[string]int64{"retried": 1}, retried: "exit status 1: cannot reach the printer", delay: 15 * time.Second},
		{name: "retry-after in the verdict file", script: `echo "retry-after 90s" > "$REDIS_KEDA_VERDICT_FILE"; echo "429 from the API" >&2; exit 75`, maxAttempts: 5,
			counters: map[string]int64{"retried": 1}, retried: "retry after 1m30s: exit status 75: 429 from the API", delay: 90 * time.Second},
		{name: "snooze in the verdict file", script: `printf 'snooze 600\n' > "$REDIS_KEDA_VERDICT_FILE"; exit 75`, maxAttempts: 5,
			counters: map[string]int64{"snoozed": 1}, delay: 10 * time.Minute, snoozed: true},
		{name: "a bad verdict file is named in the reason", script: `echo "later please" > "$REDIS_KEDA_VERDICT_FILE"; exit 1`, maxAttempts: 5,
			counters: map[string]int64{"retried": 1}, delay: 15 * time.Second,
			retried: `exit status 1 (REDIS_KEDA_VERDICT_FILE ignored: "later please" is not "retry-after DURATION" or "snooze DURATION" (DURATION such as 30s, 10m or 90); retried by the schedule)`},
		{name: "exit 0 acks whatever the verdict file says", script: `echo "snooze 1h" > "$REDIS_KEDA_VERDICT_FILE"`, maxAttempts: 5,
			counters: map[string]int64{"acked": 1}},
		{name: "retry-after on the last attempt dead-letters", script: `echo "retry-after 1h" > "$REDIS_KEDA_VERDICT_FILE"; exit 1`, maxAttempts: 1,
			counters: map[string]int64{"dead": 1}, dead: []string{"failed on attempt 1 of 1 (MAX_ATTEMPTS): retry after 1h0m0s: exit status 1"}},
		{name: "exit 1 on the last attempt dead-letters", script: `echo "still broken" >&2; exit 1`, maxAttempts: 1,
			counters: map[string]int64{"dead": 1}, dead: []string{"failed on attempt 1 of 1 (MAX_ATTEMPTS): exit status 1: still broken"}},
		{name: "exit 65 dead-letters on the first attempt", script: `echo "not an order: {" >&2; exit 65`, maxAttempts: 5,
			counters: map[string]int64{"dead": 1}, dead: []string{"failed on attempt 1 of 5, not retried: exit status 65: not an order: {"}},
		{name: "RUN_SKIP_RETRY_CODE picks the code", script: `exit 3`, env: []string{"RUN_SKIP_RETRY_CODE=3"}, maxAttempts: 5,
			counters: map[string]int64{"dead": 1}, dead: []string{"failed on attempt 1 of 5, not retried: exit status 3"}},
		{name: "65 is an ordinary failure under another code", script: `exit 65`, env: []string{"RUN_SKIP_RETRY_CODE=3"}, maxAttempts: 5,
			counters: map[string]int64{"retried": 1}, retried: "exit status 65", delay: 15 * time.Second},
		{name: "death by signal retries", script: `echo "about to crash" >&2; kill -9 $$`, maxAttempts: 5,
			counters: map[string]int64{"retried": 1}, retried: "killed by signal SIGKILL (9): about to crash", delay: 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.maxAttempts)
			f.publish(t, `{"id":"order-1","item":"book"}`)
			start := f.srv.Client().Time(context.Background()).Val().UnixMilli()
			p := f.sh(t, tc.script, append([]string{"RETRY_JITTER=0"}, tc.env...)...)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, p.output())
			}
			end := f.srv.Client().Time(context.Background()).Val().UnixMilli()
			s := f.stats(t)
			if got := counters(s); !equalMaps(got, tc.counters) {
				t.Errorf("counters %v, want %v\n%s", got, tc.counters, p.output())
			}
			if got := f.deadReasons(t); !slices.Equal(got, tc.dead) {
				t.Errorf("dead reasons %q, want %q", got, tc.dead)
			}
			if tc.retried != "" {
				l := p.lines("event retried")
				if len(l) != 1 || l[0]["reason"] != tc.retried || l[0]["id"] != "order-1" {
					t.Errorf("retried lines %v, want reason %q\n%s", l, tc.retried, p.output())
				}
			}
			if got := f.pending(t); len(got) != 0 {
				t.Errorf("pending %q, want empty (a retry waits in the scheduled set)", got)
			}
			z := f.srv.Client().ZRangeWithScores(context.Background(), "{events}:scheduled", 0, -1).Val()
			if tc.delay == 0 {
				if len(z) != 0 {
					t.Errorf("scheduled %v, want empty", z)
				}
				return
			}
			want := `rkq1 {"attempts":1}` + "\n" + `{"id":"order-1","item":"book"}`
			if tc.snoozed {
				want = `{"id":"order-1","item":"book"}` // not counted: the entry as it came
			}
			if len(z) != 1 || !strings.HasSuffix(z[0].Member.(string), " "+want) {
				t.Fatalf("scheduled %v, want <nonce> %q", z, want)
			}
			// Due at the server's time of the nack + delay: between the
			// program's start (after publish) and the runner's exit.
			if due, d := int64(z[0].Score), tc.delay.Milliseconds(); due < start+d || due > end+d {
				t.Errorf("due %d, want %s after the nack, in [%d, %d]", due, tc.delay, start+d, end+d)
			}
		})
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The payload reaches the program byte for byte on stdin and in the file,
// whatever it is; a program that never reads stdin does not block the runner.
func TestPayloadByteForByte(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16) // exactly MAX_PAYLOAD_BYTES
	for _, tc := range []struct {
		name    string
		payload []byte
		script  string
		check   bool
	}{
		{"JSON without wait", []byte(`{"image":"s3://bucket/cat.png"}`), `cat > "$OUT/stdin"; cp "$REDIS_KEDA_PAYLOAD_FILE" "$OUT/file"`, true},
		{"binary with NUL and invalid UTF-8", []byte("\x00\xff\xfe rkq0 \x00\n\xc3\x28 end\x00"), `cat > "$OUT/stdin"; cp "$REDIS_KEDA_PAYLOAD_FILE" "$OUT/file"`, true},
		{"1 MiB", big, `cat > "$OUT/stdin"; cp "$REDIS_KEDA_PAYLOAD_FILE" "$OUT/file"`, true},
		{"1 MiB to a program that never reads stdin", big, `sleep 0.2; exit 0`, false},
		{"1 MiB to a program that exits at once", big, `exit 0`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 5)
			if err := f.q.PublishRaw(context.Background(), tc.payload); err != nil {
				t.Fatal(err)
			}
			p := f.sh(t, tc.script)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, p.output())
			}
			if got := counters(f.stats(t)); !equalMaps(got, map[string]int64{"acked": 1}) {
				t.Fatalf("counters %v, want acked 1\n%s", got, p.output())
			}
			if !tc.check {
				return
			}
			for _, name := range []string{"stdin", "file"} {
				got, err := os.ReadFile(filepath.Join(f.dir, name))
				if err != nil || !bytes.Equal(got, tc.payload) {
					t.Errorf("%s: %d bytes (err %v), want the %d bytes published", name, len(got), err, len(tc.payload))
				}
			}
			// The payload file is removed once the event is finished.
			if m, _ := filepath.Glob(filepath.Join(f.dir, "event-*")); len(m) != 0 {
				t.Errorf("payload files left: %v", m)
			}
		})
	}
}

// The program's environment: the runner's minus every REDIS_* variable and
// every credential-looking name (unless RUN_ENV_KEEP names it), plus the
// event's variables. Exact.
func TestEnvironmentWithoutSecrets(t *testing.T) {
	f := newFixture(t, 5)
	f.publish(t, `{"id":"evt-7","published_at":"2026-12-05T10:00:00Z","wait":1}`)
	p := f.sh(t, `cat /proc/$$/environ > "$OUT/env"`,
		"REDIS_DB=0", "REDIS_URL=redis://app:url-pw@host:6379",
		"GITHUB_TOKEN=ghp_x", "AWS_SECRET_ACCESS_KEY=aws-x", "DB_PASSWORD=db-pw", "MY_API_KEY=k", "db_passwd=lower",
		"RUN_ENV_KEEP=DB_PASSWORD", "LANG=C.UTF-8", "REDIS_KEDA_EVENT_ID=spoofed")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.output())
	}
	raw, err := os.ReadFile(filepath.Join(f.dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	var file string
	for _, kv := range got {
		if v, ok := strings.CutPrefix(kv, "REDIS_KEDA_PAYLOAD_FILE="); ok {
			file = v
		}
	}
	if !strings.HasPrefix(file, filepath.Join(f.dir, "event-")) {
		t.Fatalf("payload file %q is not in TMPDIR %s", file, f.dir)
	}
	want := []string{
		"PATH=" + os.Getenv("PATH"), "OUT=" + f.dir, "TMPDIR=" + f.dir,
		"QUEUE=events", "MAX_ATTEMPTS=5", "CLAIM_TIMEOUT=1s", "LEASE_DURATION=10s",
		"DB_PASSWORD=db-pw", "RUN_ENV_KEEP=DB_PASSWORD", "LANG=C.UTF-8",
		"REDIS_KEDA_EVENT_ID=evt-7", "REDIS_KEDA_ATTEMPT=1", "REDIS_KEDA_MAX_ATTEMPTS=5", "REDIS_KEDA_QUEUE=events",
		"REDIS_KEDA_PAYLOAD_FILE=" + file, "REDIS_KEDA_VERDICT_FILE=" + file + ".verdict", "REDIS_KEDA_PUBLISHED_AT=2026-12-05T10:00:00Z",
	}
	if !slices.Equal(got, want) {
		t.Errorf("environment\n got %q\nwant %q", got, want)
	}
	for _, secret := range []string{password, "url-pw", "ghp_x", "aws-x"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the program saw %q", secret)
		}
	}
}

// Past RUN_TIMEOUT the program's group gets SIGTERM, then SIGKILL after
// RUN_KILL_GRACE; the event is retried with the reason.
func TestTimeoutSendsTERMThenKILL(t *testing.T) {
	f := newFixture(t, 5)
	f.publish(t, `{"id":"slow-1"}`)
	p := f.sh(t, `trap 'echo "got TERM, ignoring it" >&2; touch "$OUT/term"' TERM; touch "$OUT/started"; while :; do sleep 0.1; done`,
		"RUN_TIMEOUT=6s", "RUN_KILL_GRACE=1s")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.output())
	}
	for _, name := range []string{"started", "term"} { // control arms: it ran, and it got the SIGTERM
		if _, err := os.Stat(filepath.Join(f.dir, name)); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, p.output())
		}
	}
	// sh may print "Terminated" for the sleep the SIGTERM killed first.
	l := p.lines("event retried")
	const prefix, suffix = "timed out after 6s (RUN_TIMEOUT), killed by signal SIGKILL (9): ", "got TERM, ignoring it"
	if r, _ := l[0]["reason"].(string); len(l) != 1 || !strings.HasPrefix(r, prefix) || !strings.HasSuffix(r, suffix) ||
		(r != prefix+suffix && r != prefix+"Terminated\n"+suffix) {
		t.Fatalf("retried lines %v, want reason %q\n%s", l, prefix+suffix, p.output())
	}
	if len(p.lines("outlived its grace after SIGTERM; SIGKILL")) != 1 {
		t.Errorf("no SIGKILL line\n%s", p.output())
	}
	if got := counters(f.stats(t)); !equalMaps(got, map[string]int64{"retried": 1}) {
		t.Errorf("counters %v", got)
	}
}

// SIGTERM to the runner reaches the program's process group: a program that
// then exits 0 has its event acked; one that fails has it released to the
// front, not counted.
func TestSIGTERMIsForwarded(t *testing.T) {
	const payload = `{"id":"long-1","frames":300}`
	for _, tc := range []struct {
		name     string
		onTerm   string
		counters map[string]int64
		pending  []string
		outcome  string
	}{
		{"program exits 0: acked", `exit 0`, map[string]int64{"acked": 1}, nil, "event acked"},
		{"program fails: released", `echo "interrupted at frame 17" >&2; exit 3`, map[string]int64{"released": 1}, []string{payload}, "shutting down; event requeued"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 5)
			f.publish(t, payload)
			p := f.sh(t, `trap '`+tc.onTerm+`' TERM; touch "$OUT/ready"; while :; do sleep 0.1; done`)
			waitFile(t, p, filepath.Join(f.dir, "ready"))
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, p.output())
			}
			if got := counters(f.stats(t)); !equalMaps(got, tc.counters) {
				t.Errorf("counters %v, want %v\n%s", got, tc.counters, p.output())
			}
			if got := f.pending(t); !slices.Equal(got, tc.pending) {
				t.Errorf("pending %q, want %q", got, tc.pending)
			}
			if len(p.lines(tc.outcome)) != 1 {
				t.Errorf("no %q line\n%s", tc.outcome, p.output())
			}
		})
	}
}

// A program that leaves a daemon holding stdout and stderr, and an orphan,
// does not keep the runner: the event is acked once the drain bound passed,
// the daemon in its group is killed, and the orphan — re-parented to the
// runner — is reaped, not left a zombie.
func TestDaemonsAndOrphansDoNotOutliveTheEvent(t *testing.T) {
	f := newFixture(t, 5)
	f.publish(t, `{"id":"forks"}`, `{"id":"holds"}`)
	// The program waits until its children are set up (else the group's
	// SIGKILL at its exit may catch them before setsid), then exits.
	script := `case "$REDIS_KEDA_EVENT_ID" in
forks)
  sleep 300 & echo $! > "$OUT/group-daemon.pid"
  setsid sh -c 'echo $$ > "$OUT/escaped-daemon.pid"; exec sleep 300' &
  parent=$$
  setsid sh -c 'echo $$ > "$OUT/orphan.pid"; while kill -0 '$parent' 2>/dev/null; do sleep 0.05; done; cut -d" " -f4 /proc/$$/stat > "$OUT/orphan.ppid.tmp"; mv "$OUT/orphan.ppid.tmp" "$OUT/orphan.ppid"' </dev/null >/dev/null 2>&1 &
  while [ ! -s "$OUT/orphan.pid" ] || [ ! -s "$OUT/escaped-daemon.pid" ]; do sleep 0.01; done
  echo forked;;
*) while [ ! -e "$OUT/go" ] && kill -0 $PPID 2>/dev/null; do sleep 0.05; done;;
esac`
	p := f.sh(t, script, "MAX_EVENTS=2", "RUN_DRAIN_TIMEOUT=1s")
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(f.dir, "escaped-daemon.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// The second event runs while we look at what the first left.
	waitFile(t, p, filepath.Join(f.dir, "orphan.ppid"))
	for f.stats(t).Counters["acked"] != 1 {
		time.Sleep(20 * time.Millisecond)
	}
	runner := p.cmd.Process.Pid
	if got := readInt(t, filepath.Join(f.dir, "orphan.ppid")); got != runner {
		t.Fatalf("the orphan's parent was %d, want the runner %d (child subreaper)", got, runner)
	}
	if len(p.lines("stderr is still held open after it exited")) != 1 { // control: the escaped daemon held it
		t.Errorf("no drain-bound line\n%s", p.output())
	}
	orphan := readInt(t, filepath.Join(f.dir, "orphan.pid"))
	groupDaemon := readInt(t, filepath.Join(f.dir, "group-daemon.pid"))
	for _, pid := range []int{orphan, groupDaemon} {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if errors.Is(err, os.ErrNotExist) {
				break // gone: killed and reaped
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d still there: %s", pid, st)
			}
		}
	}
	if z := zombiesOf(t, runner); len(z) != 0 {
		t.Errorf("zombie children of the runner: %v", z)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.output())
	}
	if got := counters(f.stats(t)); !equalMaps(got, map[string]int64{"acked": 2}) {
		t.Errorf("counters %v", got)
	}
	if !strings.Contains(p.output(), "forked\n") {
		t.Errorf("the program's stdout is not in the runner's\n%s", p.output())
	}
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(t *testing.T, pid int) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces: split after ')'.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(pid) {
			out = append(out, s)
		}
	}
	return out
}

// A missing or non-executable program is a deployment error: nothing is
// claimed (exit 3, naming it), or — when it only fails at exec — the event
// is released untouched, attempt not counted (exit 3).
func TestProgramNotRunnable(t *testing.T) {
	f := newFixture(t, 5)
	const payload = `{"id":"evt-1"}`
	notExec := filepath.Join(f.dir, "handler.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(f.dir, "bad-interpreter.sh")
	if err := os.WriteFile(badInterp, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv     []string
		msg      string
		counters map[string]int64
	}{
		{[]string{"no-such-program", "--flag"}, `cannot run "no-such-program": executable file not found in $PATH; check the command after --`, map[string]int64{}},
		{[]string{notExec}, `cannot run "` + notExec + `": permission denied; check the command after --`, map[string]int64{}},
		{[]string{badInterp}, `start "` + badInterp + `": fork/exec ` + badInterp + `: no such file or directory`, map[string]int64{"released": 1}},
	} {
		t.Run(filepath.Base(tc.argv[0]), func(t *testing.T) {
			f.srv.Client().FlushAll(context.Background())
			f.publish(t, payload)
			p := f.start(t, nil, append([]string{"--"}, tc.argv...)...)
			if code := p.wait(t); code != 3 {
				t.Fatalf("exit %d, want 3\n%s", code, p.output())
			}
			if !strings.Contains(strings.ReplaceAll(p.output(), `\"`, `"`), tc.msg) {
				t.Errorf("output lacks %q:\n%s", tc.msg, p.output())
			}
			if got := counters(f.stats(t)); !equalMaps(got, tc.counters) {
				t.Errorf("counters %v, want %v", got, tc.counters)
			}
			if got := f.pending(t); !slices.Equal(got, []string{payload}) {
				t.Errorf("pending %q, want the event untouched", got)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t, 5)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "no command to run: give it after --"},
		{[]string{"--timeout", "soon", "--", "true"}, `invalid value "soon" for flag -timeout`},
		{[]string{"--skip-retry-code", "0", "--", "true"}, "RUN_SKIP_RETRY_CODE=0 must be an exit code from 1 to 255"},
	} {
		p := f.start(t, nil, tc.args...)
		if code := p.wait(t); code != 2 || !strings.Contains(strings.ReplaceAll(p.output(), `\"`, `"`), tc.msg) {
			t.Errorf("run %q: exit %d, want 2 and %q\n%s", tc.args, code, tc.msg, p.output())
		}
	}
}
