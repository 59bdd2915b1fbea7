package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
)

// jobsBin is the real jobs binary, built once for these tests.
var jobsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jobs-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jobsBin = filepath.Join(dir, "jobs")
	if out, err := exec.Command("go", "build", "-race", "-o", jobsBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build jobs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	srv *redistest.Server
	q   *queue.Queue
	env []string
}

func newFixture(t *testing.T, lease time.Duration) *fixture {
	t.Helper()
	srv := redistest.Start(t, redistest.WithPassword("s3cret"))
	cfg := queue.Config{Name: "events", LeaseDuration: lease, MaxAttempts: 50, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
	q, err := queue.New(srv.Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, q: q, env: []string{
		"REDIS_ADDR=" + srv.Addr, "REDIS_PASSWORD=s3cret", "QUEUE=events",
		"LEASE_DURATION=" + lease.String(), "MAX_ATTEMPTS=50", "CLAIM_TIMEOUT=1s",
	}}
}

// proc is one running jobs process.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	waited chan struct{}
	err    error
}

func (f *fixture) start(t *testing.T, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(jobsBin)
	cmd.Env = append(append(os.Environ(), f.env...), extraEnv...)
	p := &proc{cmd: cmd, out: &syncBuffer{}, waited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.waited })
	return p
}

func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.waited:
	case <-time.After(within):
		t.Fatalf("jobs did not exit within %v; output:\n%s", within, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// lines returns the JSON log lines whose msg contains substr.
func (p *proc) lines(t *testing.T, substr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
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

func (f *fixture) waitFor(t *testing.T, what string, cond func(queue.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := f.q.Stats(context.Background())
		if err == nil && cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v, err %v", what, s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcessesOneEventAndExits(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	if err := f.q.PublishRaw(context.Background(), []byte(`{"wait": 1}`)); err != nil { // the PoC's format
		t.Fatal(err)
	}
	p := f.start(t)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	acked := p.lines(t, "event acked")
	if len(acked) != 1 {
		t.Fatalf("want one 'event acked' line, output:\n%s", p.out.String())
	}
	l := acked[0]
	if l["wait"] != 1.0 || l["attempt"] != 1.0 || l["id"] == "" || l["id_assigned"] != true || l["duration"] == nil {
		t.Errorf("outcome line lacks id/wait/attempt/duration: %v", l)
	}
	if strings.Contains(p.out.String(), "s3cret") {
		t.Error("the password appears in the output")
	}
	f.waitFor(t, "empty queue", empty)
}

func TestNothingToClaimExitsZero(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	start := time.Now()
	p := f.start(t)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("exited after %v, before CLAIM_TIMEOUT", el)
	}
	if len(p.lines(t, "no event to claim")) != 1 {
		t.Errorf("output:\n%s", p.out.String())
	}
}

func TestInvalidPayloadIsDeadLetteredAndExitsZero(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	if err := f.q.PublishRaw(context.Background(), []byte(`{"wait": "soon"}`)); err != nil {
		t.Fatal(err)
	}
	p := f.start(t)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	lines := p.lines(t, "invalid event dead-lettered")
	if len(lines) != 1 || !strings.Contains(lines[0]["reason"].(string), `"wait"`) || lines[0]["payload"] != `{"wait": "soon"}` {
		t.Fatalf("want a clear error line with reason and payload; output:\n%s", p.out.String())
	}
	dls, err := f.q.DeadLetters(context.Background(), 10)
	if err != nil || len(dls) != 1 || string(dls[0].Payload) != `{"wait": "soon"}` {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
}

func TestSIGTERMRequeuesTheEvent(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	ctx := context.Background()
	if _, err := f.q.Publish(ctx, queue.Event{ID: "long", Wait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	p := f.start(t)
	f.waitFor(t, "the claim", func(s queue.Stats) bool { return s.Processing == 1 && s.OldestInFlight > 0 })
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.out.String())
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v to stop", el)
	}
	if len(p.lines(t, "event requeued")) != 1 {
		t.Errorf("output:\n%s", p.out.String())
	}
	s, _ := f.q.Stats(ctx)
	if s.Pending != 1 || s.Processing != 0 || s.Dead != 0 {
		t.Fatalf("stats after SIGTERM = %+v, want the event back in pending", s)
	}
	d, err := f.q.Claim(ctx, time.Second)
	if err != nil || d.Event.ID != "long" || d.Attempt != 1 {
		t.Fatalf("reclaim = %+v, %v; want id long, attempt 1 (a release is not an attempt)", d, err)
	}
}

func TestRedisUnreachableExitsNonZeroWithClearMessage(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	f.srv.Stop()
	start := time.Now()
	p := f.start(t, "REDIS_RETRY_TIMEOUT=2s")
	if code := p.wait(t, 20*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, p.out.String())
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("gave up after %v, before REDIS_RETRY_TIMEOUT", el)
	}
	out := p.out.String()
	if !strings.Contains(out, "unreachable for 2s") || !strings.Contains(out, "REDIS_ADDR") {
		t.Errorf("message does not say what is wrong and what to check:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("non-JSON log line: %s", line)
		}
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct{ env, want string }{
		{"LEASE_DURATION=thirty", `LEASE_DURATION="thirty" is not a duration`},
		{"MAX_EVENTS=0", "MAX_EVENTS=0 must be at least 1"},
		{"MAX_ATTEMPTS=many", `MAX_ATTEMPTS="many" is not a whole number`},
		{"REDIS_ADDR=localhost", `REDIS_ADDR="localhost" is not host:port`},
		{"REDIS_TLS=maybe", `REDIS_TLS="maybe" is not true or false`},
		{"QUEUE={}", "hash tag"},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			cmd := exec.Command(jobsBin)
			cmd.Env = append(os.Environ(), tc.env)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("err = %v, want exit 1; output %s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
		})
	}
}

// SIGKILL real jobs processes at random instants — before the claim,
// between BRPOPLPUSH and the lease, mid-sleep, around the ack — then let the
// reaper and fresh jobs drain the queue: every event is processed, none is
// left, none lost.
func TestKilledJobsLoseNothing(t *testing.T) {
	f := newFixture(t, time.Second)
	ctx := context.Background()
	var payloads [][]byte
	want := map[string]bool{}
	for i := range 10 {
		id := fmt.Sprintf("e%d", i)
		want[id] = true
		payloads = append(payloads, []byte(fmt.Sprintf(`{"id":%q,"wait":0.4}`, id)))
	}
	for range 5 { // identical id-less payloads: five distinct events
		payloads = append(payloads, []byte(`{"wait": 0.4}`))
	}
	if err := f.q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}

	// Phase 1: chaos. Each process is killed at a random instant.
	rng := rand.New(rand.NewPCG(42, 7))
	var all []*proc
	kills := 0
	for range 25 {
		p := f.start(t, "MAX_EVENTS=3")
		all = append(all, p)
		time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			kills++
		}
		<-p.waited
	}
	mid, _ := f.q.Stats(ctx)
	t.Logf("after %d kills: %+v", kills, mid)

	// Phase 2: the reaper (as the publisher runs it) plus fresh jobs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			if _, err := f.q.Reap(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := f.q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Pending == 0 && s.Processing == 0 && s.Claiming == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained: %+v", s)
		}
		p := f.start(t, "MAX_EVENTS=20")
		all = append(all, p)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("drain job exit %d\n%s", code, p.out.String())
		}
	}
	close(stop)
	wg.Wait()

	acked := map[string]int{}
	for _, p := range all {
		for _, l := range p.lines(t, "event acked") {
			acked[l["id"].(string)]++
		}
	}
	for id := range want {
		if acked[id] == 0 {
			t.Errorf("event %s never acked", id)
		}
	}
	if len(acked) != len(payloads) {
		t.Errorf("%d distinct events acked, want %d: %v", len(acked), len(payloads), acked)
	}
	dups := 0
	for _, n := range acked {
		dups += n - 1
	}
	s, _ := f.q.Stats(ctx)
	if !empty(s) {
		t.Errorf("leftovers: %+v", s)
	}
	if kills == 0 {
		t.Error("no process was killed; the test proves nothing")
	}
	t.Logf("%d events, %d SIGKILLs, %d processed twice (at-least-once), 0 lost", len(payloads), kills, dups)
}

// empty: nothing pending, in flight, being claimed or dead.
func empty(s queue.Stats) bool { return s.Pending+s.Processing+s.Claiming+s.Dead == 0 }

// syncBuffer is a bytes.Buffer safe for a process's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
