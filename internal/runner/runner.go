// Package runner is `redis-keda run [flags] -- CMD [ARGS…]`: a handler of
// the worker package that runs the user's program once per event, in any
// image, like Tekton's entrypoint and Argo's emissary wrap a step's command.
//
// For each event CMD gets the payload byte for byte on its stdin and in a
// file (REDIS_KEDA_PAYLOAD_FILE), the event's id, attempt, max attempts,
// queue and published_at in its environment, and the runner's environment
// minus its secrets (childEnv). CMD runs in a process group of its own; its
// stdout is the runner's, its stderr is copied to the runner's and the last
// StderrTail bytes are kept for the failure reason. Verdicts:
//
//	exit 0                       ack
//	exit RUN_SKIP_RETRY_CODE (65) dead-lettered now (worker.SkipRetry)
//	other exit, death by signal  retried after the retry schedule's delay: "exit status N: <stderr tail>";
//	                             a non-zero exit with REDIS_KEDA_VERDICT_FILE written "retry-after D":
//	                             retried after D (counted); "snooze D": run again after D (not counted)
//	RUN_TIMEOUT passed           SIGTERM to the group, SIGKILL after RUN_KILL_GRACE; retried: "timed out after …"
//	runner got SIGTERM           SIGTERM to the group, SIGKILL after half of SHUTDOWN_TIMEOUT;
//	                             exit 0 → ack, else released (front, not counted)
//	CMD missing / not executable nothing claimed (checked first), or the event released; exit code 3
//
// When CMD exits, what is left of its process group is killed, and its
// stderr is drained for at most RUN_DRAIN_TIMEOUT (a daemon holding it open
// cannot keep the Job running). The runner reaps every child it inherits
// (PID 1 in a container, a child subreaper elsewhere), as tini does.
package runner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis-keda/redis-keda/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Exit codes of `redis-keda run` (besides worker's 0 and 1).
const (
	ExitUsage      = 2                     // no CMD, or a bad flag: nothing claimed
	ExitNotStarted = worker.ExitNotStarted // CMD not found or not executable: nothing claimed, or the event released
)

// StderrTail is how much of CMD's stderr (the end) a failure reason keeps.
const StderrTail = 4096

// Variables CMD finds in its environment.
const (
	EnvEventID     = "REDIS_KEDA_EVENT_ID"     // the event's id
	EnvAttempt     = "REDIS_KEDA_ATTEMPT"      // this delivery's number, 1 the first time
	EnvMaxAttempts = "REDIS_KEDA_MAX_ATTEMPTS" // MAX_ATTEMPTS
	EnvQueue       = "REDIS_KEDA_QUEUE"        // QUEUE
	EnvPublishedAt = "REDIS_KEDA_PUBLISHED_AT" // the payload's published_at (RFC 3339), only when present
	EnvPayloadFile = "REDIS_KEDA_PAYLOAD_FILE" // a file holding the payload (also on stdin)
	// EnvVerdictFile names a file (not there at the start) where CMD may
	// write, before exiting non-zero, "retry-after D" (retry after D, the
	// attempt counted) or "snooze D" (run again after D, not counted); D is
	// a duration such as 30s or 10m, or a number of seconds.
	EnvVerdictFile = "REDIS_KEDA_VERDICT_FILE"
)

// Config is the runner's configuration: the worker's plus the RUN_*
// variables (each also a flag of `redis-keda run`, which wins).
type Config struct {
	Worker worker.Config

	// Timeout is the per-event time limit.
	Timeout time.Duration `env:"RUN_TIMEOUT" envDefault:"1h"`
	// KillGrace is how long CMD's process group has between SIGTERM and
	// SIGKILL when the time limit runs out.
	KillGrace time.Duration `env:"RUN_KILL_GRACE" envDefault:"10s"`
	// SkipRetryCode is the exit code that dead-letters the event at once
	// (65 = EX_DATAERR of sysexits.h: the input data was incorrect).
	SkipRetryCode int `env:"RUN_SKIP_RETRY_CODE" envDefault:"65"`
	// PayloadDir is where the payload file is written ("" = $TMPDIR, or
	// /tmp); an emptyDir in Kubernetes.
	PayloadDir string `env:"RUN_PAYLOAD_DIR"`
	// DrainTimeout bounds reading CMD's stderr after it exited (a daemon
	// it left may hold the pipe open).
	DrainTimeout time.Duration `env:"RUN_DRAIN_TIMEOUT" envDefault:"2s"`
	// EnvKeep names variables CMD gets although their name looks like a
	// credential (childEnv); REDIS_* never passes.
	EnvKeep []string `env:"RUN_ENV_KEEP" envSeparator:","`
}

// Validate reports the first unusable setting, naming its variable.
func (c *Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return errors.New("RUN_TIMEOUT must be positive, such as 1h")
	case c.KillGrace <= 0:
		return errors.New("RUN_KILL_GRACE must be positive, such as 10s")
	case c.SkipRetryCode < 1 || c.SkipRetryCode > 255:
		return fmt.Errorf("RUN_SKIP_RETRY_CODE=%d must be an exit code from 1 to 255, such as 65", c.SkipRetryCode)
	case c.DrainTimeout <= 0:
		return errors.New("RUN_DRAIN_TIMEOUT must be positive, such as 2s")
	}
	return nil
}

// Level is the configured log level.
func (c *Config) Level() zapcore.Level { return c.Worker.LogLevel }

// exitError carries the process's exit code with the error (service.Main).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// Usage is `redis-keda run`'s help.
const Usage = `usage: redis-keda run [flags] -- CMD [ARGS...]

Claims one event (MAX_EVENTS), runs CMD with the payload on stdin and in
$REDIS_KEDA_PAYLOAD_FILE, and finishes the event by CMD's exit: 0 = ack,
RUN_SKIP_RETRY_CODE (65) = dead-letter now, anything else = retry.

Flags (each overrides its environment variable):
`

// FlagHelp lists the flags with their defaults.
func FlagHelp() string {
	var c Config
	c.Timeout, c.KillGrace, c.SkipRetryCode, c.DrainTimeout = time.Hour, 10*time.Second, 65, 2*time.Second
	fs := flagSet(&c)
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "per-event time limit (RUN_TIMEOUT)")
	fs.DurationVar(&c.KillGrace, "kill-grace", c.KillGrace, "SIGTERM to SIGKILL on timeout (RUN_KILL_GRACE)")
	fs.IntVar(&c.SkipRetryCode, "skip-retry-code", c.SkipRetryCode, "exit code that dead-letters the event now (RUN_SKIP_RETRY_CODE)")
	fs.StringVar(&c.PayloadDir, "payload-dir", c.PayloadDir, "directory for the payload file (RUN_PAYLOAD_DIR; default $TMPDIR)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "bound on reading CMD's stderr after it exited (RUN_DRAIN_TIMEOUT)")
	return fs
}

// parseArgs applies the flags to c and returns CMD.
func parseArgs(args []string, c *Config) ([]string, error) {
	fs := flagSet(c)
	var help strings.Builder
	fs.SetOutput(&help)
	fs.Usage = func() { fmt.Fprint(&help, Usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return nil, &exitError{ExitUsage, fmt.Errorf("%w\n%s", err, help.String())}
	}
	if err := c.Validate(); err != nil {
		return nil, &exitError{ExitUsage, err}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return nil, &exitError{ExitUsage, fmt.Errorf("no command to run: give it after --, such as redis-keda run -- python3 /app/handle.py\n%s", help.String())}
	}
	return fs.Args(), nil
}

// Run is `redis-keda run`: parse the flags in args, check that CMD can be
// run (before claiming anything), become the reaper of orphaned children,
// and run the worker loop with CMD as its handler.
func Run(ctx context.Context, log *zap.Logger, c Config, args []string) error {
	argv, err := parseArgs(args, &c)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return &exitError{ExitNotStarted, fmt.Errorf("%w: cannot run %q: %w; check the command after -- (PATH=%s); nothing was claimed",
			worker.NotStarted, argv[0], errors.Unwrap(err), os.Getenv("PATH"))}
	}
	if c.PayloadDir == "" {
		c.PayloadDir = os.TempDir()
	}
	r, err := startReaper()
	if err != nil {
		return err
	}
	defer r.stop()
	s := &supervisor{
		cfg: c, argv: argv, path: path, log: log, reaper: r,
		env:   childEnv(os.Environ(), c.EnvKeep),
		grace: c.Worker.ShutdownTimeout / 2,
	}
	// SHUTDOWN_TIMEOUT covers both halves of a shutdown: CMD's grace after
	// the forwarded SIGTERM, then the release of the event.
	wc := c.Worker
	wc.ShutdownTimeout -= s.grace
	err = worker.Run(ctx, log, wc, s)
	if errors.Is(err, worker.NotStarted) {
		return &exitError{ExitNotStarted, err}
	}
	return err
}

// credentialWords mark a variable's name as a credential (childEnv).
var credentialWords = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "APIKEY", "ACCESS_KEY"}

// childEnv is the environment CMD inherits: environ without the runner's
// connection settings (every REDIS_* variable: REDIS_PASSWORD,
// REDIS_SENTINEL_PASSWORD, REDIS_USERNAME, a REDIS_ADDR URL with a password
// …) and without any variable whose name (upper-cased) contains a
// credential word — PASSWORD, PASSWD, SECRET, TOKEN, CREDENTIAL,
// PRIVATE_KEY, API_KEY, APIKEY, ACCESS_KEY — unless keep names it.
func childEnv(environ, keep []string) []string {
	out := make([]string, 0, len(environ)+6)
next:
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "REDIS_") {
			continue
		}
		for _, k := range keep {
			if name == strings.TrimSpace(k) {
				out = append(out, kv)
				continue next
			}
		}
		upper := strings.ToUpper(name)
		for _, w := range credentialWords {
			if strings.Contains(upper, w) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// supervisor is the worker.Handler that runs CMD for each job.
type supervisor struct {
	cfg    Config
	argv   []string
	path   string
	env    []string
	grace  time.Duration // CMD's time between the forwarded SIGTERM and SIGKILL on shutdown
	log    *zap.Logger
	reaper *reaper
}

// Handle runs CMD for one job and turns its end into a verdict.
func (s *supervisor) Handle(ctx context.Context, job *worker.Job) error {
	file, err := writePayload(s.cfg.PayloadDir, job.Payload)
	if err != nil {
		// The event is fine; the pod is not (no writable RUN_PAYLOAD_DIR).
		return fmt.Errorf("%w: %w", worker.NotStarted, err)
	}
	defer os.Remove(file)
	verdictFile := file + ".verdict"
	defer os.Remove(verdictFile)

	env := append(append(make([]string, 0, len(s.env)+7), s.env...),
		EnvEventID+"="+job.ID,
		EnvAttempt+"="+strconv.Itoa(job.Attempt),
		EnvMaxAttempts+"="+strconv.Itoa(job.MaxAttempts),
		EnvQueue+"="+job.Queue,
		EnvPayloadFile+"="+file,
		EnvVerdictFile+"="+verdictFile,
	)
	if !job.PublishedAt.IsZero() {
		env = append(env, EnvPublishedAt+"="+job.PublishedAt.UTC().Format(time.RFC3339Nano))
	}
	res, err := s.run(ctx, env, job.Payload)
	if err != nil {
		return fmt.Errorf("%w: %w", worker.NotStarted, err)
	}
	s.log.Debug("program ended", zap.String("id", job.ID), zap.Stringer("status", res))
	return s.verdict(ctx, res, verdictFile)
}

// writePayload puts the payload in a new file of dir, readable by the user
// only.
func writePayload(dir string, payload []byte) (string, error) {
	f, err := os.CreateTemp(dir, "event-*")
	if err != nil {
		return "", fmt.Errorf("write the payload file in %s (RUN_PAYLOAD_DIR; mount a writable emptyDir there): %w", dir, err)
	}
	_, werr := f.Write(payload)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("write the payload file %s: %w", f.Name(), werr)
	}
	return f.Name(), nil
}

// result is how CMD ended.
type result struct {
	status   syscall.WaitStatus
	tail     string // the end of its stderr
	timedOut bool   // RUN_TIMEOUT ran out
	stopped  bool   // the runner was shutting down
	oom      bool   // the cgroup's OOM-kill count rose while it ran
	elapsed  time.Duration
}

func (r result) String() string {
	if r.status.Signaled() {
		return "signal " + unix(r.status.Signal())
	}
	return "exit " + strconv.Itoa(r.status.ExitStatus())
}

// run starts CMD and supervises it to its end. The error is set only when
// CMD could not be started.
func (s *supervisor) run(ctx context.Context, env []string, payload []byte) (result, error) {
	var res result
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("stdin pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return res, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path: s.path, Args: s.argv, Env: env,
		Stdin: stdinR, Stdout: os.Stdout, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	oomBefore, oomKnown := oomKills()
	start := time.Now()
	exited, err := s.reaper.start(cmd)
	stdinR.Close() // the child's ends: CMD (and its children) hold them now
	errW.Close()
	if err != nil {
		stdinW.Close()
		errR.Close()
		return res, fmt.Errorf("start %q: %w", s.argv[0], err)
	}
	pgid := cmd.Process.Pid

	var wg sync.WaitGroup
	wg.Go(func() {
		// A CMD that never reads its stdin must not block the runner: the
		// write runs here and ends with CMD (EPIPE, or the close below).
		_, _ = stdinW.Write(payload)
		_ = stdinW.Close()
	})
	tail := &tailBuffer{max: StderrTail}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.MultiWriter(os.Stderr, tail), errR)
	}()

	limit := time.NewTimer(s.cfg.Timeout)
	defer limit.Stop()
	var st syscall.WaitStatus
	select {
	case st = <-exited:
	case <-limit.C:
		res.timedOut = true
		st = s.terminate(pgid, exited, s.cfg.KillGrace, "time limit (RUN_TIMEOUT) reached")
	case <-ctx.Done():
		res.stopped = true
		why := "shutting down"
		if errors.Is(context.Cause(ctx), queue.ErrCancelled) {
			why = "event cancelled by an operator" // Work dead-letters it
		}
		st = s.terminate(pgid, exited, s.grace, why)
	}
	res.status, res.elapsed = st, time.Since(start)
	// What CMD left behind in its group does not outlive the event.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = cmd.Process.Release()
	_ = stdinW.Close() // unblocks a write that a leftover reader never took
	drain := time.NewTimer(s.cfg.DrainTimeout)
	select {
	case <-drained:
	case <-drain.C:
		s.log.Warn("the program's stderr is still held open after it exited (a daemon outside its process group?); not waiting longer",
			zap.Duration("drain_timeout", s.cfg.DrainTimeout))
		_ = errR.Close()
		<-drained
	}
	drain.Stop()
	_ = errR.Close()
	wg.Wait()
	res.tail = tail.String()
	if oomKnown && st.Signaled() && st.Signal() == syscall.SIGKILL {
		if after, ok := oomKills(); ok && after > oomBefore {
			res.oom = true
		}
	}
	return res, nil
}

// terminate sends SIGTERM to CMD's process group, then SIGKILL after grace,
// and returns CMD's wait status.
func (s *supervisor) terminate(pgid int, exited <-chan syscall.WaitStatus, grace time.Duration, why string) syscall.WaitStatus {
	s.log.Info(why+"; SIGTERM to the program's process group", zap.Int("pgid", pgid), zap.Duration("grace", grace))
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case st := <-exited:
		return st
	case <-t.C:
	}
	s.log.Warn("the program outlived its grace after SIGTERM; SIGKILL to its process group", zap.Int("pgid", pgid), zap.Duration("grace", grace))
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-exited
}

// verdictError is a verdict whose text is the reason alone; Is matches its
// kind (worker.SkipRetry) when set.
type verdictError struct {
	reason string
	kind   error
}

func (e *verdictError) Error() string        { return e.reason }
func (e *verdictError) Is(target error) bool { return e.kind != nil && target == e.kind }

// verdict maps CMD's end to the worker's verdicts; verdictFile is what
// CMD may have written to REDIS_KEDA_VERDICT_FILE.
func (s *supervisor) verdict(ctx context.Context, r result, verdictFile string) error {
	how := r.String()
	if r.status.Exited() {
		how = "exit status " + strconv.Itoa(r.status.ExitStatus())
	} else if r.status.Signaled() {
		how = "killed by signal " + unix(r.status.Signal())
		if r.oom {
			how += " (out of memory: the container's memory limit was reached)"
		}
	}
	reason := how
	if r.tail != "" {
		reason += ": " + r.tail
	}
	switch {
	case r.timedOut:
		return &verdictError{reason: fmt.Sprintf("timed out after %s (RUN_TIMEOUT), %s", s.cfg.Timeout, reason)}
	case r.status.Exited() && r.status.ExitStatus() == 0:
		return nil // also on shutdown: the work got done
	case r.stopped || ctx.Err() != nil:
		return &verdictError{reason: "stopped by shutdown, " + reason} // released by Work
	case r.status.Exited() && r.status.ExitStatus() == s.cfg.SkipRetryCode:
		return &verdictError{reason: reason, kind: worker.SkipRetry}
	}
	kind, d, err := readVerdictFile(verdictFile)
	switch {
	case err != nil:
		return &verdictError{reason: reason + " (" + err.Error() + ")"}
	case kind == "retry-after":
		return worker.RetryAfter(d, &verdictError{reason: reason})
	case kind == "snooze":
		return worker.Snooze(d)
	default:
		return &verdictError{reason: reason}
	}
}

// maxVerdictFile bounds what is read of REDIS_KEDA_VERDICT_FILE.
const maxVerdictFile = 256

// readVerdictFile reads what CMD wrote to REDIS_KEDA_VERDICT_FILE: kind ""
// when it wrote nothing; "retry-after" or "snooze" with the delay; an error
// (for the reason, the event then retried by the schedule) saying what is
// wrong with the file.
func readVerdictFile(path string) (kind string, d time.Duration, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("%s ignored: %w", EnvVerdictFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVerdictFile+1))
	if err != nil {
		return "", 0, fmt.Errorf("%s ignored: %w", EnvVerdictFile, err)
	}
	text := strings.TrimSpace(string(b))
	bad := func() (string, time.Duration, error) {
		return "", 0, fmt.Errorf("%s ignored: %q is not \"retry-after DURATION\" or \"snooze DURATION\" (DURATION such as 30s, 10m or 90); retried by the schedule",
			EnvVerdictFile, truncate(text, 64))
	}
	f1, f2, ok := strings.Cut(text, " ")
	if len(b) > maxVerdictFile || !ok || (f1 != "retry-after" && f1 != "snooze") {
		return bad()
	}
	f2 = strings.TrimSpace(f2)
	if secs, perr := strconv.ParseFloat(f2, 64); perr == nil && secs >= 0 && secs < 1e9 {
		return f1, time.Duration(secs * float64(time.Second)), nil
	}
	if d, perr := time.ParseDuration(f2); perr == nil && d >= 0 {
		return f1, d, nil
	}
	return bad()
}

// truncate shortens s to n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// unix names a signal as kill -l does (KILL, TERM …), with its number.
func unix(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGILL: "ILL",
		syscall.SIGABRT: "ABRT", syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE", syscall.SIGKILL: "KILL",
		syscall.SIGSEGV: "SEGV", syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM",
		syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2",
	}
	if n, ok := names[sig]; ok {
		return fmt.Sprintf("SIG%s (%d)", n, int(sig))
	}
	return fmt.Sprintf("%d", int(sig))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	max   int
	total int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// String is the tail as valid UTF-8 without surrounding blank space, marked
// with "…" when earlier output was cut.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(string(t.buf), "\uFFFD")
	s = strings.TrimSpace(s)
	if t.total > len(t.buf) && s != "" {
		s = "…" + s
	}
	return s
}
