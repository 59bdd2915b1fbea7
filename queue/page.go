// Pages for the dashboard (internal/ui): a page of one state at an offset,
// a bounded search, the per-minute history of the outcome counters, and the
// background loops' last runs. Each costs Redis O(page) (or O(limit) for a
// search), never O(queue).

package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// historyKey is the ZSET of per-minute samples of the counters hash:
// score = the minute (Unix ms, Redis clock), member = "<minute ms> <acked>
// <retried> <dead> <reaped_dead> <reaped_requeued>". The dashboard's
// sampler (internal/ui, run by the publisher and `redis-keda ui`) adds at
// most one per minute (SampleHistory) and drops those older than
// historyKeep: at most 1,440 members, ~60 KB.
func historyKey(name string) string { return hashTag(name) + ":history" }

// runsKey is the ZSET loop -> Unix ms (Redis clock) of its last successful
// run: "reaper" (the publisher), later "mover". (A ZSET, not a hash: the
// documented ACL user already has ZADD and ZRANGE.)
func runsKey(name string) string { return hashTag(name) + ":runs" }

// historyKeep is how far back the history goes.
const historyKeep = 24 * time.Hour

// historyFields are the counters sampled, in member order.
var historyFields = []string{"acked", "retried", "dead", "reaped_dead", "reaped_requeued"}

// PageResult is one page of a state.
type PageResult struct {
	Entries []Entry
	// Total is the state's size when the page was read.
	Total int64
}

// Page returns up to n entries of loc from offset (0 = the first):
// pending from the next to be claimed, dead from the newest, processing
// from the oldest delivery, scheduled from the earliest due, done from the
// latest ack (a done record has no payload). Each payload is cut to prefix bytes
// (Truncated). Redis reads only those entries: LINDEX one at a time, from
// the nearer end.
func (q *Queue) Page(ctx context.Context, loc Location, offset, n, prefix int) (PageResult, error) {
	var res PageResult
	if n <= 0 || offset < 0 {
		return res, fmt.Errorf("page: offset %d and size %d must be >= 0 and > 0", offset, n)
	}
	switch loc {
	case LocPending, LocDead:
		key, step, first := q.pending, int64(-1), -int64(offset)-1
		if loc == LocDead {
			key, step, first = q.dead, 1, int64(offset)
		}
		for len(res.Entries) < n {
			llen, raws, ended, err := q.listPage(ctx, key, first, step, n-len(res.Entries), prefix, "")
			if err != nil {
				return res, err
			}
			res.Total = llen
			for _, r := range raws {
				var e Entry
				if loc == LocPending {
					e = pendingEntry(r)
				} else {
					e = deadEntry(r)
					e.tailIdx = llen - r.idx - 1
				}
				e.Position = int64(offset + len(res.Entries) + 1)
				res.Entries = append(res.Entries, e)
			}
			if ended || len(raws) == 0 {
				break
			}
			first += step * int64(len(raws))
		}
		return res, nil
	case LocScheduled:
		total, err := q.rdb.ZCard(ctx, q.scheduled).Result()
		if err != nil {
			return res, fmt.Errorf("read %s: %w", q.scheduled, err)
		}
		es, err := q.scheduledPage(ctx, offset, n)
		if err != nil {
			return res, err
		}
		for i := range es {
			es[i].Position = int64(offset + i + 1)
		}
		res.Entries, res.Total = es, total
		return res, nil
	case LocDone:
		pipe := q.rdb.Pipeline()
		card := pipe.ZCard(ctx, q.doneOrder)
		rng := pipe.ZRevRange(ctx, q.doneOrder, int64(offset), int64(offset+n-1))
		if _, err := pipe.Exec(ctx); err != nil {
			return res, fmt.Errorf("read %s: %w", q.doneOrder, err)
		}
		res.Total = card.Val()
		ids := rng.Val()
		if len(ids) == 0 {
			return res, nil
		}
		raws, err := q.rdb.HMGet(ctx, q.done, ids...).Result()
		if err != nil {
			return res, fmt.Errorf("read %s: %w", q.done, err)
		}
		for i, r := range raws {
			if s, ok := r.(string); ok {
				if rec, err := parseDoneRecord(ids[i], s); err == nil {
					e := doneEntry(rec)
					e.Position = int64(offset + i + 1)
					res.Entries = append(res.Entries, e)
				}
			}
		}
		return res, nil
	case LocProcessing:
		pipe := q.rdb.Pipeline()
		card := pipe.ZCard(ctx, q.claimed)
		rng := pipe.ZRange(ctx, q.claimed, int64(offset), int64(offset+n-1))
		if _, err := pipe.Exec(ctx); err != nil {
			return res, fmt.Errorf("read %s: %w", q.claimed, err)
		}
		es, err := q.claims(ctx, rng.Val(), prefix)
		if err != nil {
			return res, err
		}
		for i := range es {
			es[i].Position = int64(offset + i + 1)
		}
		res.Entries, res.Total = es, card.Val()
		return res, nil
	}
	return res, fmt.Errorf("page: unknown state %q: use scheduled, pending, processing, dead or done", loc)
}

// SearchResult is what a bounded search found.
type SearchResult struct {
	Matches []Entry
	// Scanned is how many entries were looked at; Total the state's size.
	Scanned int
	Total   int64
	// Capped: the search stopped at its most matches.
	Capped bool
}

// Search looks at the first limit entries of loc (in Page's order) and
// returns those whose payload's first 64 KiB contain text, or whose id or
// reference is text (an empty text matches nothing), at most maxMatches of them.
func (q *Queue) Search(ctx context.Context, loc Location, text string, limit, maxMatches int) (SearchResult, error) {
	var res SearchResult
	if text == "" {
		return res, errors.New("search: empty text")
	}
	match := func(e Entry) bool {
		if e.ID == text || (IsRef(text) && strings.HasPrefix(e.sha1, strings.ToLower(text[1:]))) {
			return true
		}
		return bytes.Contains(e.Payload, []byte(text))
	}
	visit := func(e Entry) bool {
		res.Scanned++
		if match(e) {
			if len(res.Matches) == maxMatches {
				res.Capped = true
				return false
			}
			res.Matches = append(res.Matches, e)
		}
		return true
	}
	// Most entries match nothing: they are looked at as Redis sent them
	// (an id, a reference's digits or a substring of the payload is in the
	// stored bytes, or the SHA-1 starts with the reference) and parsed only
	// when they may match.
	ref := ""
	if IsRef(text) {
		ref = strings.ToLower(text[1:])
	}
	// A dead letter holds its payload as a JSON string: "a" is \"a\" there.
	quoted := jsonStringBody(text)
	maybe := func(r rawEntry) bool {
		return strings.Contains(r.prefix, text) || (loc == LocDead && strings.Contains(r.prefix, quoted)) ||
			(ref != "" && strings.HasPrefix(r.sha1, ref))
	}
	switch loc {
	case LocPending, LocDead:
		key, step := q.pending, int64(-1)
		if loc == LocDead {
			key, step = q.dead, 1
		}
		err := q.scanList(ctx, key, step, limit, func(llen int64, r rawEntry) bool {
			res.Total = llen
			if !maybe(r) {
				res.Scanned++
				return true
			}
			var e Entry
			if loc == LocPending {
				e = pendingEntry(r)
				e.Position = -r.idx
			} else {
				e = deadEntry(r)
				e.Position, e.tailIdx = r.idx+1, llen-r.idx-1
			}
			return visit(e)
		})
		return res, err
	case LocScheduled:
		total, err := q.rdb.ZCard(ctx, q.scheduled).Result()
		if err != nil {
			return res, fmt.Errorf("read %s: %w", q.scheduled, err)
		}
		res.Total = total
		for first := 0; first < limit; first += scanPage {
			page, err := q.scheduledPage(ctx, first, min(scanPage, limit-first))
			if err != nil {
				return res, err
			}
			for i, e := range page {
				e.Position = int64(first + i + 1)
				if !visit(e) {
					return res, nil
				}
			}
			if len(page) < scanPage {
				break
			}
		}
		return res, nil
	case LocProcessing:
		tokens, err := q.rdb.ZRange(ctx, q.claimed, 0, int64(limit)-1).Result()
		if err != nil {
			return res, fmt.Errorf("read %s: %w", q.claimed, err)
		}
		res.Total = int64(len(tokens))
		es, err := q.claims(ctx, tokens, scanPrefix)
		if err != nil {
			return res, err
		}
		for i, e := range es {
			e.Position = int64(i + 1)
			if !visit(e) {
				break
			}
		}
		if n, err := q.rdb.ZCard(ctx, q.claimed).Result(); err == nil {
			res.Total = n
		}
		return res, nil
	}
	return res, fmt.Errorf("search: unknown state %q: use scheduled, pending, processing or dead", loc)
}

// jsonStringBody is s as it appears inside a JSON string (encodeJSON: no
// HTML escaping), without the quotes.
func jsonStringBody(s string) string {
	b := encodeJSON(s)
	return string(b[1 : len(b)-1])
}

// DoneCount is how many done records there are (ZCARD).
func (q *Queue) DoneCount(ctx context.Context) (int64, error) {
	n, err := q.rdb.ZCard(ctx, q.doneOrder).Result()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", q.doneOrder, err)
	}
	return n, nil
}

// sampleHistoryScript records the counters once per minute.
//
// KEYS[1] counters hash
// KEYS[2] history zset
// ARGV[1] ms of history to keep
// ARGV[2..] counters to sample
// Output: 1 sampled, 0 this minute had its sample already.
var sampleHistoryScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local m = now - now % 60000
if redis.call('ZCOUNT', KEYS[2], m, m) > 0 then return 0 end
local all = redis.call('HGETALL', KEYS[1])
local c = {}
for i = 1, #all, 2 do c[all[i]] = all[i + 1] end
local member = tostring(m)
for i = 2, #ARGV do member = member .. ' ' .. (c[ARGV[i]] or '0') end
redis.call('ZADD', KEYS[2], m, member)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (m - tonumber(ARGV[1])), 'LIMIT', 0, 100)
for _, o in ipairs(old) do redis.call('ZREM', KEYS[2], o) end
return 1
`)

// SampleHistory records this minute's counters unless another sampler did;
// sampled reports whether this call did. Call it at least once a minute.
func (q *Queue) SampleHistory(ctx context.Context) (sampled bool, err error) {
	args := []any{historyKeep.Milliseconds()}
	for _, f := range historyFields {
		args = append(args, f)
	}
	n, err := sampleHistoryScript.Run(ctx, q.rdb, []string{q.counters, historyKey(q.cfg.Name)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("sample history of %s: %w", q.pending, err)
	}
	return n == 1, nil
}

// Minute is one minute of history: how many deliveries were acked,
// retried and dead-lettered (by the jobs or the reaper) during it.
type Minute struct {
	Start                time.Time
	Acked, Retried, Dead int64
	// Known is false when a sample is missing at either end of the
	// minute (no sampler ran): the counts are 0 and unknown.
	Known bool
}

// History returns the last minutes (oldest first, ending with the last
// complete minute before now on the Redis clock), computed from the
// samples: one ZRANGEBYSCORE of minutes+1 members.
func (q *Queue) History(ctx context.Context, now time.Time, minutes int) ([]Minute, error) {
	end := now.Truncate(time.Minute)
	start := end.Add(-time.Duration(minutes) * time.Minute)
	zs, err := q.rdb.ZRangeByScore(ctx, historyKey(q.cfg.Name), &redis.ZRangeBy{
		Min: strconv.FormatInt(start.UnixMilli(), 10), Max: strconv.FormatInt(end.UnixMilli(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", q.pending, err)
	}
	samples := map[int64][]int64{}
	for _, z := range zs {
		fs := strings.Fields(z)
		if len(fs) != 1+len(historyFields) {
			continue
		}
		v := make([]int64, len(fs))
		for i, f := range fs {
			v[i], _ = strconv.ParseInt(f, 10, 64)
		}
		samples[v[0]] = v[1:]
	}
	out := make([]Minute, 0, minutes)
	for m := start; m.Before(end); m = m.Add(time.Minute) {
		a, b := samples[m.UnixMilli()], samples[m.Add(time.Minute).UnixMilli()]
		min := Minute{Start: m}
		if a != nil && b != nil {
			d := func(i int) int64 { return max(b[i]-a[i], 0) }
			min.Acked, min.Retried, min.Dead, min.Known = d(0), d(1)+d(4), d(2)+d(3), true
		}
		out = append(out, min)
	}
	return out, nil
}

// markRunScript records a loop's run on the Redis clock.
//
// KEYS[1] runs zset
// ARGV[1] the loop's name
// Output: the time recorded, Unix ms.
var markRunScript = redis.NewScript(luaPrelude + `
local now = now_ms()
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
`)

// MarkRun records that the loop name (reaper, mover) just ran.
func (q *Queue) MarkRun(ctx context.Context, name string) error {
	if err := markRunScript.Run(ctx, q.rdb, []string{runsKey(q.cfg.Name)}, name).Err(); err != nil {
		return fmt.Errorf("record the %s's run: %w", name, err)
	}
	return nil
}

// Runs returns each loop's last recorded run.
func (q *Queue) Runs(ctx context.Context) (map[string]time.Time, error) {
	zs, err := q.rdb.ZRangeWithScores(ctx, runsKey(q.cfg.Name), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", runsKey(q.cfg.Name), err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		if name, ok := z.Member.(string); ok {
			out[name] = time.UnixMilli(int64(z.Score))
		}
	}
	return out, nil
}

// ServerInfo is what the dashboard shows of Redis: the mode redis-keda
// reaches it in, and the server's version and role when INFO may be read.
type ServerInfo struct {
	Mode    RedisMode
	Version string
	Role    string
}

// Server reads Redis's version and role (INFO server, replication) as
// Redis's default user only: an ACL user's denied INFO would land in the
// ACL LOG. Otherwise, or when INFO fails, they are empty.
func (q *Queue) Server(ctx context.Context, rc RedisConfig) ServerInfo {
	si := ServerInfo{Mode: rc.Mode}
	if si.Mode == "" {
		si.Mode = ModeStandalone
	}
	if !rc.DefaultUser() {
		return si
	}
	info, err := q.rdb.Info(ctx, "server", "replication").Result()
	if err != nil {
		return si
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			si.Version = v
		}
		if v, ok := strings.CutPrefix(line, "role:"); ok {
			si.Role = v
		}
	}
	return si
}
