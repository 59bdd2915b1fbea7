package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
)

// These tests cut Redis off with a real partition (redistest.Partition: SYNs
// to its port dropped, idle connections closed by the server), not a refused
// port or a frozen server: a dial then times out, which go's net package
// reports as a context.DeadlineExceeded look-alike.

// waitLine waits until the job has logged a line whose msg contains substr
// and returns when it saw it.
func (p *proc) waitLine(t *testing.T, substr string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(p.lines(t, substr)) == 0 {
		select {
		case <-p.waited:
			t.Fatalf("jobs exited before logging %q; output:\n%s", substr, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line within %v; output:\n%s", substr, within, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// failedLine is the error of the job's final "jobs failed" line.
func (p *proc) failedLine(t *testing.T) string {
	t.Helper()
	l := p.lines(t, "jobs failed")
	if len(l) != 1 {
		t.Fatalf("want one 'jobs failed' line; output:\n%s", p.out.String())
	}
	s, _ := l[0]["error"].(string)
	return s
}

// (a) A job that starts during a 14 s partition keeps claiming (the outage
// is shorter than REDIS_RETRY_TIMEOUT), and once Redis answers it waits its
// whole CLAIM_TIMEOUT: the event pushed after the partition is acked.
func TestClaimThroughAPartition(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	heal := f.srv.Partition(t)
	cut := time.Now()
	p := f.start(t, "REDIS_RETRY_TIMEOUT=60s", "CLAIM_TIMEOUT=5s")
	p.waitLine(t, "redis unreachable while claiming; retrying", 30*time.Second) // control: the job did hit it
	time.Sleep(time.Until(cut.Add(14 * time.Second)))
	heal()
	healed := time.Now()
	if _, err := f.q.Publish(context.Background(), queue.Event{ID: "after-the-partition", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	back := p.waitLine(t, "redis answers again; waiting for an event", 60*time.Second)
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	acked := p.lines(t, "event acked")
	if len(acked) != 1 || acked[0]["id"] != "after-the-partition" || acked[0]["outcome"] != "acked" || acked[0]["attempt"] != 1.0 ||
		acked[0]["reply_lost"] != nil {
		t.Fatalf("want one 'event acked' line for after-the-partition, attempt 1; output:\n%s", p.out.String())
	}
	if n := len(p.lines(t, "no event to claim")); n != 0 {
		t.Fatalf("the job claims it waited for an event it could not wait for; output:\n%s", p.out.String())
	}
	s, _ := f.q.Stats(context.Background())
	if !empty(s) || s.Counters["acked"] != 1 {
		t.Errorf("stats %+v, want empty and acked once", s)
	}
	t.Logf("partition %.1fs; the job answered again %.1fs after the heal; exit %.1fs after the heal",
		healed.Sub(cut).Seconds(), back.Sub(healed).Seconds(), time.Since(healed).Seconds())
}

// (b) The work finishes during a partition shorter than REDIS_RETRY_TIMEOUT
// (and than the lease): the ack is retried until Redis answers, the event is
// acked once and never redelivered.
func TestAckThroughAPartition(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	if _, err := f.q.Publish(ctx, queue.Event{ID: "ack-through", Wait: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	p := f.start(t, "REDIS_RETRY_TIMEOUT=60s")
	f.waitFor(t, "the claim", func(s queue.Stats) bool { return s.Processing == 1 })
	heal := f.srv.Partition(t)
	cut := time.Now()
	p.waitLine(t, "finishing the event failed; retrying", 30*time.Second) // control: the ack hit the partition
	time.Sleep(time.Until(cut.Add(12 * time.Second)))
	heal()
	healed := time.Now()
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	acked := p.lines(t, "event acked")
	if len(acked) != 1 || acked[0]["id"] != "ack-through" || acked[0]["outcome"] != "acked" || acked[0]["reply_lost"] != nil {
		t.Fatalf("want one 'event acked' line; output:\n%s", p.out.String())
	}
	if r, err := f.q.Reap(ctx); err != nil || r.Requeued+r.Rescued+r.Dead != 0 {
		t.Fatalf("reap after the ack = %+v, %v: the event would be redelivered", r, err)
	}
	s, _ := f.q.Stats(ctx)
	if !empty(s) || s.Counters["acked"] != 1 {
		t.Errorf("stats %+v, want empty and acked once", s)
	}
	t.Logf("partition %.1fs during the ack; acked and exited %.1fs after the heal", healed.Sub(cut).Seconds(), time.Since(healed).Seconds())
}

// (c) A partition longer than REDIS_RETRY_TIMEOUT: exit 1 after retrying,
// with a message naming REDIS_ADDR.
func TestPartitionLongerThanRetryTimeoutExits1(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	f.srv.Partition(t)
	start := time.Now()
	p := f.start(t, "REDIS_RETRY_TIMEOUT=6s")
	if code := p.wait(t, 90*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, p.out.String())
	}
	gaveUp := time.Since(start)
	if len(p.lines(t, "redis unreachable while claiming; retrying")) != 1 {
		t.Fatalf("want one retry warning; output:\n%s", p.out.String())
	}
	if gaveUp < 6*time.Second {
		t.Errorf("gave up after %v, before REDIS_RETRY_TIMEOUT", gaveUp)
	}
	want := fmt.Sprintf(`redis at standalone %s db=0 user="" password=set tls=false unreachable for 6s (REDIS_RETRY_TIMEOUT); `+
		`check REDIS_ADDR and that Redis is up and reachable; TLS is off: if the server speaks only TLS, set REDIS_TLS=true: `+
		`register claim on events: dial tcp %s: i/o timeout`, f.srv.Addr, f.srv.Addr)
	if got := p.failedLine(t); got != want {
		t.Errorf("error\n got %s\nwant %s", got, want)
	}
	if strings.Contains(p.out.String(), "s3cret") {
		t.Error("the password appears in the output")
	}
	t.Logf("partition longer than REDIS_RETRY_TIMEOUT=6s: exit 1 after %.1fs", gaveUp.Seconds())
}

// (d) REDIS_TLS=true against a plaintext server is retried like any network
// failure, then the message names REDIS_ADDR and REDIS_TLS.
func TestTLSAgainstPlaintextIsRetriedThenNamed(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	start := time.Now()
	p := f.start(t, "REDIS_TLS=true", "REDIS_RETRY_TIMEOUT=5s")
	if code := p.wait(t, 90*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, p.out.String())
	}
	gaveUp := time.Since(start)
	if len(p.lines(t, "redis unreachable while claiming; retrying")) != 1 || gaveUp < 5*time.Second {
		t.Fatalf("not retried for REDIS_RETRY_TIMEOUT (%v); output:\n%s", gaveUp, p.out.String())
	}
	got := p.failedLine(t)
	head := fmt.Sprintf(`redis at standalone %s db=0 user="" password=set tls=true unreachable for 5s (REDIS_RETRY_TIMEOUT); `, f.srv.Addr)
	// Redis answers a ClientHello that happens to hold a newline (an inline
	// command) with an error reply, and waits for more otherwise.
	wants := []string{
		head + `the server did not answer TLS: check REDIS_TLS (the server may be plaintext) and REDIS_ADDR: register claim on events: TLS handshake with ` + f.srv.Addr + `: tls: first record does not look like a TLS handshake`,
		head + `check REDIS_ADDR and that Redis is up and reachable; TLS is on: check REDIS_TLS and REDIS_TLS_CA_FILE too (a plaintext server never completes the TLS handshake): register claim on events: TLS handshake with ` + f.srv.Addr + `: context deadline exceeded`,
	}
	if got != wants[0] && got != wants[1] {
		t.Errorf("error\n got %s\nwant %s\n  or %s", got, wants[0], wants[1])
	}
	t.Logf("REDIS_TLS=true against plaintext, REDIS_RETRY_TIMEOUT=5s: exit 1 after %.1fs", gaveUp.Seconds())
}

var _ = redistest.Start

// Redis restarts without persistence while the job works: the claim list
// and the lease vanish together, inside the lease. The job says what
// happened — Redis lost the event — not that another job will process it;
// and it warned at start that the server keeps nothing.
func TestEventLostByARedisRestartWithoutPersistence(t *testing.T) {
	f := newFixture(t, 30*time.Second) // appendonly no, save ""
	ctx := context.Background()
	// The wait outlasts the warning and the restart on a loaded machine: the
	// job must still hold the event when Redis comes back empty.
	if _, err := f.q.Publish(ctx, queue.Event{ID: "gone-with-redis", Wait: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	p := f.start(t, "REDIS_RETRY_TIMEOUT=30s")
	f.waitFor(t, "the claim", func(s queue.Stats) bool { return s.Processing == 1 })
	// The warning is read after the claim; restarting before it was read
	// made the read fail (logged at debug) and the warning check flaky.
	p.waitLine(t, "Redis has no persistence", 60*time.Second)
	f.srv.Restart()
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	lost := p.lines(t, "event lost by Redis")
	if len(lost) != 1 || lost[0]["level"] != "error" || lost[0]["outcome"] != "vanished" || lost[0]["id"] != "gone-with-redis" ||
		lost[0]["msg"] != "event lost by Redis: its claim list and lease vanished while the lease was valid — Redis restarted without persistence, was flushed, or failed over to a replica that lacked them; see README, Guarantees" {
		t.Fatalf("want one exact 'event lost by Redis' line; output:\n%s", p.out.String())
	}
	if n := len(p.lines(t, "another job will process it")); n != 0 {
		t.Errorf("the job claims another job will process an event Redis lost; output:\n%s", p.out.String())
	}
	warn := p.lines(t, "Redis has no persistence")
	if len(warn) != 1 || warn[0]["level"] != "warn" || warn[0]["appendonly"] != "no" || warn[0]["save"] != "" ||
		warn[0]["msg"] != "Redis has no persistence (appendonly no, no RDB snapshots) — a Redis restart loses every event, pending and in flight; use appendonly yes with appendfsync always" {
		t.Errorf("want one exact persistence warning; output:\n%s", p.out.String())
	}
	if s, _ := f.q.Stats(ctx); s.Pending+s.Processing != 0 {
		t.Errorf("stats %+v: the event should be gone with the restart", s)
	}
}
