package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// memProbe measures how much a redis-server's memory grows during an
// operation: the peak resident set (VmHWM of /proc/<pid>/status, reset
// through /proc/<pid>/clear_refs), which counts what maxmemory does not —
// Lua's copies, client buffers —, and INFO's used_memory_peak (jemalloc) and
// used_memory_lua.
type memProbe struct {
	t       *testing.T
	rdb     *redis.Client
	pid     int
	baseRSS int64 // bytes
	base    int64 // used_memory, bytes
}

// memGrowth is what an operation added on top of the baseline, in bytes.
type memGrowth struct {
	RSS     int64 // peak RSS - RSS at the start
	Used    int64 // used_memory_peak - used_memory at the start
	LuaLeft int64 // used_memory_lua after the operation
}

func (g memGrowth) String() string {
	return fmt.Sprintf("peak RSS +%.1f MiB, used_memory_peak +%.1f MiB, used_memory_lua after %.1f MiB",
		float64(g.RSS)/(1<<20), float64(g.Used)/(1<<20), float64(g.LuaLeft)/(1<<20))
}

func newMemProbe(t *testing.T, rdb *redis.Client) *memProbe {
	t.Helper()
	pid, err := strconv.Atoi(infoField(t, rdb, "server", "process_id"))
	if err != nil {
		t.Fatalf("INFO process_id: %v", err)
	}
	return &memProbe{t: t, rdb: rdb, pid: pid}
}

// start sets the baseline: Lua garbage collected, jemalloc's dirty pages
// returned (MEMORY PURGE), INFO's peak and the process's peak RSS reset.
func (m *memProbe) start() {
	m.t.Helper()
	ctx := context.Background()
	for _, args := range [][]any{{"EVAL", "collectgarbage('collect') return 0", 0}, {"MEMORY", "PURGE"}, {"CONFIG", "RESETSTAT"}} {
		if err := m.rdb.Do(ctx, args...).Err(); err != nil {
			m.t.Fatalf("%v: %v", args, err)
		}
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0); err != nil {
		m.t.Fatalf("reset the peak RSS of redis-server: %v", err)
	}
	m.baseRSS = m.status("VmRSS")
	m.base = m.info("used_memory")
}

func (m *memProbe) stop() memGrowth {
	m.t.Helper()
	return memGrowth{RSS: m.status("VmHWM") - m.baseRSS, Used: m.info("used_memory_peak") - m.base, LuaLeft: m.info("used_memory_lua")}
}

func (m *memProbe) info(field string) int64 {
	m.t.Helper()
	n, err := strconv.ParseInt(infoField(m.t, m.rdb, "memory", field), 10, 64)
	if err != nil {
		m.t.Fatalf("INFO %s: %v", field, err)
	}
	return n
}

// status reads a "kB" field of /proc/<pid>/status, in bytes.
func (m *memProbe) status(field string) int64 {
	m.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		m.t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				m.t.Fatalf("%s %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	m.t.Fatalf("no %s in /proc/%d/status", field, m.pid)
	return 0
}

func infoField(t testing.TB, rdb *redis.Client, section, field string) string {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("no %s in INFO %s", field, section)
	return ""
}

// opsMemConst is the "small constant" of the bound on an operator read's
// memory: Redis's peak grows by at most 2x the largest entry plus this (the
// page replies, bounded by scanPageBytes, the Lua garbage under luaDrop's
// 1 MiB, allocator slack).
const opsMemConst = 8 << 20

// Every operator read (peek, inspect) and redrive grows Redis's peak memory
// by at most 2x the largest single entry plus a small constant, whatever
// the number of entries: they copy one entry at a time into Lua. The
// adversary's cases of issue 15: 8 dead letters of 12 MiB (the jobs' own
// "payload too large" dead letters) with peek dead, inspect and redrive,
// and 150 pending events of 1 MB with peek pending -n 150 and inspect.
// Before, Redis copied whole pages: peak RSS +192 MiB for peek dead.
//
// With AOF (as the in-cluster Redis runs) a redrive, which writes the
// payload, also has Redis copy it into the AOF buffer: there its bound is
// what writing that payload costs at all — a plain client's LPUSH of it,
// measured in the same run — plus the constant.
func TestOperatorReadsHoldOneEntryAtATime(t *testing.T) {
	for _, aof := range []bool{false, true} {
		t.Run(fmt.Sprintf("aof=%v", aof), func(t *testing.T) {
			var opts []redistest.Option
			if aof {
				opts = append(opts, redistest.WithAOF())
			}
			testOperatorReadsMemory(t, redistest.Start(t, opts...), aof)
		})
	}
}

func testOperatorReadsMemory(t *testing.T, srv *redistest.Server, aof bool) {
	// Entries of 12 MiB take a while to move on a busy machine: this test
	// measures memory, not latency, so its client waits long.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, MaxRetries: -1,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	t.Cleanup(func() { _ = client.Close() })
	q, rdb := newQueueOn(t, client, func(c *Config) { c.MaxPayloadBytes = 16 << 20 })
	ctx := context.Background()
	probe := newMemProbe(t, rdb)

	bigPayload := func(id string, size int) []byte {
		head := fmt.Sprintf(`{"id":%q,"wait":1,"pad":"`, id)
		p := make([]byte, 0, size)
		p = append(p, head...)
		p = append(p, bytes.Repeat([]byte("x"), size-len(head)-2)...)
		return append(p, `"}`...)
	}
	measure := func(op func()) memGrowth {
		t.Helper()
		probe.start()
		op()
		return probe.stop()
	}
	check := func(name string, largest int, bound int64, op func()) {
		t.Helper()
		g := measure(op)
		t.Logf("%s: %s; bound %.1f MiB (largest entry %.1f MiB)", name, g, float64(bound)/(1<<20), float64(largest)/(1<<20))
		if g.RSS > bound {
			t.Errorf("%s: Redis's peak RSS grew by %.1f MiB, above its bound %.1f MiB", name, float64(g.RSS)/(1<<20), float64(bound)/(1<<20))
		}
		if g.LuaLeft > 4<<20 {
			t.Errorf("%s: %.1f MiB of Lua memory left after it, want < 4 MiB (copies collected)", name, float64(g.LuaLeft)/(1<<20))
		}
	}
	twice := func(largest int) int64 { return 2*int64(largest) + opsMemConst }

	// 8 dead letters of 12 MiB.
	var largest int
	for i := range 8 {
		rec := deadRecord(fmt.Sprintf("big-%d", i), "payload too large: 12582912 bytes, above MAX_PAYLOAD_BYTES", 1, bigPayload(fmt.Sprintf("big-%d", i), 12<<20))
		largest = max(largest, len(rec))
		if err := rdb.LPush(ctx, q.dead, rec).Err(); err != nil {
			t.Fatal(err)
		}
	}
	check("peek dead (8 x 12 MiB)", largest, twice(largest), func() {
		es, err := q.Peek(ctx, LocDead, 10)
		if err != nil || len(es) != 8 || es[0].ID != "big-7" || es[7].ID != "big-0" || !es[0].Truncated || len(es[0].Payload) < 60<<10 {
			t.Fatalf("peek dead: %d entries, %v", len(es), err)
		}
	})
	check("inspect big-3 (a 12 MiB dead letter)", largest, twice(largest), func() {
		es, err := q.Find(ctx, sel(t, "big-3"))
		if err != nil || len(es) != 1 || len(es[0].Payload) != 12<<20 || es[0].Truncated {
			t.Fatalf("find big-3: %d entries, %v", len(es), err)
		}
	})
	redriveBound := twice(largest)
	if aof {
		write := measure(func() {
			if err := rdb.LPush(ctx, "scratch", bigPayload("w", 12<<20)).Err(); err != nil {
				t.Fatal(err)
			}
		})
		if err := rdb.Del(ctx, "scratch").Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("baseline, a plain LPUSH of a 12 MiB payload: %s", write)
		redriveBound = max(redriveBound, write.RSS+opsMemConst)
	}
	check("redrive big-2 (a 12 MiB dead letter)", largest, redriveBound, func() {
		res, err := q.Redrive(ctx, sels(t, "big-2"), false)
		if err != nil || len(res.Moved) != 1 {
			t.Fatalf("redrive big-2: %+v, %v", res, err)
		}
	})
	if n := rdb.LLen(ctx, q.dead).Val(); n != 7 {
		t.Fatalf("dead list holds %d after the redrive, want 7", n)
	}
	if err := rdb.Del(ctx, q.dead, q.pending).Err(); err != nil {
		t.Fatal(err)
	}

	// 150 pending events of 1 MB.
	const mb = 1000 * 1000
	for i := range 150 {
		if err := rdb.LPush(ctx, q.pending, bigPayload(fmt.Sprintf("p-%d", i), mb)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	check("peek pending -n 150 (150 x 1 MB)", mb, twice(mb), func() {
		es, err := q.Peek(ctx, LocPending, 150)
		if err != nil || len(es) != 150 || es[0].ID != "p-0" || es[149].ID != "p-149" {
			t.Fatalf("peek pending: %d entries, %v", len(es), err)
		}
	})
	check("inspect p-77 (150 x 1 MB pending)", mb, twice(mb), func() {
		es, err := q.Find(ctx, sel(t, "p-77"))
		if err != nil || len(es) != 1 || len(es[0].Payload) != mb || es[0].Position != 78 {
			t.Fatalf("find p-77: %d entries, %v", len(es), err)
		}
	})
}
