// Command fatebench is the measuring helper of scripts/bench-fate.sh (done
// records and redis-keda publish):
//
//	fatebench lines -n 1000000 -size 100 [-noid]
//	    writes n JSON lines of exactly size bytes to stdout, each with its
//	    own "id" (or, -noid, without one)
//	fatebench acks -addr A -n 100000 -rounds 3
//	    claim + ack of n events, done records off (DONE_MAX_RECORDS=0) and
//	    on (kept: bound above n), alternating rounds; prints the acks/s of
//	    the ack calls alone for each, then, after the last "on" round, the
//	    done records' memory: MEMORY USAGE of the two keys and the INFO
//	    used_memory drop when they are deleted, per event
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fatebench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: fatebench lines|acks [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	n := fs.Int("n", 100000, "events")
	size := fs.Int("size", 100, "bytes per line")
	noID := fs.Bool("noid", false, "lines without an id")
	addr := fs.String("addr", "", "redis address")
	rounds := fs.Int("rounds", 3, "rounds of each arm")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "lines":
		return lines(*n, *size, *noID)
	case "acks":
		return acks(*addr, *n, *rounds)
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func lines(n, size int, noID bool) error {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for i := range n {
		head := fmt.Sprintf(`{"id":"e%08d","pad":"`, i)
		if noID {
			head = fmt.Sprintf(`{"n":%9d,"pad":"`, i)
		}
		pad := size - len(head) - 2
		if pad < 0 {
			return fmt.Errorf("-size %d is below %d", size, len(head)+2)
		}
		w.WriteString(head)
		w.WriteString(strings.Repeat("x", pad))
		w.WriteString("\"}\n")
	}
	return w.Flush()
}

const pod = "redis-keda-jobs-x7k2p-8c9dz" // a realistic ScaledJob pod name

func acks(addr string, n, rounds int) error {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	base := queue.Config{Name: "fatebench", LeaseDuration: time.Minute, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20}
	for r := 1; r <= rounds; r++ {
		for _, on := range []bool{false, true} {
			cfg := base
			if on {
				cfg.DoneMaxRecords, cfg.DoneMaxAge = 10*n, 24*time.Hour
			}
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				return err
			}
			q, err := queue.New(rdb, cfg)
			if err != nil {
				return err
			}
			evs := make([]queue.Event, 0, 1000)
			for i := 0; i < n; i += 1000 {
				evs = evs[:0]
				for j := i; j < min(i+1000, n); j++ {
					evs = append(evs, queue.Event{Wait: 0})
				}
				if _, err := q.Publish(ctx, evs...); err != nil {
					return err
				}
			}
			var inAck time.Duration
			for range n {
				d, err := q.ClaimWith(ctx, queue.ClaimOptions{Timeout: time.Second, Pod: pod, AnyPayload: true})
				if err != nil {
					return err
				}
				t0 := time.Now()
				if err := q.Ack(ctx, d); err != nil {
					return err
				}
				inAck += time.Since(t0)
			}
			arm := "off"
			if on {
				arm = "on"
			}
			fmt.Printf("round=%d done_records=%s acks=%d ack_seconds=%.3f acks_per_s=%.0f\n", r, arm, n, inAck.Seconds(), float64(n)/inAck.Seconds())
		}
	}
	// Memory of the last "on" round's records (n kept).
	keys := []string{"{fatebench}:done", "{fatebench}:done:order"}
	var usage int64
	for _, k := range keys {
		u, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		usage += u
	}
	sample := rdb.HRandFieldWithValues(ctx, keys[0], 1).Val()
	if len(sample) == 1 {
		fmt.Printf("sample_record id=%s value=%s value_bytes=%d\n", sample[0].Key, sample[0].Value, len(sample[0].Value))
	}
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		return err
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Printf("done_records=%d memory_usage_bytes=%d per_event=%.1f used_memory_drop_bytes=%d per_event=%.1f\n",
		n, usage, float64(usage)/float64(n), before-after, float64(before-after)/float64(n))
	return nil
}

var usedRe = regexp.MustCompile(`(?m)^used_memory:(\d+)`)

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	m := usedRe.FindStringSubmatch(info)
	if m == nil {
		return 0, errors.New("no used_memory in INFO memory")
	}
	return strconv.ParseInt(m[1], 10, 64)
}
