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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/internal/testbin"
	"github.com/redis-keda/redis-keda/queue"
)

// jobsBin is the real jobs binary, built once for these tests.
var jobsBin string

func TestMain(m *testing.M) { testbin.Main(m, "jobs", ".", &jobsBin, "-race") }

type fixture struct {
	srv *redistest.Server
	q   *queue.Queue
	env []string
	bin string // the jobs binary to run; "" = jobsBin
}

func newFixture(t *testing.T, lease time.Duration, opts ...redistest.Option) *fixture {
	t.Helper()
	srv := redistest.Start(t, append(opts, redistest.WithPassword("s3cret"))...)
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
	bin := f.bin
	if bin == "" {
		bin = jobsBin
	}
	cmd := exec.Command(bin)
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
	// Exited long before its one-minute event could end: the signal
	// stopped it. (No tighter bound: a loaded machine can be slow.)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.out.String())
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
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

// SIGTERM while the job waits for an event: an event that arrives in that
// window is put back at the front of the queue, unchanged, and logged.
func TestSIGTERMDuringClaimPutsTheEventBack(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	ctx := context.Background()
	const raw = `{"id":"just-in-time","wait":1}`
	for try := 0; ; try++ {
		p := f.start(t, "CLAIM_TIMEOUT=30s", "SHUTDOWN_TIMEOUT=3s")
		f.waitFor(t, "the job to wait for an event", func(s queue.Stats) bool { return s.Claiming == 1 })
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := f.q.PublishRaw(ctx, []byte(raw)); err != nil { // lands while BRPOPLPUSH still blocks
			t.Fatal(err)
		}
		// Exited before CLAIM_TIMEOUT (30s) could end the claim: the signal
		// stopped it. (No tighter bound: a loaded machine can be slow.)
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, p.out.String())
		}
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
		back := p.lines(t, "claimed event put back at the front")
		if len(back) == 0 && try < 3 && len(p.lines(t, "nothing claimed"))+len(p.lines(t, "shutting down; event requeued")) == 1 {
			// The 1 s wait slice ended between the signal and the push
			// (nothing claimed, the event is simply pending), or the signal
			// reached the job only after its claim had leased the event (a
			// loaded machine; Work released it). Not the path under test:
			// take the event away and try again.
			d, err := f.q.Claim(ctx, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.q.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if len(back) != 1 || back[0]["size"] != float64(len(raw)) || back[0]["outcome"] != "released" {
			t.Fatalf("want one 'put back' line with size %d; output:\n%s", len(raw), p.out.String())
		}
		break
	}
	s, _ := f.q.Stats(ctx)
	if s.Pending != 1 || s.Processing != 0 || s.Claiming != 0 {
		t.Fatalf("stats %+v, want the event pending and no claim left", s)
	}
	d, err := f.q.Claim(ctx, time.Second)
	if err != nil || string(d.Payload()) != raw || d.Attempt != 1 {
		t.Fatalf("reclaim = %+v, %v; want the same bytes, attempt 1", d, err)
	}
}

// Redis goes away right after the job claimed its event and stays away
// longer than SHUTDOWN_TIMEOUT: the job keeps retrying the ack for
// REDIS_RETRY_TIMEOUT, acks once Redis is back, and exits 0.
func TestAckSurvivesARedisOutage(t *testing.T) {
	f := newFixture(t, 3*time.Second, redistest.WithAOF())
	ctx := context.Background()
	if _, err := f.q.Publish(ctx, queue.Event{ID: "through-the-outage", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	p := f.start(t, "SHUTDOWN_TIMEOUT=2s", "REDIS_RETRY_TIMEOUT=30s")
	f.waitFor(t, "the claim", func(s queue.Stats) bool { return s.Processing == 1 })
	f.srv.Stop()
	time.Sleep(6 * time.Second)
	f.srv.StartAgain()
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	if len(p.lines(t, "finishing the event failed; retrying")) == 0 || len(p.lines(t, "event acked")) != 1 {
		t.Fatalf("want retries then one ack; output:\n%s", p.out.String())
	}
	s, _ := f.q.Stats(ctx)
	if !empty(s) || s.Counters["acked"] != 1 {
		t.Errorf("stats %+v, want empty and acked once", s)
	}
}

// A 16 MiB payload (above MAX_PAYLOAD_BYTES) is dead-lettered on its first
// delivery, byte for byte, and the job exits 0: no crash loop.
func TestOversizePayloadIsDeadLetteredOnce(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	ctx := context.Background()
	big := bytes.Repeat([]byte(`{"wait":1,"pad":"`), 1)
	big = append(big, bytes.Repeat([]byte("x"), 16<<20)...)
	big = append(big, `"}`...)
	if err := f.srv.Client().LPush(ctx, "events", big).Err(); err != nil {
		t.Fatal(err)
	}
	p := f.start(t)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	lines := p.lines(t, "invalid event dead-lettered")
	if len(lines) != 1 || !strings.HasPrefix(lines[0]["reason"].(string), fmt.Sprintf("payload too large: %d bytes, above MAX_PAYLOAD_BYTES (1048576)", len(big))) {
		t.Fatalf("output:\n%s", p.out.String())
	}
	dls, err := f.q.DeadLetters(ctx, 1)
	if err != nil || !bytes.Equal(dls[0].Payload, big) {
		t.Fatalf("dead letter keeps %d bytes (want %d), %v", len(dls[0].Payload), len(big), err)
	}
	t.Logf("peak RSS of the (race-instrumented) job: %d MiB for a %d MiB payload", p.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss>>10, len(big)>>20)
}

// Chaos: 500 events, real jobs processes (one event each, as KEDA starts
// them) of which at least 20% are SIGKILLed at random instants — before the
// claim, between BRPOPLPUSH and the lease, mid-event, around the ack — a
// reaper running as the publisher runs it, and Redis (AOF) SIGKILLed and
// restarted in the middle. Nothing is lost; duplicates stay within the kills.
func TestChaosKilledJobsAndARedisRestartLoseNothing(t *testing.T) {
	f := newFixture(t, time.Second, redistest.WithAOF())
	ctx := context.Background()
	const events = 500
	evs := make([]queue.Event, events)
	for i := range evs {
		evs[i] = queue.Event{ID: fmt.Sprintf("e%03d", i), Wait: 20 * time.Millisecond}
	}
	for i := 0; i < events; i += 100 {
		if _, err := f.q.Publish(ctx, evs[i:i+100]...); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { // the reaper
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := f.q.Reap(ctx); err != nil {
				t.Logf("reap (retried next tick): %v", err)
			}
		}
	})
	var restarted atomic.Bool
	bg.Go(func() { // Redis dies once, half-way
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if s, err := f.q.Stats(ctx); err == nil && s.Counters["acked"] >= events/2 {
				f.srv.Restart()
				restarted.Store(true)
				return
			}
		}
	})

	var (
		mu           sync.Mutex
		all          []*proc
		runs, killed int
	)
	// Runners start jobs while anything is pending or in flight; then the
	// reaper clears the registrations of killed waiters (and returns what a
	// job killed mid-claim held, which sends the runners back to work).
	busy := func() bool {
		s, err := f.q.Stats(ctx)
		return err != nil || s.Pending+s.Processing > 0
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var runners sync.WaitGroup
		for r := range 6 {
			runners.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), uint64(runs)))
				for busy() && time.Now().Before(deadline) {
					p := f.start(t, "MAX_EVENTS=1", "CLAIM_TIMEOUT=1s", "REDIS_RETRY_TIMEOUT=30s")
					kill := rng.IntN(4) == 0
					if kill {
						time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
						_ = p.cmd.Process.Signal(syscall.SIGKILL)
					}
					<-p.waited
					mu.Lock()
					all = append(all, p)
					runs++
					if kill && p.cmd.ProcessState.ExitCode() == -1 {
						killed++
					}
					mu.Unlock()
				}
			})
		}
		runners.Wait()
		settle := time.Now().Add(5 * time.Second)
		for time.Now().Before(settle) && !busy() {
			if s, err := f.q.Stats(ctx); err == nil && empty(s) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if s, err := f.q.Stats(ctx); err == nil && empty(s) {
			break
		}
	}
	close(stop)
	bg.Wait()

	s, err := f.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !empty(s) {
		t.Fatalf("not drained within the time limit: %+v", s)
	}
	if !restarted.Load() {
		t.Error("Redis was never restarted; the test proves nothing about restarts")
	}
	// An event leaves Redis only by ack or dead letter: empty and no dead
	// letter means every event was acked at least once.
	logged := map[string]int{}
	for _, p := range all {
		for _, l := range p.lines(t, "event acked") {
			logged[l["id"].(string)]++
		}
	}
	acks := int(s.Counters["acked"])
	dups := acks - events
	unlogged := acks - sum(logged) // acked, then SIGKILLed before the log line
	missing := 0
	for _, ev := range evs {
		if logged[ev.ID] == 0 {
			missing++
		}
	}
	if missing > unlogged {
		t.Errorf("%d events have no ack in any log, but only %d acks went unlogged", missing, unlogged)
	}
	if dups < 0 || dups > killed {
		t.Errorf("%d duplicate acks for %d kills", dups, killed)
	}
	if float64(killed) < 0.2*float64(runs) {
		t.Errorf("only %d of %d job runs were killed; want at least 20%%", killed, runs)
	}
	t.Logf("%d events, %d job runs, %d SIGKILLed (%.0f%%), 1 Redis restart: 0 lost, %d processed twice, counters %v",
		events, runs, killed, 100*float64(killed)/float64(runs), dups, s.Counters)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
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
