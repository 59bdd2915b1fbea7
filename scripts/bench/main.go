// Command bench measures the queue's data path on a running Redis for
// scripts/bench.sh, which puts each figure next to a redis-benchmark
// baseline on the same server. Each subcommand prints one line of
// key=value pairs on stdout:
//
//	bench free-port
//	    a free TCP port on 127.0.0.1 (for the script's redis-server; the
//	    only output that is a bare number)
//	bench payload-size
//	    bytes of one event as the publisher marshals it (for redis-benchmark -d)
//	bench publish -addr A -batch 10 -conns 50 -duration 3s
//	    queue.Publish of -batch events from -conns goroutines: events/s
//	bench claimack -addr A -consumers 1 -duration 3s -prefill 100000
//	    Claim+Ack cycles from -consumers goroutines on a pre-filled list
//	bench exec -addr A -runs 20 [-acked|-dead] [-payload-bytes N] -- cmd args...
//	    pushes one {"wait":0} event (padded to N bytes with -payload-bytes),
//	    runs cmd (REDIS_ADDR and QUEUE set in its environment), checks the
//	    event was taken (and acked with -acked, dead-lettered with -dead);
//	    wall time exec->exit (median, p90) over -runs, then peak RSS (VmHWM
//	    sampled from /proc, no extra tool) over -rss-runs more
//	bench reap -addr A -n 100000 -kind expired|unleased
//	    leaves -n orphans due (leases expired, or claimed and never leased),
//	    then times one queue.Reap that must return all of them to pending;
//	    meanwhile a second connection PINGs in a loop: worst PING latency
//	    during the reap vs during as long idle, and the longest script
//	    (SLOWLOG with threshold 0)
//	bench scaleout -mode cluster -addr A,B,C -queues 3 -consumers 4 -duration 3s
//	bench scaleout -mode standalone -addr A -names {bench-0},{bench-4},...
//	    aggregate claim+ack cycles/s of several queues at once: on a cluster
//	    one queue (hash tag) per master, picked and printed (queues=...);
//	    on one server the same queues (scaleout.go)
//	bench opsmem -addr A -pid P
//	    growth of the local redis-server's peak RSS during peek, inspect
//	    and redrive of 12 MiB dead letters and 1 MB pending events, next to
//	    one LINDEX of the same entry by a plain client (opsmem.go)
//	bench move -addr A -n 100000 -latency-events 20 -interval 500ms
//	    -n events due at once moved to pending by one MoveDue (wall time,
//	    worst PING meanwhile), then the mover loop's latency from due time
//	    to pending (move.go)
//	bench cost -addr A -events 2000 -polls 2000 [-jobs path]
//	    Redis's round trips, commands, usec and CPU per event stage
//	    (publish, claim, heartbeat, ack) and per KEDA poll, against the
//	    textbook reliable queue, and bytes per event pending, in flight and
//	    acked (cost.go)
//
// It exits non-zero when a measurement could not be made or the queue is
// not in the expected state afterwards.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: bench free-port|payload-size|publish|claimack|exec|reap|scaleout|opsmem|move|cost [flags]")
	}
	ctx := context.Background()
	switch args[0] {
	case "free-port":
		return freePort(out)
	case "payload-size":
		fmt.Fprintf(out, "payload_bytes=%d\n", len(sampleEvent().Marshal()))
		return nil
	case "publish":
		return publish(ctx, args[1:], out)
	case "claimack":
		return claimAck(ctx, args[1:], out)
	case "exec":
		return execRuns(ctx, args[1:], out)
	case "reap":
		return reap(ctx, args[1:], out)
	case "scaleout":
		return scaleOut(ctx, args[1:], out)
	case "opsmem":
		return opsMem(ctx, args[1:], out)
	case "move":
		return move(ctx, args[1:], out)
	case "cost":
		return costCmd(ctx, args[1:], out)
	default:
		return fmt.Errorf("unknown subcommand %q: want free-port, payload-size, publish, claimack, exec, reap, scaleout, opsmem, move or cost", args[0])
	}
}

func freePort(out io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	fmt.Fprintf(out, "%d\n", l.Addr().(*net.TCPAddr).Port)
	return nil
}

// sampleEvent is an event as the publisher sends it (id, published_at,
// a two-digit wait).
func sampleEvent() queue.Event {
	return queue.Event{ID: "0123456789abcdef", Wait: 17 * time.Second, PublishedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)}
}

// common flags of the subcommands that talk to Redis.
type common struct {
	addr  string
	queue string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:6379", "redis host:port")
	fs.StringVar(&c.queue, "queue", "bench", "queue name (pending list)")
}

// open returns a queue with production-like settings on a client whose pool
// holds at least conns connections.
func (c *common) open(ctx context.Context, conns int) (*queue.Queue, *redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{
		Addr:         c.addr,
		PoolSize:     max(conns, 10),
		DialTimeout:  5 * time.Second,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		MaxRetries:   -1,
	})
	q, err := queue.New(rdb, queue.Config{Name: c.queue, LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	if err := q.Ping(ctx); err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return q, rdb, nil
}

// prefillQueue publishes n events of the sample's size, 1000 per LPUSH.
func prefillQueue(ctx context.Context, q *queue.Queue, n int) error {
	batch := make([]queue.Event, 1000)
	for i := range batch {
		batch[i] = sampleEvent()
	}
	for left := n; left > 0; left -= len(batch) {
		if _, err := q.Publish(ctx, batch[:min(left, len(batch))]...); err != nil {
			return fmt.Errorf("pre-fill: %w", err)
		}
	}
	return nil
}

// clearQueue deletes every key of the queue (its derived keys share the
// prefix "{name}:").
func clearQueue(ctx context.Context, rdb *redis.Client, name string) error {
	keys, err := rdb.Keys(ctx, "{"+name+"}:*").Result()
	if err != nil {
		return fmt.Errorf("list keys of queue %s: %w", name, err)
	}
	keys = append(keys, name)
	for len(keys) > 0 {
		n := min(len(keys), 10000)
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("clear queue %s: %w", name, err)
		}
		keys = keys[n:]
	}
	return nil
}

func publish(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	var c common
	c.register(fs)
	batch := fs.Int("batch", 10, "events per Publish call (the publisher's BATCH_SIZE)")
	conns := fs.Int("conns", 1, "concurrent publishing goroutines (and pool connections)")
	dur := fs.Duration("duration", 3*time.Second, "how long to publish")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 || *conns < 1 || *dur <= 0 {
		return errors.New("publish: -batch, -conns and -duration must be positive")
	}
	q, rdb, err := c.open(ctx, *conns)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}

	var events atomic.Int64
	errs := make(chan error, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for range *conns {
		wg.Go(func() {
			evs := make([]queue.Event, *batch)
			for i := range evs {
				evs[i] = queue.Event{Wait: 17 * time.Second}
			}
			for time.Now().Before(deadline) {
				if _, err := q.Publish(ctx, evs...); err != nil {
					errs <- err
					return
				}
				events.Add(int64(*batch))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	n, err := rdb.LLen(ctx, c.queue).Result()
	if err != nil {
		return fmt.Errorf("count published events: %w", err)
	}
	if n != events.Load() {
		return fmt.Errorf("published %d events but the list holds %d", events.Load(), n)
	}
	fmt.Fprintf(out, "batch=%d conns=%d events=%d seconds=%.3f per_sec=%.0f\n",
		*batch, *conns, n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	return clearQueue(ctx, rdb, c.queue)
}

func claimAck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("claimack", flag.ContinueOnError)
	var c common
	c.register(fs)
	consumers := fs.Int("consumers", 1, "concurrent consumers, each claim then ack")
	dur := fs.Duration("duration", 3*time.Second, "how long to consume (less if the pre-filled events run out)")
	prefill := fs.Int("prefill", 100000, "events published before the clock starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *consumers < 1 || *dur <= 0 || *prefill < 1 {
		return errors.New("claimack: -consumers, -duration and -prefill must be positive")
	}
	q, rdb, err := c.open(ctx, *consumers)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}
	if err := prefillQueue(ctx, q, *prefill); err != nil {
		return err
	}

	// Every consumer takes a ticket before claiming, so no Claim ever
	// blocks on an empty list.
	var tickets, cycles atomic.Int64
	errs := make(chan error, *consumers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for range *consumers {
		wg.Go(func() {
			for time.Now().Before(deadline) && tickets.Add(1) <= int64(*prefill) {
				d, err := q.Claim(ctx, time.Second)
				if err != nil {
					errs <- err
					return
				}
				if err := q.Ack(ctx, d); err != nil {
					errs <- err
					return
				}
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	if st.Processing != 0 || st.Dead != 0 || st.Pending != int64(*prefill)-cycles.Load() {
		return fmt.Errorf("after %d cycles the queue is %+v, want pending=%d processing=0 dead=0",
			cycles.Load(), st, int64(*prefill)-cycles.Load())
	}
	n := cycles.Load()
	fmt.Fprintf(out, "consumers=%d cycles=%d seconds=%.3f per_sec=%.0f\n",
		*consumers, n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	return clearQueue(ctx, rdb, c.queue)
}

func execRuns(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	var c common
	c.register(fs)
	runs := fs.Int("runs", 20, "timed processes, run one after the other")
	rssRuns := fs.Int("rss-runs", 5, "further processes whose peak RSS is sampled (not timed: sampling costs CPU)")
	acked := fs.Bool("acked", false, "require the event to be acked (processing and dead lists empty), not only taken")
	dead := fs.Bool("dead", false, "require the event to be dead-lettered (with -payload-bytes above MAX_PAYLOAD_BYTES)")
	baseline := fs.Bool("baseline", false, "a baseline process that does not take the event (true, cat): no check, RSS optional")
	size := fs.Int("payload-bytes", 0, "pad the event to this many bytes")
	timeout := fs.Duration("timeout", 30*time.Second, "kill a process that runs longer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 || *runs < 1 || *rssRuns < 1 {
		return errors.New("exec: want -runs >= 1, -rss-runs >= 1 and a command after --")
	}
	q, rdb, err := c.open(ctx, 1)
	if err != nil {
		return err
	}
	defer rdb.Close()

	walls := make([]time.Duration, 0, *runs)
	var peakKiB int64
	for i := range *runs + *rssRuns {
		sample := i >= *runs
		if err := clearQueue(ctx, rdb, c.queue); err != nil {
			return err
		}
		payload := []byte(`{"wait":0}`)
		if *size > len(payload) {
			payload = fmt.Appendf(nil, `{"wait":0,"pad":"%s"}`, bytes.Repeat([]byte("x"), *size-len(`{"wait":0,"pad":""}`)))
		}
		if err := rdb.LPush(ctx, c.queue, payload).Err(); err != nil { // not PublishRaw: it refuses oversize payloads
			return err
		}
		wall, hwmKiB, err := runOnce(ctx, argv, c, *timeout, sample)
		if err != nil {
			return fmt.Errorf("run %d of %s: %w", i+1, argv[0], err)
		}
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Pending != 0 && !*baseline {
			return fmt.Errorf("run %d of %s exited but the event is still pending (%+v)", i+1, argv[0], st)
		}
		if *acked && (st.Processing != 0 || st.Dead != 0) {
			return fmt.Errorf("run %d of %s exited but the event was not acked (%+v)", i+1, argv[0], st)
		}
		if *dead && (st.Processing != 0 || st.Dead != 1) {
			return fmt.Errorf("run %d of %s exited but the event was not dead-lettered (%+v)", i+1, argv[0], st)
		}
		if sample {
			peakKiB = max(peakKiB, hwmKiB)
		} else {
			walls = append(walls, wall)
		}
	}
	if peakKiB == 0 && !*baseline {
		return fmt.Errorf("no VmHWM sample of %s: it exits before /proc/<pid>/status can be read", argv[0])
	}
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}
	slices.Sort(walls)
	fmt.Fprintf(out, "runs=%d median_ms=%.2f p90_ms=%.2f min_ms=%.2f max_ms=%.2f peak_rss_kib=%d\n",
		len(walls), ms(percentile(walls, 50)), ms(percentile(walls, 90)), ms(walls[0]), ms(walls[len(walls)-1]), peakKiB)
	return nil
}

// runOnce runs argv to completion and returns its wall time (exec to exit)
// and, with sampleRSS, its peak resident set size in KiB.
//
// The peak is the largest VmHWM read from /proc/<pid>/status every 200µs
// while the process lives (a lower bound, short by at most what it grows in
// its last 200µs). The child's rusage ru_maxrss would be simpler but wrong
// here: Go starts children with vfork, and exec records the parent's
// high-water mark as the child's maxrss, so every child would look as big as
// this helper.
func runOnce(ctx context.Context, argv []string, c common, timeout time.Duration, sampleRSS bool) (time.Duration, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "REDIS_ADDR="+c.addr, "QUEUE="+c.queue)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	start := time.Now()
	if err := cmd.Start(); err != nil { // returns once the exec succeeded
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	var hwm int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	if sampleRSS {
		go func() {
			defer close(sampled)
			status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
			t := time.NewTicker(200 * time.Microsecond)
			defer t.Stop()
			for {
				if kib, ok := readHWM(status); ok {
					hwm = max(hwm, kib)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
	} else {
		close(sampled)
	}
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return 0, 0, fmt.Errorf("%w; output:\n%s", err, output.String())
	}
	return wall, hwm, nil
}

// readHWM returns the VmHWM line of a /proc/<pid>/status file in KiB; false
// once the process has exited (a zombie has no memory lines).
func readHWM(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(b, []byte("\nVmHWM:"))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kib, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))), 10, 64)
	return kib, err == nil
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func reap(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reap", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 100000, "orphans to leave and recover")
	kind := fs.String("kind", "expired", "expired (leased, the job died) or unleased (claimed, the job died before the lease)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || (*kind != "expired" && *kind != "unleased") {
		return errors.New("reap: want -n >= 1 and -kind expired or unleased")
	}
	q, rdb, err := c.open(ctx, 16)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clearQueue(ctx, rdb, c.queue); err != nil {
		return err
	}
	if err := prefillQueue(ctx, q, *n); err != nil {
		return err
	}
	leases, tag := "{"+c.queue+"}:leases", "{"+c.queue+"}:claim:"
	switch *kind {
	case "expired": // real claims (BRPOPLPUSH + lease script), then their jobs "die": deadlines in the past
		var tickets atomic.Int64
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for tickets.Add(1) <= int64(*n) {
					if _, err := q.Claim(ctx, time.Second); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		tokens, err := rdb.ZRange(ctx, leases, 0, -1).Result()
		if err != nil {
			return err
		}
		for len(tokens) > 0 {
			k := min(len(tokens), 5000)
			pipe := rdb.Pipeline()
			for _, t := range tokens[:k] {
				pipe.ZAdd(ctx, leases, redis.Z{Score: 1, Member: t})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			tokens = tokens[k:]
		}
	case "unleased": // what a job killed between BRPOPLPUSH and the lease leaves (keys.go's layout)
		for i := 0; i < *n; i += 2000 {
			pipe := rdb.Pipeline()
			for j := i; j < min(i+2000, *n); j++ {
				tok := fmt.Sprintf("bench%08d", j)
				pipe.ZAdd(ctx, leases, redis.Z{Score: 1, Member: tok})
				pipe.BRPopLPush(ctx, c.queue, tag+tok, time.Second)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("orphan: %w", err)
			}
		}
	}
	if st, err := q.Stats(ctx); err != nil || st.Pending != 0 {
		return fmt.Errorf("before the reap the queue is %+v (%v), want nothing pending", st, err)
	}

	worstPing := func(d time.Duration, stop <-chan struct{}) (time.Duration, error) {
		p := redis.NewClient(&redis.Options{Addr: c.addr, MaxRetries: -1})
		defer p.Close()
		var worst time.Duration
		end := time.Now().Add(d)
		for {
			select {
			case <-stop:
				return worst, nil
			default:
			}
			if d > 0 && time.Now().After(end) {
				return worst, nil
			}
			t := time.Now()
			if err := p.Ping(ctx).Err(); err != nil {
				return 0, err
			}
			worst = max(worst, time.Since(t))
		}
	}
	for _, cmd := range [][]any{{"config", "set", "slowlog-log-slower-than", "0"}, {"config", "set", "slowlog-max-len", "100000"}, {"slowlog", "reset"}} {
		if err := rdb.Do(ctx, cmd...).Err(); err != nil {
			return err
		}
	}
	stop := make(chan struct{})
	pingc := make(chan error, 1)
	var during time.Duration
	go func() { var err error; during, err = worstPing(0, stop); pingc <- err }()
	start := time.Now()
	res, err := q.Reap(ctx)
	wall := time.Since(start)
	close(stop)
	if perr := <-pingc; perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	slow, err := rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		return err
	}
	var worstScript time.Duration
	for _, e := range slow {
		if len(e.Args) > 0 && (e.Args[0] == "evalsha" || e.Args[0] == "EVALSHA" || e.Args[0] == "eval" || e.Args[0] == "EVAL") {
			worstScript = max(worstScript, e.Duration)
		}
	}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "10000").Err(); err != nil {
		return err
	}
	idle, err := worstPing(wall, nil)
	if err != nil {
		return err
	}
	moved := res.Requeued + res.Rescued
	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	if moved != *n || st.Pending != int64(*n) || st.Processing != 0 || st.Claiming != 0 {
		return fmt.Errorf("reap moved %d of %d (%+v); queue %+v", moved, *n, res, st)
	}
	fmt.Fprintf(out, "kind=%s n=%d wall_ms=%.1f per_sec=%.0f batches=%d max_script_ms=%.2f worst_ping_ms=%.2f idle_worst_ping_ms=%.2f\n",
		*kind, *n, ms(wall), float64(*n)/wall.Seconds(), res.Batches, ms(worstScript), ms(during), ms(idle))
	return clearQueue(ctx, rdb, c.queue)
}
