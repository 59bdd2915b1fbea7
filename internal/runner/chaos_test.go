package runner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
)

// Chaos with the retry schedule: 500 events whose program fails on its
// first k attempts (k by event: 0 for half, up to 3 = never succeeds with
// MAX_ATTEMPTS 3), real `redis-keda run` processes (one event each, as KEDA
// starts them) of which a quarter are SIGKILLed at random instants, a reaper
// and a mover running as the publisher runs them, and Redis (AOF, fsync
// always) SIGKILLed and restarted half-way. Proven:
//   - 0 lost: every event ends acked (its program's success recorded) or dead;
//   - no attempt starts before its due time: every scheduled retry seen in
//     the scheduled set (sampled every 20 ms; the shortest delay is 200 ms)
//     has the due time of its member, and the program's next attempt of that
//     event recorded its start (same host clock as Redis's TIME) no earlier;
//   - every dead letter carries MAX_ATTEMPTS attempts.
func TestChaosScheduledRetriesKilledJobsAndARedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: a minute or two of real processes")
	}
	const (
		events      = 500
		maxAttempts = 3
	)
	srv := redistest.Start(t, redistest.WithPassword(password), redistest.WithAOF())
	cfg := queue.Config{Name: "events", LeaseDuration: 2 * time.Second, MaxAttempts: maxAttempts, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
	q, err := queue.New(srv.Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{srv: srv, q: q, dir: dir, env: []string{
		"PATH=" + os.Getenv("PATH"), "OUT=" + dir, "TMPDIR=" + dir,
		"REDIS_ADDR=" + srv.Addr, "REDIS_PASSWORD=" + password, "QUEUE=events",
		"MAX_ATTEMPTS=" + strconv.Itoa(maxAttempts), "CLAIM_TIMEOUT=1s", "LEASE_DURATION=2s", "REDIS_RETRY_TIMEOUT=30s",
		"RETRY_BASE=200ms", "RETRY_FACTOR=2", "RETRY_MAX=1s", "RETRY_JITTER=0.25",
	}}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(17, 5))
	fails := map[string]int{}
	for i := range events {
		k := 0
		switch r := rng.IntN(100); {
		case r < 50:
		case r < 75:
			k = 1
		case r < 88:
			k = 2
		default:
			k = 3 // fails every attempt: dead after MAX_ATTEMPTS
		}
		id := fmt.Sprintf("e%03d-f%d", i, k)
		fails[id] = k
		f.publish(t, fmt.Sprintf(`{"id":%q}`, id))
	}
	// The program: records its start (ms, host clock), then fails while
	// this attempt <= k, else records its success.
	script := `s=$(date +%s%3N); echo "$REDIS_KEDA_EVENT_ID $REDIS_KEDA_ATTEMPT $s" >> "$OUT/starts"; sleep 0.02
k=${REDIS_KEDA_EVENT_ID##*-f}
if [ "$REDIS_KEDA_ATTEMPT" -le "$k" ]; then echo "planned failure $REDIS_KEDA_ATTEMPT of $k" >&2; exit 1; fi
echo "$REDIS_KEDA_EVENT_ID" >> "$OUT/done"`

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bctx, cancel := context.WithCancel(ctx)
	bg.Go(func() { q.RunMover(bctx, 100*time.Millisecond, nil) }) // the publisher's mover loop
	bg.Go(func() {                                                // the reaper
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			_, _ = q.Reap(ctx)
		}
	})
	// The sampler: every scheduled member's due time, by (id, attempts
	// done). A member is "<nonce> rkq1 {...attempts...}\n<payload>".
	var smu sync.Mutex
	due := map[string]int64{} // "id attempt" (the attempt that will start) -> due ms
	bg.Go(func() {
		rdb := srv.Client()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			zs, err := rdb.ZRangeWithScores(ctx, "{events}:scheduled", 0, -1).Result()
			if err != nil {
				continue // Redis restarting
			}
			smu.Lock()
			for _, z := range zs {
				m := z.Member.(string)
				i := strings.Index(m, `"attempts":`)
				j := strings.Index(m, `{"id":"`)
				if i < 0 || j < 0 {
					t.Errorf("scheduled member %q is not a retry's envelope", m)
					continue
				}
				n, _ := strconv.Atoi(strings.TrimRight(m[i+len(`"attempts":`):i+len(`"attempts":`)+2], ",}"))
				id := m[j+len(`{"id":"`) : len(m)-2]
				due[fmt.Sprintf("%s %d", id, n+1)] = int64(z.Score)
			}
			smu.Unlock()
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
			if s, err := q.Stats(ctx); err == nil && s.Counters["acked"] >= events/3 {
				srv.Restart()
				restarted.Store(true)
				return
			}
		}
	})

	var (
		mu           sync.Mutex
		runs, killed int
	)
	busy := func() bool {
		s, err := q.Snapshot(ctx, queue.SnapshotOptions{})
		return err != nil || s.Pending+s.Processing+s.Scheduled > 0
	}
	deadline := time.Now().Add(5 * time.Minute) // a hang, not a speed bound
	for time.Now().Before(deadline) && busy() {
		var runners sync.WaitGroup
		for r := range 6 {
			runners.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), uint64(time.Now().UnixNano())))
				for busy() && time.Now().Before(deadline) {
					p := f.sh(t, script)
					kill := rng.IntN(4) == 0
					if kill {
						time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
						_ = p.cmd.Process.Signal(syscall.SIGKILL)
					}
					<-p.waited
					mu.Lock()
					runs++
					if kill && p.cmd.ProcessState.ExitCode() == -1 {
						killed++
					}
					mu.Unlock()
				}
			})
		}
		runners.Wait()
		// The reaper returns what killed runners held after their lease.
		for i := 0; i < 60 && !busy(); i++ {
			if s, err := q.Snapshot(ctx, queue.SnapshotOptions{}); err == nil && s.Claiming == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	close(stop)
	cancel()
	bg.Wait()

	s, err := q.Snapshot(ctx, queue.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending+s.Processing+s.Claiming+s.Scheduled != 0 {
		t.Fatalf("not drained: %+v", s)
	}
	if !restarted.Load() {
		t.Error("Redis was never restarted; the test proves nothing about restarts")
	}
	// 0 lost: each event succeeded (its program said so) or is dead.
	doneIDs := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "done")); err == nil {
		for _, id := range strings.Fields(string(b)) {
			doneIDs[id] = true
		}
	}
	dls, err := q.DeadLetters(ctx, 2*events)
	if err != nil {
		t.Fatal(err)
	}
	deadIDs := map[string]bool{}
	for _, dl := range dls {
		deadIDs[dl.ID] = true
		// "failed on attempt 3 of 3 (MAX_ATTEMPTS): …" (the program's last
		// failure), "lease expired on attempt 3 of 3 (MAX_ATTEMPTS): …" (its
		// runner was SIGKILLed on the last attempt; the reaper) or "claimed
		// but never leased on delivery 3 of 3 (MAX_ATTEMPTS): …" (SIGKILLed
		// between the claim and the lease; the reaper).
		if dl.Attempts != maxAttempts || !(strings.Contains(dl.Reason, fmt.Sprintf(" on attempt %d of %d (MAX_ATTEMPTS): ", maxAttempts, maxAttempts)) ||
			strings.HasPrefix(dl.Reason, fmt.Sprintf("claimed but never leased on delivery %d of %d (MAX_ATTEMPTS): ", maxAttempts, maxAttempts))) {
			t.Errorf("dead letter %s: %d attempts, reason %q; want %d (MAX_ATTEMPTS)", dl.ID, dl.Attempts, dl.Reason, maxAttempts)
		}
		if fails[dl.ID] < maxAttempts && doneIDs[dl.ID] {
			t.Logf("dead letter %s (fails %d) also succeeded once (a killed runner's attempts counted)", dl.ID, fails[dl.ID])
		}
	}
	lost := 0
	for id, k := range fails {
		if !doneIDs[id] && !deadIDs[id] {
			lost++
			t.Errorf("event %s (fails %d) neither succeeded nor is dead", id, k)
		}
		if k >= maxAttempts && !deadIDs[id] {
			t.Errorf("event %s fails every attempt but is not dead", id)
		}
	}
	// No attempt before its due time.
	b, err := os.ReadFile(filepath.Join(dir, "starts"))
	if err != nil {
		t.Fatal(err)
	}
	checked, early := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fs := strings.Fields(line)
		if len(fs) != 3 {
			t.Fatalf("starts line %q", line)
		}
		d, ok := due[fs[0]+" "+fs[1]]
		if !ok {
			continue // a first attempt, or one after a reaped delivery (not scheduled)
		}
		started, _ := strconv.ParseInt(fs[2], 10, 64)
		checked++
		if started < d {
			early++
			t.Errorf("event %s attempt %s started at %d, %d ms before its due time %d", fs[0], fs[1], started, d-started, d)
		}
	}
	if checked < 100 { // control: the schedule was exercised
		t.Errorf("only %d attempts had a scheduled due time to check", checked)
	}
	if float64(killed) < 0.15*float64(runs) {
		t.Errorf("only %d of %d runs were killed", killed, runs)
	}
	t.Logf("%d events, %d runs, %d SIGKILLed, 1 Redis restart: %d lost, %d succeeded, %d dead (all with %d attempts), %d retries checked against their due time, %d early; counters %v",
		events, runs, killed, lost, len(doneIDs), len(deadIDs), maxAttempts, checked, early, s.Counters)
}
