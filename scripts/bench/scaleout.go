package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

// pickQueues chooses n queue names (hash tags) whose slots are served by n
// different masters of the cluster behind rdb: {bench-0}:q, {bench-1}:q, ...
// until each master has one.
func pickQueues(ctx context.Context, rdb *redis.ClusterClient, n int) ([]string, []string, error) {
	var names, masters []string
	seen := map[string]bool{}
	for i := 0; len(names) < n && i < 10000; i++ {
		name := fmt.Sprintf("{bench-%d}:q", i)
		m, err := rdb.MasterForKey(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("find the master of %s: %w", name, err)
		}
		if addr := m.Options().Addr; !seen[addr] {
			seen[addr] = true
			names, masters = append(names, name), append(masters, addr)
		}
	}
	if len(names) < n {
		return nil, nil, fmt.Errorf("the cluster has %d masters, want %d", len(names), n)
	}
	return names, masters, nil
}

// scaleOut measures the aggregate claim+ack rate of several queues at once:
// -consumers goroutines per queue, each claiming and acking until the
// pre-filled events of its queue run out or -duration passes. With -mode
// cluster it picks one queue per master (-queues n) and prints their names
// (queues=...); -mode standalone runs the same names (-names) on one
// server. Both go through queue.RedisConfig.NewClient, as the binaries do.
func scaleOut(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scaleout", flag.ContinueOnError)
	mode := fs.String("mode", "standalone", "standalone or cluster")
	addrs := fs.String("addr", "127.0.0.1:6379", "REDIS_ADDR: host:port, or the cluster's nodes comma-separated")
	nq := fs.Int("queues", 3, "cluster: queues to pick, one per master")
	names := fs.String("names", "", "standalone: comma-separated queue names (the cluster run's)")
	consumers := fs.Int("consumers", 4, "consumers per queue")
	dur := fs.Duration("duration", 3*time.Second, "how long to consume")
	prefill := fs.Int("prefill", 50000, "events published into each queue before the clock starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *consumers < 1 || *dur <= 0 || *prefill < 1 {
		return errors.New("scaleout: -consumers, -duration and -prefill must be positive")
	}
	rc := queue.RedisConfig{Mode: queue.RedisMode(*mode), Addr: queue.RedisAddr(*addrs), Timeout: 30 * time.Second}
	rdb, err := rc.NewClient()
	if err != nil {
		return err
	}
	defer rdb.Close()

	var queues, masters []string
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		if queues, masters, err = pickQueues(ctx, c, *nq); err != nil {
			return err
		}
	default:
		if *names == "" || strings.ContainsAny(*names, " ") {
			return errors.New("scaleout: -mode standalone needs -names (the queues the cluster run picked)")
		}
		queues = strings.Split(*names, ",")
	}
	qs := make([]*queue.Queue, len(queues))
	for i, name := range queues {
		if qs[i], err = queue.New(rdb, queue.Config{Name: name, LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}); err != nil {
			return err
		}
		if err := emptyQueue(ctx, rdb, name); err != nil {
			return err
		}
		batch := make([]queue.Event, 1000)
		for left := *prefill; left > 0; left -= len(batch) {
			if _, err := qs[i].Publish(ctx, batch[:min(left, len(batch))]...); err != nil {
				return fmt.Errorf("pre-fill %s: %w", name, err)
			}
		}
	}

	cpu0, err := serverCPU(ctx, rdb)
	if err != nil {
		return err
	}
	var cycles atomic.Int64
	errs := make(chan error, len(qs)**consumers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for _, q := range qs {
		var tickets atomic.Int64
		for range *consumers {
			wg.Go(func() {
				for time.Now().Before(deadline) && tickets.Add(1) <= int64(*prefill) {
					d, err := q.Claim(ctx, time.Second)
					if err == nil {
						err = q.Ack(ctx, d)
					}
					if err != nil {
						errs <- err
						return
					}
					cycles.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := serverCPU(ctx, rdb)
	if err != nil {
		return err
	}
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	// The busiest server's CPU time: what bounds the rate once the
	// servers, not the client or the machine, are the bottleneck.
	var busiest, total float64
	for addr, t := range cpu1 {
		d := t - cpu0[addr]
		busiest, total = max(busiest, d), total+d
	}
	var acked int64
	for _, q := range qs {
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Processing+st.Claiming+st.Dead > 0 {
			return fmt.Errorf("queue %s after the run: %+v, want nothing in flight or dead", q.Config().Name, st)
		}
		acked += st.Counters["acked"]
		if err := emptyQueue(ctx, rdb, q.Config().Name); err != nil {
			return err
		}
	}
	if acked != cycles.Load() {
		return fmt.Errorf("%d claim+ack cycles but the queues count %d acks", cycles.Load(), acked)
	}
	fmt.Fprintf(out, "mode=%s queues=%s masters=%s consumers_per_queue=%d cycles=%d seconds=%.3f per_sec=%.0f busiest_server_cpu_s=%.3f servers_cpu_s=%.3f per_busiest_cpu_s=%.0f\n",
		*mode, strings.Join(queues, ","), strings.Join(masters, ","), *consumers, acked, elapsed.Seconds(), float64(acked)/elapsed.Seconds(),
		busiest, total, float64(acked)/busiest)
	return nil
}

// serverCPU returns each master's CPU seconds so far (INFO cpu:
// used_cpu_sys + used_cpu_user).
func serverCPU(ctx context.Context, rdb redis.UniversalClient) (map[string]float64, error) {
	out := map[string]float64{}
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return fmt.Errorf("INFO cpu on %s: %w", c.Options().Addr, err)
		}
		var sum float64
		for _, line := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("INFO cpu on %s: %s=%q", c.Options().Addr, k, v)
				}
				sum += f
			}
		}
		mu.Lock()
		out[c.Options().Addr] = sum
		mu.Unlock()
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return out, c.ForEachMaster(ctx, read)
	case *redis.Client:
		return out, read(ctx, c)
	default:
		return nil, fmt.Errorf("scaleout: unexpected client %T", rdb)
	}
}

// emptyQueue deletes a queue with a hash tag ({bench-0}:q): the pending
// list and its derived keys, all in the tag's slot (one DEL).
func emptyQueue(ctx context.Context, rdb redis.UniversalClient, name string) error {
	keys := []string{name}
	for _, k := range []string{"leases", "claimed", "dead", "counters"} {
		keys = append(keys, name+":"+k)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("empty queue %s: %w", name, err)
	}
	return nil
}
