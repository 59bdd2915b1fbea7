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
//	bench exec -addr A -runs 20 [-acked] -- cmd args...
//	    pushes one {"wait":0} event, runs cmd (REDIS_ADDR and QUEUE set in
//	    its environment), checks the event was taken (and acked, with
//	    -acked); wall time exec->exit (median, p90) over -runs, then peak
//	    RSS (VmHWM sampled from /proc, no extra tool) over -rss-runs more
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
		return errors.New("usage: bench free-port|payload-size|publish|claimack|exec [flags]")
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
	default:
		return fmt.Errorf("unknown subcommand %q: want free-port, payload-size, publish, claimack or exec", args[0])
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
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
	})
	q, err := queue.New(rdb, queue.Config{Name: c.queue, LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour})
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

// clearQueue deletes every key of the queue.
func clearQueue(ctx context.Context, rdb *redis.Client, name string) error {
	keys := []string{name}
	for _, k := range []string{"processing", "leases", "attempts", "dead", "unleased"} {
		keys = append(keys, "{"+name+"}:"+k)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("clear queue %s: %w", name, err)
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
	batch := make([]queue.Event, 1000)
	for left := *prefill; left > 0; left -= len(batch) {
		if _, err := q.Publish(ctx, batch[:min(left, len(batch))]...); err != nil {
			return fmt.Errorf("pre-fill: %w", err)
		}
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
		if err := q.PublishRaw(ctx, []byte(`{"wait":0}`)); err != nil {
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
		if st.Pending != 0 {
			return fmt.Errorf("run %d of %s exited but the event is still pending (%+v)", i+1, argv[0], st)
		}
		if *acked && (st.Processing != 0 || st.Dead != 0) {
			return fmt.Errorf("run %d of %s exited but the event was not acked (%+v)", i+1, argv[0], st)
		}
		if sample {
			peakKiB = max(peakKiB, hwmKiB)
		} else {
			walls = append(walls, wall)
		}
	}
	if peakKiB == 0 {
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
