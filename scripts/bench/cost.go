// cost: what Redis spends per event (issue 19), ours against the textbook
// reliable queue (redis.io "Pattern: Reliable queue": LPUSH, BRPOPLPUSH to a
// processing list, LREM) on the same server in the same run.
//
// Per stage of an event's life, over -events events one after the other:
//
//	round trips  commands the client sent (a go-redis hook counts them: one
//	             per command, one per pipeline), per event
//	commands     commands Redis executed (INFO commandstats calls, the
//	             commands run inside our Lua scripts included), per event
//	usec         Redis's time executing them (commandstats usec of the
//	             commands the client sent: a script's usec covers the
//	             commands it ran), per event
//	cpu          Redis's process CPU (INFO used_cpu_user + used_cpu_sys,
//	             which also counts reading, parsing and replying), per event
//
// The stages: publish (queue.Publish of one event), claim (queue.Claim: the
// token's registration, BRPOPLPUSH, the lease), heartbeat (one
// queue.Heartbeat; a job sends one every LEASE_DURATION/3), ack (queue.Ack);
// KEDA's poll (the EVAL of KEDA v2.21's redis scaler script, TYPE then LLEN,
// pkg/scalers/redis_scaler.go) is per poll, not per event, and is the same
// for both queues. Memory: MEMORY USAGE (SAMPLES 0) of the real keys with
// -events events pending, then in flight, then acked, against the textbook's
// pending and processing lists holding the same payloads.
//
// -jobs runs the jobs binary (-job-runs processes, one event each, with
// LEASE_DURATION so that it heartbeats) while a MONITOR connection records
// what every process sent: the whole life of one Job process as Redis saw
// it, connection handshake included.
package main

import (
	"bufio"
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
	"strings"
	"sync"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

// kedaListScript is KEDA v2.21.0's redis scaler script, byte for byte
// (pkg/scalers/redis_scaler.go, NewRedisScaler), run with EVAL once per
// poll per ScaledJob.
const kedaListScript = `
		local listName = KEYS[1]
		local listType = redis.call('type', listName).ok
		if listType == 'zset' then
			return redis.call('zcard', listName)
		elseif listType == 'set' then
			return redis.call('scard', listName)
		elseif listType == 'hash' then
			return redis.call('hlen', listName)
		elseif listType == 'list' or listType == 'none' then
			return redis.call('llen', listName)
		else
			return redis.error_reply('ERR unsupported key type: ' .. listType)
		end
	`

// tripCounter is a go-redis hook counting round trips and the names of the
// commands sent.
type tripCounter struct {
	mu    sync.Mutex
	trips int
	sent  map[string]int
}

func (h *tripCounter) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trips, h.sent = 0, map[string]int{}
}

func (h *tripCounter) snapshot() (int, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.trips, maps(h.sent)
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (h *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.trips++
		h.sent[strings.ToLower(cmd.Name())]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.trips++
		for _, c := range cmds {
			h.sent[strings.ToLower(c.Name())]++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// stageCost is what one stage cost Redis in total.
type stageCost struct {
	trips    int
	commands int64   // executed, inside scripts included
	usec     int64   // of the commands sent
	cpuSec   float64 // used_cpu_user + used_cpu_sys
	sent     map[string]int
	executed map[string]int64
}

// measurer runs a stage between CONFIG RESETSTAT and INFO.
type measurer struct {
	admin *redis.Client // not hooked: its commands are not counted
	hook  *tripCounter
}

func (c *stageCost) add(o stageCost) {
	c.trips += o.trips
	c.commands += o.commands
	c.usec += o.usec
	c.cpuSec += o.cpuSec
	if c.sent == nil {
		c.sent, c.executed = map[string]int{}, map[string]int64{}
	}
	for k, v := range o.sent {
		c.sent[k] += v
	}
	for k, v := range o.executed {
		c.executed[k] += v
	}
}

func (m *measurer) stage(ctx context.Context, f func() error) (stageCost, error) {
	if err := m.admin.ConfigResetStat(ctx).Err(); err != nil {
		return stageCost{}, fmt.Errorf("CONFIG RESETSTAT: %w", err)
	}
	cpu0, err := m.cpu(ctx)
	if err != nil {
		return stageCost{}, err
	}
	m.hook.reset()
	if err := f(); err != nil {
		return stageCost{}, err
	}
	trips, sent := m.hook.snapshot()
	cpu1, err := m.cpu(ctx)
	if err != nil {
		return stageCost{}, err
	}
	calls, usec, err := m.commandStats(ctx)
	if err != nil {
		return stageCost{}, err
	}
	c := stageCost{trips: trips, cpuSec: cpu1 - cpu0, sent: sent, executed: map[string]int64{}}
	for name, n := range calls {
		if name == "info" || name == "config|resetstat" { // ours, on the admin connection
			continue
		}
		c.commands += n
		c.executed[name] = n
		if sent[name] > 0 {
			c.usec += usec[name]
		}
	}
	return c, nil
}

func (m *measurer) cpu(ctx context.Context) (float64, error) {
	s, err := m.admin.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	var total float64
	for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
		v, ok := infoField(s, f)
		if !ok {
			return 0, fmt.Errorf("INFO cpu has no %s", f)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %s%s: %w", f, v, err)
		}
		total += x
	}
	return total, nil
}

func infoField(info, prefix string) (string, bool) {
	for l := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v, true
		}
	}
	return "", false
}

// commandStats: calls and usec per command since CONFIG RESETSTAT
// (cmdstat_evalsha:calls=3,usec=41,...).
func (m *measurer) commandStats(ctx context.Context) (calls, usec map[string]int64, err error) {
	s, err := m.admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	calls, usec = map[string]int64{}, map[string]int64{}
	for l := range strings.SplitSeq(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				calls[name] = n
			case "usec":
				usec[name] = n
			}
		}
	}
	return calls, usec, nil
}

// memoryOf sums MEMORY USAGE (SAMPLES 0: every element) of the keys.
func memoryOf(ctx context.Context, rdb *redis.Client, keys ...string) (int64, error) {
	var total int64
	for _, k := range keys {
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if errors.Is(err, redis.Nil) {
			continue // no such key
		}
		if err != nil {
			return 0, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		total += n
	}
	return total, nil
}

// keysOf lists a queue's keys: the pending list and every "{name}:" key.
func keysOf(ctx context.Context, rdb *redis.Client, name string) ([]string, error) {
	keys, err := rdb.Keys(ctx, "{"+name+"}:*").Result()
	if err != nil {
		return nil, fmt.Errorf("list keys of queue %s: %w", name, err)
	}
	return append(keys, name), nil
}

func queueMemory(ctx context.Context, rdb *redis.Client, name string) (int64, error) {
	keys, err := keysOf(ctx, rdb, name)
	if err != nil {
		return 0, err
	}
	return memoryOf(ctx, rdb, keys...)
}

func costCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("events", 2000, "events through each stage, one after the other")
	inflight := fs.Int("inflight", 40, "events in flight at once (Jobs running: maxReplicaCount)")
	polls := fs.Int("polls", 2000, "KEDA polls (EVAL of KEDA's script)")
	jobs := fs.String("jobs", "", "the jobs binary: also record what -job-runs processes send (MONITOR)")
	jobRuns := fs.Int("job-runs", 10, "jobs processes for -jobs, one event each")
	jobWait := fs.Duration("job-wait", 2500*time.Millisecond, "each -jobs event's wait")
	jobLease := fs.Duration("job-lease", 3*time.Second, "LEASE_DURATION of the -jobs processes (a heartbeat every third of it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *inflight < 1 || *polls < 1 || *jobRuns < 1 {
		return errors.New("cost: -events, -inflight, -polls and -job-runs must be positive")
	}
	hook := &tripCounter{sent: map[string]int{}}
	rdb := redis.NewClient(&redis.Options{Addr: c.addr, PoolSize: 1, MaxRetries: -1, ReadTimeout: 30 * time.Second})
	defer rdb.Close()
	rdb.AddHook(hook)
	admin := redis.NewClient(&redis.Options{Addr: c.addr, PoolSize: 1, MaxRetries: -1})
	defer admin.Close()
	q, err := queue.New(rdb, queue.Config{Name: c.queue, LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		return err
	}
	const tb = "textbook"
	tbProc := tb + ":processing"
	for _, name := range []string{c.queue, tb} {
		if err := clearQueue(ctx, admin, name); err != nil {
			return err
		}
	}
	if err := admin.Del(ctx, tbProc).Err(); err != nil {
		return fmt.Errorf("clear %s: %w", tbProc, err)
	}
	m := &measurer{admin: admin, hook: hook}

	// The same payload bytes for both queues: the publisher's event, with
	// an id per event.
	events := make([]queue.Event, *n)
	payloads := make([][]byte, *n)
	for i := range events {
		e := sampleEvent()
		e.ID = fmt.Sprintf("%016d", i)
		events[i] = e
		payloads[i] = e.Marshal()
	}

	// Warm-up, not measured: the scripts loaded (a job in production finds
	// them in Redis's script cache, loaded by the jobs before it) and the
	// connection made.
	if _, err := q.Publish(ctx, sampleEvent()); err != nil {
		return err
	}
	d, err := q.Claim(ctx, time.Second)
	if err != nil {
		return fmt.Errorf("warm-up claim: %w", err)
	}
	if err := q.Heartbeat(ctx, d); err != nil {
		return err
	}
	if err := q.Ack(ctx, d); err != nil {
		return err
	}
	if err := rdb.Eval(ctx, kedaListScript, []string{c.queue}).Err(); err != nil {
		return fmt.Errorf("warm-up KEDA poll: %w", err)
	}
	base, err := queueMemory(ctx, admin, c.queue) // counters, finished marker of the warm-up
	if err != nil {
		return err
	}

	type row struct {
		name      string
		ours, txt stageCost
		perPoll   bool
	}
	var rows []row
	var mem struct {
		pendOurs, pendTxt, flightOurs, flightTxt, ackedOurs, ackedTxt int64
		flightN                                                       int
	}

	// publish
	ours, err := m.stage(ctx, func() error {
		for _, e := range events {
			if _, err := q.Publish(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	txt, err := m.stage(ctx, func() error {
		for _, p := range payloads {
			if err := rdb.LPush(ctx, tb, p).Err(); err != nil {
				return fmt.Errorf("LPUSH: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("textbook publish: %w", err)
	}
	rows = append(rows, row{name: "publish", ours: ours, txt: txt})
	if mem.pendOurs, err = queueMemory(ctx, admin, c.queue); err != nil {
		return err
	}
	mem.pendOurs -= base
	if mem.pendTxt, err = memoryOf(ctx, admin, tb); err != nil {
		return err
	}

	// KEDA's poll on a full list (the same script for both queues).
	poll, err := m.stage(ctx, func() error {
		for range *polls {
			if err := rdb.Eval(ctx, kedaListScript, []string{c.queue}).Err(); err != nil {
				return fmt.Errorf("KEDA's EVAL: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	// claim, heartbeat, ack: in rounds of -inflight events, as many as
	// there are Jobs at once (maxReplicaCount); the memory in flight is
	// read in the first round.
	var claimO, claimT, hbO, ackO, ackT stageCost
	first := true
	for done := 0; done < *n; done += *inflight {
		k := min(*inflight, *n-done)
		ds := make([]*queue.Delivery, 0, k)
		o, err := m.stage(ctx, func() error {
			for range k {
				d, err := q.Claim(ctx, time.Second)
				if err != nil {
					return fmt.Errorf("claim: %w", err)
				}
				ds = append(ds, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		claimO.add(o)
		taken := make([]string, 0, k)
		t, err := m.stage(ctx, func() error {
			for range k {
				//lint:ignore SA1019 the textbook pattern's command, the one our claim sends too
				v, err := rdb.BRPopLPush(ctx, tb, tbProc, time.Second).Result()
				if err != nil {
					return fmt.Errorf("BRPOPLPUSH: %w", err)
				}
				taken = append(taken, v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		claimT.add(t)
		if first {
			first = false
			// What the in-flight events add: the queue's keys now, less
			// the pending list still holding the others (and the base).
			all, err := queueMemory(ctx, admin, c.queue)
			if err != nil {
				return err
			}
			pend, err := memoryOf(ctx, admin, c.queue)
			if err != nil {
				return err
			}
			mem.flightOurs = all - pend - base
			if mem.flightTxt, err = memoryOf(ctx, admin, tbProc); err != nil {
				return err
			}
			mem.flightN = k
		}
		// heartbeat (the textbook queue has none: its processing list has
		// no deadline, "additional clients may monitor" it)
		o, err = m.stage(ctx, func() error {
			for _, d := range ds {
				if err := q.Heartbeat(ctx, d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		hbO.add(o)
		o, err = m.stage(ctx, func() error {
			for _, d := range ds {
				if err := q.Ack(ctx, d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		ackO.add(o)
		t, err = m.stage(ctx, func() error {
			for _, v := range taken { // in the order taken, as jobs finish
				if err := rdb.LRem(ctx, tbProc, 1, v).Err(); err != nil {
					return fmt.Errorf("LREM: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		ackT.add(t)
	}
	rows = append(rows, row{name: "claim", ours: claimO, txt: claimT},
		row{name: "heartbeat (each)", ours: hbO}, row{name: "ack", ours: ackO, txt: ackT})
	if mem.ackedOurs, err = queueMemory(ctx, admin, c.queue); err != nil {
		return err
	}
	mem.ackedOurs -= base
	if mem.ackedTxt, err = memoryOf(ctx, admin, tb, tbProc); err != nil {
		return err
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	if st.Pending != 0 || st.Processing != 0 || st.Dead != 0 {
		return fmt.Errorf("after the run the queue is %+v, want empty", st)
	}
	rows = append(rows, row{name: "KEDA poll (per poll)", ours: poll, txt: poll, perPoll: true})

	// The report: one key=value line per stage, then the totals.
	per := func(x int64, k int) float64 { return float64(x) / float64(k) }
	var tot struct{ o, t stageCost }
	for _, r := range rows {
		k := *n
		if r.perPoll {
			k = *polls
		}
		fmt.Fprintf(out, "stage=%q trips_ours=%.2f trips_textbook=%.2f cmds_ours=%.2f cmds_textbook=%.2f usec_ours=%.2f usec_textbook=%.2f cpu_us_ours=%.2f cpu_us_textbook=%.2f sent_ours=%s executed_ours=%s\n",
			r.name, per(int64(r.ours.trips), k), per(int64(r.txt.trips), k), per(r.ours.commands, k), per(r.txt.commands, k),
			per(r.ours.usec, k), per(r.txt.usec, k), r.ours.cpuSec*1e6/float64(k), r.txt.cpuSec*1e6/float64(k),
			names(r.ours.sent, k), names64(r.ours.executed, k))
		if !r.perPoll {
			tot.o.trips += r.ours.trips
			tot.o.commands += r.ours.commands
			tot.o.usec += r.ours.usec
			tot.o.cpuSec += r.ours.cpuSec
			tot.t.trips += r.txt.trips
			tot.t.commands += r.txt.commands
			tot.t.usec += r.txt.usec
			tot.t.cpuSec += r.txt.cpuSec
		}
	}
	fmt.Fprintf(out, "total_1hb trips_ours=%.2f trips_textbook=%.2f usec_ours=%.2f usec_textbook=%.2f cpu_us_ours=%.2f cpu_us_textbook=%.2f\n",
		per(int64(tot.o.trips), *n), per(int64(tot.t.trips), *n), per(tot.o.usec, *n), per(tot.t.usec, *n),
		tot.o.cpuSec*1e6/float64(*n), tot.t.cpuSec*1e6/float64(*n))
	fmt.Fprintf(out, "memory events=%d inflight=%d payload_bytes=%d pending_ours=%.1f pending_textbook=%.1f inflight_ours=%.1f inflight_textbook=%.1f acked_ours=%.1f acked_textbook=%.1f\n",
		*n, mem.flightN, len(payloads[0]), per(mem.pendOurs, *n), per(mem.pendTxt, *n), per(mem.flightOurs, mem.flightN), per(mem.flightTxt, mem.flightN),
		per(mem.ackedOurs, *n), per(mem.ackedTxt, *n))

	if *jobs != "" {
		line, err := monitorJobs(ctx, c, q, *jobs, *jobRuns, *jobWait, *jobLease)
		if err != nil {
			return fmt.Errorf("jobs under MONITOR: %w", err)
		}
		fmt.Fprintln(out, line)
	}
	return clearQueue(ctx, admin, c.queue)
}

// names renders per-event counts of commands: evalsha:3.00,brpoplpush:1.00.
func names(m map[string]int, k int) string {
	m64 := make(map[string]int64, len(m))
	for n, v := range m {
		m64[n] = int64(v)
	}
	return names64(m64, k)
}

func names64(m map[string]int64, k int) string {
	keys := make([]string, 0, len(m))
	for n, v := range m {
		if v != 0 {
			keys = append(keys, n)
		}
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, n := range keys {
		parts = append(parts, fmt.Sprintf("%s:%.2f", n, float64(m[n])/float64(k)))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// monitorJobs runs the jobs binary runs times, one event each, while a
// MONITOR connection records every command; it returns the commands each
// process sent (top level, by name) and those its scripts ran, per process.
func monitorJobs(ctx context.Context, c common, q *queue.Queue, bin string, runs int, wait, lease time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial for MONITOR: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		return "", fmt.Errorf("MONITOR: %w", err)
	}
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || l != "+OK\r\n" {
		return "", fmt.Errorf("MONITOR answered %q, %v", l, err)
	}
	type feed struct {
		sent, scripted map[string]int
		clients        map[string]bool
	}
	f := feed{sent: map[string]int{}, scripted: map[string]int{}, clients: map[string]bool{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return // the connection closed below
			}
			// +1733400000.123456 [0 127.0.0.1:5555] "evalsha" "..." ...
			_, rest, ok := strings.Cut(l, " [")
			if !ok {
				continue
			}
			who, cmd, ok := strings.Cut(rest, "] ")
			if !ok {
				continue
			}
			name := strings.ToLower(strings.Trim(strings.SplitN(cmd, " ", 2)[0], "\"\r\n"))
			mu.Lock()
			if strings.HasSuffix(who, " lua") {
				f.scripted[name]++
			} else {
				f.sent[name]++
				f.clients[who] = true
			}
			mu.Unlock()
		}
	})
	var ferr error
	for i := range runs {
		if _, err := q.Publish(ctx, queue.Event{ID: fmt.Sprintf("job-%d", i), Wait: wait}); err != nil {
			ferr = err
			break
		}
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), "REDIS_ADDR="+c.addr, "QUEUE="+c.queue, "LEASE_DURATION="+lease.String(),
			"CLAIM_TIMEOUT=2s", "LOG_LEVEL=warn")
		if o, err := cmd.CombinedOutput(); err != nil {
			ferr = fmt.Errorf("%s: %w\n%s", bin, err, o)
			break
		}
	}
	// The publishes went through MONITOR too: subtract them below. Let the
	// feed catch up, then close it.
	time.Sleep(500 * time.Millisecond)
	_ = conn.Close()
	wg.Wait()
	if ferr != nil {
		return "", ferr
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return "", err
	}
	if st.Pending != 0 || st.Processing != 0 || st.Dead != 0 {
		return "", fmt.Errorf("after %d jobs the queue is %+v, want every event acked", runs, st)
	}
	f.sent["lpush"] -= runs // ours, not the jobs'
	total := 0
	for _, v := range f.sent {
		total += v
	}
	// Connections: every client address MONITOR saw, less the bench's own
	// (its publishes).
	return fmt.Sprintf("jobs runs=%d wait=%s lease=%s trips_per_process=%.2f conns_per_process=%.2f sent=%s scripted=%s",
		runs, wait, lease, float64(total)/float64(runs), float64(len(f.clients)-1)/float64(runs), names(f.sent, runs), names(f.scripted, runs)), nil
}
