package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/internal/testbin"
	"github.com/redis-keda/redis-keda/queue"
)

// Chaos with failover, on a real Redis Cluster and a real Sentinel set:
// real jobs processes (one event each, as KEDA starts them), a quarter of
// them SIGKILLed at random instants, a reaper, a publisher, and two
// failovers of the queues' master mid-run:
//
//  1. Cluster: CLUSTER FAILOVER (coordinated); Sentinel: the master
//     SIGKILLed with its replicas in sync;
//  2. the master's replicas cut off (paused, replication links closed)
//     while the master keeps acknowledging writes, then the master SIGKILLed
//     and the stale replicas resumed: one of them is promoted without what
//     the master acknowledged meanwhile.
//
// Two queues on that master run side by side: one published with
// REDIS_MIN_REPLICAS=1, one with 0. "Lost" is an event whose Publish
// returned success and that no job ever acked (from the jobs' own log
// lines; a job is killed only when it provably has not acked — see the
// runners — so every ack is logged).
//
// The REDIS_MIN_REPLICAS=0 queue is the control arm: it must lose events,
// or the cut did not happen and the durable queue's 0 lost proves nothing.
// The test does not leave that to timing (see cutOffAndKill): it checks
// that the master acknowledged writes past the replicas' last offset, that
// at least one acknowledged event sat only on the master when it died, and
// that the promoted replica's history stops before them.

// eventWork is how long a job works on each event of the run (its wait).
const eventWork = 300 * time.Millisecond

// chaosQueue is one queue of the run and what happened to it.
type chaosQueue struct {
	name        string
	minReplicas int
	events      int // to publish
	batch       int // events per Publish, one every 300 ms
	runners     int // concurrent jobs processes
	q           *queue.Queue

	mu        sync.Mutex
	published map[string]bool // acknowledged by Publish
	window    map[string]bool // acknowledged while the replicas were cut off
	control   int             // events cutOffAndKill published itself
	refused   int             // batches Publish refused (ErrNotReplicated or another error)
	procs     []*proc
	runs      int
	killed    int
}

// chaosTopology is what the run needs from a topology.
type chaosTopology struct {
	env      []string // REDIS_* for the jobs
	redisEnv map[string]string
	master   func() *redistest.Server
	replicas func() []*redistest.Server
	// failover is the first failover, described by firstFailover.
	failover      func(t *testing.T) time.Duration
	firstFailover string
	killed        func(t *testing.T, old *redistest.Server) time.Duration // waits for the promotion
	// failoverGap is the least time between the first failover's end and
	// the second kill for the topology to fail over again: Sentinel starts
	// no failover of a master within 2 x failover-timeout of the last one
	// (it waits, and the sentinels can disagree meanwhile).
	failoverGap time.Duration
	restarted   func(t *testing.T, old *redistest.Server) // old master back as a replica
}

func TestChaosWithFailoverCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	jobsOnANodeThatDoesNotOwnTheSlot(t, c)
	// Two queues (hash tags {durable}, {fast-N}) on the same master.
	durable := "durable"
	owner := c.MasterOf(durable)
	fast := ""
	for i := 0; fast == ""; i++ {
		if n := fmt.Sprintf("fast-%d", i); c.MasterOf(n) == owner {
			fast = n
		}
	}
	master := owner
	tp := chaosTopology{
		firstFailover: "CLUSTER FAILOVER, coordinated",
		env:           []string{"REDIS_MODE=cluster", "REDIS_ADDR=" + strings.Join(c.Addrs(), ",")},
		redisEnv:      map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": strings.Join(c.Addrs(), ",")},
		master:        func() *redistest.Server { return master },
		replicas:      func() []*redistest.Server { return c.ReplicaOf(master) },
		failover: func(t *testing.T) time.Duration {
			r := c.ReplicaOf(master)[0]
			took := c.Failover(r, 30*time.Second)
			master = r
			return took
		},
		killed: func(t *testing.T, old *redistest.Server) time.Duration {
			m, took := c.WaitNewMaster(durable, old, 30*time.Second)
			master = m
			return took
		},
		restarted: func(t *testing.T, old *redistest.Server) {
			old.Restart()
			c.WaitHealthy(time.Minute) // back as a replica, in sync
		},
	}
	runChaosWithFailover(t, tp, durable, fast)
}

// jobsOnANodeThatDoesNotOwnTheSlot: REDIS_ADDR names one cluster node that
// does not serve the queue's slot. With REDIS_MODE=cluster the job finds the
// owner and processes the event; with the default REDIS_MODE=standalone it
// exits 1 at once with a message that says what to set (it used to retry
// MOVED for REDIS_RETRY_TIMEOUT).
func jobsOnANodeThatDoesNotOwnTheSlot(t *testing.T, c *redistest.Cluster) {
	const name = "seed"
	owner := c.MasterOf(name)
	var seed *redistest.Server
	for _, m := range c.Masters() {
		if m != owner {
			seed = m
			break
		}
	}
	q := openChaosQueue(t, map[string]string{"REDIS_MODE": "cluster", "REDIS_ADDR": seed.Addr}, name, 0)
	if _, err := q.Publish(context.Background(), queue.Event{ID: "via-seed", Wait: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: []string{"REDIS_ADDR=" + seed.Addr, "QUEUE=" + name, "CLAIM_TIMEOUT=1s", "REDIS_RETRY_TIMEOUT=30s"}}
	start := time.Now()
	p := f.start(t) // REDIS_MODE unset: standalone
	if code := p.wait(t, 20*time.Second); code != 1 || !strings.Contains(p.out.String(), "REDIS_ADDR is a Redis Cluster node that does not serve this key: set REDIS_MODE=cluster") {
		t.Fatalf("standalone on a non-owning node: exit %d\n%s", code, p.out.String())
	}
	t.Logf("standalone on a non-owning cluster node: exit 1 after %s", time.Since(start).Round(time.Millisecond))
	p = f.start(t, "REDIS_MODE=cluster")
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("cluster mode on a non-owning node: exit %d\n%s", code, p.out.String())
	}
	if acked := p.lines(t, "event acked"); len(acked) != 1 || acked[0]["id"] != "via-seed" {
		t.Fatalf("want one ack of via-seed; output:\n%s", p.out.String())
	}
	if s, err := q.Stats(context.Background()); err != nil || !empty(s) || s.Counters["acked"] != 1 {
		t.Fatalf("stats %+v, %v", s, err)
	}
}

func TestChaosWithFailoverSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	env := map[string]string{
		"REDIS_MODE": "sentinel", "REDIS_ADDR": strings.Join(s.SentinelAddrs(), ","), "REDIS_SENTINEL_MASTER": s.MasterName,
	}
	tp := chaosTopology{
		firstFailover: "master SIGKILLed, replicas in sync",
		redisEnv:      env,
		master:        s.Master,
		replicas:      s.Replicas,
		// A crash with the replicas connected. (SENTINEL FAILOVER is no
		// such switch: the old master keeps taking writes until the
		// sentinels demote it; see sentinelSplitBrain in queue/topology_test.go.)
		failover: func(t *testing.T) time.Duration {
			old := s.KillMaster()
			_, took := s.WaitFailover(old, 30*time.Second)
			s.RestartAsReplica(old)
			s.WaitSettled(time.Minute)
			return took
		},
		killed: func(t *testing.T, old *redistest.Server) time.Duration {
			_, took := s.WaitFailover(old, time.Minute)
			return took
		},
		failoverGap: 2 * redistest.SentinelFailoverTimeout,
		restarted: func(t *testing.T, old *redistest.Server) {
			s.RestartAsReplica(old)
			s.WaitSettled(time.Minute)
		},
	}
	for k, v := range env {
		tp.env = append(tp.env, k+"="+v)
	}
	runChaosWithFailover(t, tp, "durable", "fast")
	// A failover the test did not cause (a loaded machine making a live
	// master miss the sentinels' PINGs) is a split brain, which
	// REDIS_MIN_REPLICAS=1 does not cover with two replicas: say so plainly
	// if that is what happened.
	if n := s.Failovers(); n != 2 {
		t.Errorf("the sentinels failed over %d times; the test caused 2", n)
	}
}

func runChaosWithFailover(t *testing.T, tp chaosTopology, durable, fast string) {
	ctx := context.Background()
	queues := []*chaosQueue{
		{name: durable, minReplicas: 1, events: 300, batch: 10, runners: 6},
		{name: fast, minReplicas: 0, events: 120, batch: 4, runners: 2},
	}
	for _, cq := range queues {
		cq.q = openChaosQueue(t, tp.redisEnv, cq.name, cq.minReplicas)
		cq.published, cq.window = map[string]bool{}, map[string]bool{}
	}
	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	// Everything below stops when the run is over, or when the test fails
	// half-way: the cleanup cancels and waits.
	runCtx, stop := context.WithCancel(ctx)
	var bg, jobs sync.WaitGroup
	t.Cleanup(func() { stop(); jobs.Wait(); bg.Wait() })
	var cutOff atomic.Bool // the replicas are cut off: acknowledged events may vanish

	// Publishers: a batch every 300 ms (both queues publish for 30 batches);
	// a refused batch is retried with the same ids (the publisher's rule).
	var batches atomic.Int32
	var published sync.WaitGroup
	for _, cq := range queues {
		published.Add(1)
		bg.Go(func() {
			defer published.Done()
			for i := 0; i < cq.events; {
				batch := make([]queue.Event, min(cq.batch, cq.events-i))
				for j := range batch {
					batch[j] = queue.Event{ID: fmt.Sprintf("%s-%03d", strings.Trim(cq.name, "{}"), i+j), Wait: eventWork}
				}
				for {
					select {
					case <-runCtx.Done():
						return
					case <-time.After(300 * time.Millisecond):
					}
					window := cutOff.Load()
					pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := cq.q.Publish(pctx, batch...)
					cancel()
					cq.mu.Lock()
					if err == nil {
						for _, ev := range batch {
							cq.published[ev.ID] = true
							if window || cutOff.Load() {
								cq.window[ev.ID] = true
							}
						}
					} else {
						cq.refused++
					}
					cq.mu.Unlock()
					if err == nil {
						break
					}
				}
				i += len(batch)
				if cq.minReplicas > 0 {
					batches.Add(1)
				}
			}
		})
	}
	// Reapers, as the publisher runs them.
	for _, cq := range queues {
		bg.Go(func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				_, _ = cq.q.Reap(ctx) // errors during a failover: the next tick retries
			}
		})
	}
	// Jobs: each runner starts one jobs process after another while its
	// queue has work (or more is coming); a quarter are SIGKILLed within
	// 250 ms of their start.
	f := &fixture{bin: buildPlainJobs(t), env: append(slices.Clone(tp.env), "LEASE_DURATION=1s", "MAX_ATTEMPTS=50", "CLAIM_TIMEOUT=1s",
		"REDIS_RETRY_TIMEOUT=30s", "MAX_EVENTS=1")}
	var publishing atomic.Bool
	publishing.Store(true)
	jobs.Go(func() {
		for time.Now().Before(deadline) && runCtx.Err() == nil {
			var runners sync.WaitGroup
			for _, cq := range queues {
				for r := range cq.runners {
					runners.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(r), uint64(time.Now().UnixNano())))
						for time.Now().Before(deadline) && runCtx.Err() == nil && (publishing.Load() || busy(ctx, cq.q)) {
							begin := time.Now()
							p := f.start(t, "QUEUE="+cq.name)
							kill := rng.IntN(4) == 0
							if kill {
								// Frozen at a random instant, then killed only if
								// that was less than an event's work after begin:
								// it cannot have acked yet, so no ack goes
								// unlogged. Later (a loaded machine overslept
								// the sleep) it is let go, not guessed about.
								time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
								_ = p.cmd.Process.Signal(syscall.SIGSTOP)
								if time.Since(begin) < eventWork {
									_ = p.cmd.Process.Signal(syscall.SIGKILL)
								} else {
									kill = false
									_ = p.cmd.Process.Signal(syscall.SIGCONT)
								}
							}
							<-p.waited
							cq.mu.Lock()
							cq.procs = append(cq.procs, p)
							cq.runs++
							if kill && p.cmd.ProcessState.ExitCode() == -1 {
								cq.killed++
							}
							cq.mu.Unlock()
						}
					})
				}
			}
			runners.Wait()
			// Nothing pending or in flight: the reaper clears the
			// registrations of killed waiters — or returns what a job killed
			// mid-claim held, which sends the runners back to work.
			settle := time.Now().Add(5 * time.Second)
			for time.Now().Before(settle) && !drained(ctx, queues) && !anyBusy(ctx, queues) {
				time.Sleep(100 * time.Millisecond)
			}
			if drained(ctx, queues) {
				return
			}
		}
	})

	// The failovers, a third and two thirds into the durable publishing.
	waitBatches := func(n int32) {
		for batches.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitBatches(10)
	took := tp.failover(t)
	firstDone := time.Now()
	t.Logf("+%s first failover (%s): new master after %s", time.Since(start).Round(100*time.Millisecond), tp.firstFailover, took.Round(time.Millisecond))
	waitBatches(20)
	if wait := tp.failoverGap - time.Since(firstDone); wait > 0 {
		t.Logf("+%s waiting %s: the topology fails over again only %s after the last failover", time.Since(start).Round(100*time.Millisecond), wait.Round(100*time.Millisecond), tp.failoverGap)
		time.Sleep(wait) // a lower bound: load cannot make it too short
	}
	t.Logf("+%s cutting the replicas off (%d of 30 durable batches published)", time.Since(start).Round(100*time.Millisecond), batches.Load())
	onlyOnMaster := cutOffAndKill(t, tp, queues[0], queues[1], &cutOff)
	t.Logf("+%s second failover done", time.Since(start).Round(100*time.Millisecond))

	published.Wait()
	publishing.Store(false)
	jobs.Wait()
	stop()
	bg.Wait()
	elapsed := time.Since(start)

	for _, cq := range queues {
		s, err := cq.q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Pending+s.Processing+s.Claiming+s.Dead != 0 {
			t.Errorf("%s not drained within the time limit: %+v", cq.name, s)
		}
		acks := map[string]int{}
		for _, p := range cq.procs {
			for _, l := range p.lines(t, "event acked") {
				acks[l["id"].(string)]++
			}
		}
		var lost, lostOutside []string
		dups := 0
		for id := range cq.published {
			switch n := acks[id]; {
			case n == 0:
				lost = append(lost, id)
				if !cq.window[id] {
					lostOutside = append(lostOutside, id)
				}
			case n > 1:
				dups += n - 1
			}
		}
		slices.Sort(lost)
		t.Logf("%s (REDIS_MIN_REPLICAS=%d): %d events acknowledged by Publish (%d while the replicas were cut off, %d batches refused and retried), "+
			"%d job runs, %d SIGKILLed (%.0f%%): %d lost, %d processed more than once",
			cq.name, cq.minReplicas, len(cq.published), len(cq.window), cq.refused, cq.runs, cq.killed,
			100*float64(cq.killed)/float64(max(cq.runs, 1)), len(lost), dups)
		if len(cq.published) != cq.events+cq.control {
			t.Errorf("%s: %d events acknowledged, want %d (+%d published while the replicas were cut off)", cq.name, len(cq.published), cq.events, cq.control)
		}
		if float64(cq.killed) < 0.15*float64(cq.runs) {
			t.Errorf("%s: only %d of %d job runs were killed", cq.name, cq.killed, cq.runs)
		}
		if len(lostOutside) > 0 {
			t.Errorf("%s: %d events lost that were acknowledged while the replicas were connected: %v", cq.name, len(lostOutside), lostOutside)
		}
		if cq.minReplicas > 0 && len(lost) > 0 {
			t.Errorf("%s: %d acknowledged events lost with REDIS_MIN_REPLICAS=%d: %v", cq.name, len(lost), cq.minReplicas, lost)
		}
		if cq.minReplicas == 0 {
			// The control arm: what was verifiably only on the master when it
			// died is lost, every one of it.
			for _, id := range onlyOnMaster {
				if !slices.Contains(lost, id) {
					t.Errorf("%s: %s was acknowledged and pending on the master alone when it was killed, yet it was processed (%d acks)", cq.name, id, acks[id])
				}
			}
			t.Logf("%s: lost %v (%v verifiably only on the killed master)", cq.name, lost, onlyOnMaster)
		}
	}
	t.Logf("run took %s", elapsed.Round(100*time.Millisecond))
}

// cutOffAndKill is the second failover. It cuts the master's replicas off
// (paused, so they cannot reconnect; the master closes their links) and
// checks that the master sees none. From then on the master's replication
// offset grows past anything a replica has. It publishes one event on
// durable (REDIS_MIN_REPLICAS=1), which must be refused with 0 of 1
// replicas — and is published again, with the same id, once the failover
// is over (the publisher's rule), so the durable queue's "0 lost" covers
// an event that was on the master alone. Then it publishes on fast
// (REDIS_MIN_REPLICAS=0: the master alone acknowledges) and freezes the
// master's data (CLIENT PAUSE WRITE: no claim, ack or publish runs on it
// any more; reads do) to read fast's pending list: an event published
// after the cut and still pending there can be on no replica, and no job
// can process it before the master dies. Until it finds one it lets the
// master run again and publishes more. Then it SIGKILLs the master,
// resumes the replicas, waits for the promotion and checks, with the
// promoted replica's replication history (master_replid2,
// second_repl_offset), that it indeed stopped at or before the cut. It
// returns the ids that were only on the killed master.
func cutOffAndKill(t *testing.T, tp chaosTopology, durable, fast *chaosQueue, cutOff *atomic.Bool) []string {
	t.Helper()
	ctx := context.Background()
	begin := time.Now()
	old := tp.master()
	replicas := tp.replicas()
	if len(replicas) == 0 {
		t.Fatalf("master %s has no replica to cut off", old.Addr)
	}
	cutOff.Store(true) // from here an acknowledged event may be on the master alone
	for _, r := range replicas {
		r.Pause()
	}
	old.Do("CLIENT", "KILL", "TYPE", "replica")
	deadline := time.Now().Add(time.Minute)
	for old.Info("connected_slaves") != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("the master %s still lists replicas a minute after CLIENT KILL TYPE replica", old.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	replid, cutAt := old.ReplicationOffset()

	refused := queue.Event{ID: strings.Trim(durable.name, "{}") + "-cut", Wait: eventWork}
	_, err := durable.q.Publish(ctx, refused)
	var nr *queue.NotReplicatedError
	if !errors.As(err, &nr) || nr.Replicas != 0 || nr.Want != 1 {
		t.Fatalf("%s published with the replicas cut off: %v; want ErrNotReplicated, 0 of 1 replicas", refused.ID, err)
	}
	durable.mu.Lock()
	durable.refused++
	durable.mu.Unlock()

	var onlyOnMaster []string
	for round := 0; len(onlyOnMaster) == 0; round++ {
		if round == 20 {
			t.Fatalf("control arm: after %d events published with the replicas cut off, none was still pending on the master when checked", round)
		}
		id := fmt.Sprintf("%s-cut-%02d", strings.Trim(fast.name, "{}"), round)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := fast.q.Publish(pctx, queue.Event{ID: id, Wait: eventWork})
		cancel()
		if err != nil {
			t.Fatalf("control arm: publish %s on the master with its replicas cut off (REDIS_MIN_REPLICAS=0): %v", id, err)
		}
		fast.mu.Lock()
		fast.published[id], fast.window[id] = true, true
		fast.control++
		fast.mu.Unlock()
		old.Do("CLIENT", "PAUSE", 60_000, "WRITE")
		pending, _ := old.Do("LRANGE", fast.name, 0, -1).([]any)
		for _, e := range pending {
			if ev, err := decodeEntry(fmt.Sprint(e)); err == nil && strings.Contains(ev.ID, "-cut-") {
				onlyOnMaster = append(onlyOnMaster, ev.ID)
			}
		}
		if len(onlyOnMaster) == 0 { // the jobs took them all: let them finish, publish again
			old.Do("CLIENT", "UNPAUSE")
		}
	}
	_, end := old.ReplicationOffset()
	if end <= cutAt {
		t.Fatalf("control arm: the master's replication offset is %d, as at the cut: it acknowledged nothing the replicas lack", end)
	}
	old.Stop()
	cutOff.Store(false)
	for _, r := range replicas {
		r.Resume()
	}
	took := tp.killed(t, old)
	promoted := tp.master()
	last, ok := promoted.PromotedAt(replid)
	if !ok || last > cutAt {
		t.Fatalf("control arm: the promoted replica %s does not stop at the cut (replication id %s, offset %d): promoted from it %v, its last offset %d",
			promoted.Addr, replid, cutAt, ok, last)
	}
	slices.Sort(onlyOnMaster)
	t.Logf("replicas cut off at offset %d; the master went on to %d, acknowledging %d event(s) of %s, %v still pending on it when it was SIGKILLed %s after the cut; "+
		"%s promoted after %s, its history of the old master ends at %d; %s had been refused (%v)",
		cutAt, end, fast.control, fast.name, onlyOnMaster, time.Since(begin).Round(time.Millisecond), promoted.Addr, took.Round(time.Millisecond), last, refused.ID, err)
	tp.restarted(t, old)

	// The refused event, published again with the same id.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		_, err := durable.q.Publish(ctx, refused)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %s again after the failover: %v", refused.ID, err)
		}
	}
	durable.mu.Lock()
	durable.published[refused.ID] = true
	durable.control++
	durable.mu.Unlock()
	return onlyOnMaster
}

// decodeEntry is the event of a pending entry (raw, or in its envelope:
// "rkq1 " header, newline, payload).
func decodeEntry(entry string) (queue.Event, error) {
	if rest, ok := strings.CutPrefix(entry, "rkq1 "); ok {
		_, entry, _ = strings.Cut(rest, "\n")
	}
	return queue.DecodeEvent([]byte(entry), time.Hour)
}

// buildPlainJobs builds the jobs binary without the race detector: the
// chaos runs start hundreds of processes, and the race build's start-up
// would dominate them (the other tests run the race build).
func buildPlainJobs(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Build(t.TempDir(), "jobs", ".")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// drained: every queue is empty — nothing pending, in flight, being claimed
// or dead.
func drained(ctx context.Context, queues []*chaosQueue) bool {
	for _, cq := range queues {
		s, err := cq.q.Stats(ctx)
		if err != nil || s.Pending+s.Processing+s.Claiming+s.Dead > 0 {
			return false
		}
	}
	return true
}

func anyBusy(ctx context.Context, queues []*chaosQueue) bool {
	for _, cq := range queues {
		if busy(ctx, cq.q) {
			return true
		}
	}
	return false
}

// busy: the queue has work pending or in flight (or Redis does not answer
// right now, during a failover).
func busy(ctx context.Context, q *queue.Queue) bool {
	s, err := q.Stats(ctx)
	return err != nil || s.Pending+s.Processing > 0
}

// openChaosQueue opens the test's own client of a queue as the binaries do.
func openChaosQueue(t *testing.T, redisEnv map[string]string, name string, minReplicas int) *queue.Queue {
	t.Helper()
	env := map[string]string{"QUEUE": name, "LEASE_DURATION": "1s", "MAX_ATTEMPTS": "50",
		"REDIS_MIN_REPLICAS": fmt.Sprint(minReplicas), "REDIS_MIN_REPLICAS_TIMEOUT": "500ms"}
	for k, v := range redisEnv {
		env[k] = v
	}
	var c struct {
		Redis queue.RedisConfig
		Queue queue.Config
	}
	if err := config.ParseFrom(&c, env); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(c.Redis, c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}
