package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

// opsMem measures how much the operator's reads and a redrive grow a
// redis-server's peak memory (RSS, VmHWM of /proc/<pid>/status, reset
// through clear_refs after MEMORY PURGE and CONFIG RESETSTAT), next to a
// baseline: one LINDEX of the same largest entry by a plain client (Redis
// holds it once, in the reply). The cases of issue 15: 8 dead letters of
// 12 MiB with peek dead, inspect and redrive of one; 150 pending events of
// 1 MB with peek pending -n 150 and inspect. The server must be local (its
// pid) and is flushed.
//
//	bench opsmem -addr A -pid P
func opsMem(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("opsmem", flag.ContinueOnError)
	var c common
	c.register(fs)
	pid := fs.Int("pid", 0, "the redis-server's process id (local)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return fmt.Errorf("opsmem: -pid is required")
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1})
	defer rdb.Close()
	q, err := queue.New(rdb, queue.Config{Name: c.queue, LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 16 << 20})
	if err != nil {
		return err
	}
	m := memMeter{rdb: rdb, pid: *pid}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	pending, dead := c.queue, "{"+c.queue+"}:dead"

	var largest int
	for i := range 8 {
		id := fmt.Sprintf("big-%d", i)
		rec := deadLetterRecord(id, bigPayload(id, 12<<20))
		largest = max(largest, len(rec))
		if err := rdb.LPush(ctx, dead, rec).Err(); err != nil {
			return err
		}
	}
	var fields []string
	measure := func(name string, op func() error) error {
		g, err := m.around(ctx, op)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fields = append(fields, fmt.Sprintf("%s_rss_mib=%.1f", name, float64(g)/(1<<20)))
		return nil
	}
	steps := []struct {
		name string
		op   func() error
	}{
		{"baseline_lindex", func() error { return rdb.LIndex(ctx, dead, 3).Err() }},
		{"peek_dead", func() error { _, err := q.Peek(ctx, queue.LocDead, 10); return err }},
		{"inspect_dead", func() error { return find(ctx, q, "big-3", 1) }},
		{"redrive_dead", func() error {
			s, _ := queue.ParseSelector("big-2")
			_, err := q.Redrive(ctx, []queue.Selector{s}, false)
			return err
		}},
	}
	for _, s := range steps {
		if err := measure(s.name, s.op); err != nil {
			return err
		}
	}
	fields = append(fields, fmt.Sprintf("dead_largest_mib=%.1f", float64(largest)/(1<<20)))
	if err := rdb.Del(ctx, pending, dead).Err(); err != nil {
		return err
	}
	const mb = 1000 * 1000
	for i := range 150 {
		if err := rdb.LPush(ctx, pending, bigPayload(fmt.Sprintf("p-%d", i), mb)).Err(); err != nil {
			return err
		}
	}
	steps = steps[:0]
	steps = append(steps,
		struct {
			name string
			op   func() error
		}{"baseline_lindex_1mb", func() error { return rdb.LIndex(ctx, pending, 77).Err() }},
		struct {
			name string
			op   func() error
		}{"peek_pending_150", func() error { _, err := q.Peek(ctx, queue.LocPending, 150); return err }},
		struct {
			name string
			op   func() error
		}{"inspect_pending", func() error { return find(ctx, q, "p-77", 1) }},
	)
	for _, s := range steps {
		if err := measure(s.name, s.op); err != nil {
			return err
		}
	}
	fields = append(fields, fmt.Sprintf("pending_largest_mib=%.2f", float64(mb)/(1<<20)))
	_ = rdb.FlushAll(ctx).Err()
	fmt.Fprintln(out, strings.Join(fields, " "))
	return nil
}

func find(ctx context.Context, q *queue.Queue, id string, want int) error {
	s, err := queue.IDSelector(id)
	if err != nil {
		return err
	}
	es, err := q.Find(ctx, s)
	if err == nil && len(es) != want {
		err = fmt.Errorf("inspect %s found %d entries, want %d", id, len(es), want)
	}
	return err
}

func bigPayload(id string, size int) []byte {
	head := fmt.Sprintf(`{"id":%q,"wait":1,"pad":"`, id)
	p := make([]byte, 0, size)
	p = append(p, head...)
	p = append(p, bytes.Repeat([]byte("x"), size-len(head)-2)...)
	return append(p, `"}`...)
}

// deadLetterRecord is a dead letter as the jobs write one for a payload
// above MAX_PAYLOAD_BYTES.
func deadLetterRecord(id string, payload []byte) []byte {
	rec, _ := json.Marshal(map[string]any{
		"id": id, "reason": fmt.Sprintf("payload too large: %d bytes, above MAX_PAYLOAD_BYTES (1048576)", len(payload)),
		"attempts": 1, "dead_at": time.Now().UTC().Format(time.RFC3339Nano), "size": len(payload), "payload": string(payload),
	})
	return rec
}

// memMeter reads a local redis-server's peak RSS around an operation.
type memMeter struct {
	rdb *redis.Client
	pid int
}

func (m memMeter) around(ctx context.Context, op func() error) (int64, error) {
	for _, args := range [][]any{{"EVAL", "collectgarbage('collect') return 0", 0}, {"MEMORY", "PURGE"}, {"CONFIG", "RESETSTAT"}} {
		if err := m.rdb.Do(ctx, args...).Err(); err != nil {
			return 0, fmt.Errorf("%v: %w", args, err)
		}
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0); err != nil {
		return 0, fmt.Errorf("reset the peak RSS of redis-server %d: %w", m.pid, err)
	}
	base, err := procKB(m.pid, "VmRSS")
	if err != nil {
		return 0, err
	}
	if err := op(); err != nil {
		return 0, err
	}
	peak, err := procKB(m.pid, "VmHWM")
	return (peak - base) << 10, err
}

func procKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
