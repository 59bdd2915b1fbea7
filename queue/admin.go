package queue

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// The operator's side of a queue: Snapshot (what `redis-keda stats` and the
// publisher's /metrics read), Peek, Find (inspect), Redrive, RedriveAll and
// Purge. Reads never change anything; every write is one Lua script per
// batch that re-checks, atomically, that what it moves is still there.
//
// An entry is named either by its event id or by a reference, "@" and the
// first hex digits of the SHA-1 of the entry as stored (pending entry, claimed
// entry or dead-letter record): an entry without an id (a raw payload never
// delivered, or a dead letter of a payload that had none) has only a
// reference. References are computed by Redis (redis.sha1hex), so a large
// entry is never sent to the client to be named.

// Location is where an entry is.
type Location string

const (
	LocPending    Location = "pending"    // in the pending list
	LocProcessing Location = "processing" // leased by a job (in flight)
	LocClaimed    Location = "claimed"    // moved by a job's BRPOPLPUSH, not leased (yet)
	LocDead       Location = "dead"       // in the dead-letter list
	LocDone       Location = "done"       // acked: a done record (done.go)
	LocScheduled  Location = "scheduled"  // waiting in the scheduled set for its due time (a retry, a delayed event)
)

// CounterNames are the fields of the counters hash, in display order:
// outcomes of deliveries, the reaper's recoveries, and the operator's
// redrives and purges.
func CounterNames() []string {
	return []string{"acked", "retried", "dead", "released",
		"reaped_requeued", "reaped_rescued", "reaped_dead", "reaped_stale",
		"redriven", "purged_dead", "purged_pending",
		"snoozed", "scheduled_moved", "scheduled_dead", "scheduled_redriven", "purged_scheduled"}
}

// Bounds of what the operator's reads bring back.
const (
	// snapshotPrefix: bytes of the oldest pending entry and oldest dead
	// letter a Snapshot reads, to find published_at and dead_at. The
	// publisher's events carry published_at in their first 60 bytes.
	snapshotPrefix = 4096
	// scanPrefix: bytes of each entry a scan brings back. An entry up to
	// this size is read whole; a larger one is fetched alone when needed.
	scanPrefix = 64 << 10
	// scanPage: entries per page script.
	scanPage = 100
	// scanPageBytes bounds a page script's reply (prefixes).
	scanPageBytes = 1 << 20
	// scanCopyBytes bounds what a page script copies (at least one entry
	// whatever its size), so that it holds Redis briefly.
	scanCopyBytes = 8 << 20
	// redriveBatchBytes bounds the records and payloads one redrive script
	// carries (Redis copies them into Lua); a dead letter above it is moved
	// alone by a transaction.
	redriveBatchBytes = 1 << 20
	// refMinHex is the shortest reference accepted.
	refMinHex = 6
	// refHex is how many hex digits a reference is shown with.
	refHex = 12
)

// Snapshot is the queue at one instant, read in one script whose cost does
// not depend on the number of events.
type Snapshot struct {
	Now                           time.Time // Redis server clock
	Pending, Processing, Claiming int64
	Dead                          int64
	// OldestPending is the published_at of the next event to be claimed
	// (the oldest pending entry); zero when the queue is empty or that
	// entry has no published_at in its first 4 KiB (producers that send no
	// timestamp: the queue never stamps their bytes).
	OldestPending time.Time
	// OldestPendingUnknown is true when there are pending entries but the
	// oldest carries no published_at.
	OldestPendingUnknown bool
	// OldestProcessing is when the oldest in-flight delivery was leased.
	OldestProcessing time.Time
	// OldestDead is the dead_at of the oldest dead letter (read only with
	// SnapshotOptions.OldestDead).
	OldestDead time.Time
	// LeasesExpired are claims past their deadline: the reaper's next work.
	LeasesExpired int64
	// LeasesExpiring are claims whose deadline is within ExpiringWithin: a
	// heartbeat is overdue (a healthy lease has more than 2/3 of
	// LEASE_DURATION left), or a job died right after claiming.
	LeasesExpiring int64
	ExpiringWithin time.Duration
	// Counters holds every name of CounterNames (0 when never counted).
	Counters map[string]int64
	// Scheduled counts the events waiting in the scheduled set (retries,
	// delayed events); Overdue those of them already due (the mover's next
	// work); OldestOverdue is the due time of the earliest overdue one (zero
	// when none): a mover that keeps up holds it under MOVE_INTERVAL.
	Scheduled, Overdue int64
	OldestOverdue      time.Time
}

// Age returns how old t is at the snapshot's instant; false for a zero t.
func (s Snapshot) Age(t time.Time) (time.Duration, bool) {
	if t.IsZero() {
		return 0, false
	}
	return max(s.Now.Sub(t), 0), true
}

// snapshotScript reads every number of a Snapshot in one call. The entries
// it looks into (the oldest pending one, and optionally the oldest dead
// letter) are cut to a prefix by Redis, so a huge one costs the network
// nothing — but Redis copies it into the script whole: about 5 ms of Redis
// time for a 1 MiB entry, 85 ms for 16 MiB (measured), a cost that depends on
// that one entry's size, never on how many there are. One copy at a time:
// a large one is collected (luaDrop) before the next is read.
//
// KEYS[1] pending list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// KEYS[4] dead list
// KEYS[5] counters hash
// KEYS[6] scheduled zset
// ARGV[1] bytes of the oldest pending entry and oldest dead letter to return
// ARGV[2] "expiring" window, ms
// ARGV[3] "1" to read the oldest dead letter
// Output: {now_ms, LLEN pending, ZCARD leases, ZCARD claimed, LLEN dead,
// oldest claimed score or nil, pending tail prefix or nil, dead tail prefix
// or nil, expired leases, expiring leases, HGETALL counters, ZCARD
// scheduled, scheduled members due, earliest due score or nil}
var snapshotScript = redis.NewScript(luaPrelude + luaDrop + `
local now = now_ms()
local n = tonumber(ARGV[1])
local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local p = redis.call('LINDEX', KEYS[1], -1)
if p then
  local size = #p
  p = string.sub(p, 1, n)
  drop(size)
end
local d = false
if ARGV[3] == '1' then
  d = redis.call('LINDEX', KEYS[4], -1)
  if d then
    local size = #d
    d = string.sub(d, 1, n)
    drop(size)
  end
end
return {now, redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  redis.call('LLEN', KEYS[4]), oldest[2] or false, p or false, d or false,
  redis.call('ZCOUNT', KEYS[2], '-inf', now),
  redis.call('ZCOUNT', KEYS[2], '(' .. now, now + tonumber(ARGV[2])),
  redis.call('HGETALL', KEYS[5]),
  redis.call('ZCARD', KEYS[6]), redis.call('ZCOUNT', KEYS[6], '-inf', now),
  redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')[2] or false}
`)

// SnapshotOptions tune Snapshot.
type SnapshotOptions struct {
	// ExpiringWithin is the window for LeasesExpiring; 0 means
	// LEASE_DURATION/2.
	ExpiringWithin time.Duration
	// OldestDead reads the oldest dead letter's dead_at. Redis copies that
	// record into the script: leave it off where snapshots are frequent
	// (metrics), since an old, large dead letter would stay there.
	OldestDead bool
}

// Snapshot reads the queue in one script call.
func (q *Queue) Snapshot(ctx context.Context, opt SnapshotOptions) (Snapshot, error) {
	if opt.ExpiringWithin <= 0 {
		opt.ExpiringWithin = q.cfg.LeaseDuration / 2
	}
	s := Snapshot{ExpiringWithin: opt.ExpiringWithin}
	dead := "0"
	if opt.OldestDead {
		dead = "1"
	}
	keys := []string{q.pending, q.leases, q.claimed, q.dead, q.counters, q.scheduled}
	res, err := snapshotScript.Run(ctx, q.rdb, keys, snapshotPrefix, opt.ExpiringWithin.Milliseconds(), dead).Slice()
	if err != nil {
		return s, fmt.Errorf("read queue %s: %w", q.pending, err)
	}
	if len(res) != 14 {
		return s, fmt.Errorf("read queue %s: snapshot script returned %d values, want 14", q.pending, len(res))
	}
	s.Scheduled, s.Overdue = replyInt(res[11]), replyInt(res[12])
	if score, ok := res[13].(string); ok && s.Overdue > 0 {
		if ms, err := strconv.ParseFloat(score, 64); err == nil {
			s.OldestOverdue = time.UnixMilli(int64(ms))
		}
	}
	s.Now = time.UnixMilli(replyInt(res[0]))
	s.Pending, s.Dead = replyInt(res[1]), replyInt(res[4])
	leases, claimed := replyInt(res[2]), replyInt(res[3])
	s.Processing, s.Claiming = claimed, max(leases-claimed, 0)
	if score, ok := res[5].(string); ok {
		if ms, err := strconv.ParseFloat(score, 64); err == nil {
			s.OldestProcessing = time.UnixMilli(int64(ms))
		}
	}
	if p, ok := res[6].(string); ok {
		_, payload, _, _ := splitEntry(p)
		s.OldestPending = publishedAt([]byte(payload))
		s.OldestPendingUnknown = s.OldestPending.IsZero()
	}
	if d, ok := res[7].(string); ok {
		dl, _ := partialDeadLetter(d, len(d))
		s.OldestDead = dl.DeadAt
	}
	s.LeasesExpired, s.LeasesExpiring = replyInt(res[8]), replyInt(res[9])
	s.Counters = make(map[string]int64, len(CounterNames()))
	for _, name := range CounterNames() {
		s.Counters[name] = 0
	}
	if kv, ok := res[10].([]any); ok {
		for i := 0; i+1 < len(kv); i += 2 {
			n, _ := strconv.ParseInt(replyString(kv[i+1]), 10, 64)
			s.Counters[replyString(kv[i])] = n
		}
	}
	return s, nil
}

// Entry is one event as the operator sees it.
type Entry struct {
	Location Location
	// Position: pending, 1 = the next to be claimed; dead, 1 = the newest.
	Position int64
	// Ref is "@" and the first hex digits of the SHA-1 of the stored entry.
	Ref string
	// ID is the event's id when it has one: the payload's "id", or the one
	// the queue assigned (IDAssigned).
	ID         string
	IDAssigned bool
	// Attempts counts deliveries so far: for an entry in flight, including
	// the current one.
	Attempts int
	// Size is the payload's length in bytes; Payload holds all of it, or its
	// first bytes when Truncated.
	Size      int
	Payload   []byte
	Truncated bool
	// PublishedAt is the payload's published_at, when it has one.
	PublishedAt time.Time

	// In flight (processing or claimed).
	Token         string
	ClaimedAt     time.Time // leased at (processing only)
	LeaseDeadline time.Time // when the reaper may take it back
	Pod           string    // the claimer's pod (processing; done: the pod that acked it)

	// Dead letters.
	Reason string
	DeadAt time.Time

	// Done records (LocDone): acked at (Redis clock), and how many acks of
	// this id the record has seen (more than 1: processed more than once).
	// ClaimedAt is when the acked delivery was leased, Attempts its number.
	AckedAt time.Time
	Acks    int

	// Scheduled: when it is due (Redis's clock).
	DueAt time.Time

	sha1    string // hex SHA-1 of the stored entry
	stored  int    // the stored entry's size (record, envelope, ...)
	tailIdx int64  // dead: 0 = the oldest
	record  string // dead: the whole record, once read
}

// ErrNotFound wraps an id or reference that matched nothing.
var ErrNotFound = errors.New("not found")

// ErrRedriveRefused wraps a redrive that would move a dead letter the jobs
// cannot take (payload above MAX_PAYLOAD_BYTES) or that cannot be read.
var ErrRedriveRefused = errors.New("redrive refused")

// IsRef reports whether arg is a reference (@ and hex digits).
func IsRef(arg string) bool {
	h, ok := strings.CutPrefix(arg, "@")
	if !ok || len(h) < refMinHex || len(h) > 40 {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// Selector names entries for Find and Redrive: an event id, taken
// literally, or a reference (the first hex digits of the SHA-1 of the
// stored entry).
type Selector struct {
	id  string
	ref string // lower-case hex digits, without "@"
}

// ParseSelector reads an operator's argument: "@" and 6 to 40 hex digits is
// a reference, any other argument an event id. An argument that starts with
// "@" but is not a reference is refused: an event id that starts with "@"
// is named with IDSelector (the command line's --id).
func ParseSelector(arg string) (Selector, error) {
	switch {
	case arg == "":
		return Selector{}, errors.New("an empty id")
	case IsRef(arg):
		return Selector{ref: strings.ToLower(arg[1:])}, nil
	case strings.HasPrefix(arg, "@"):
		return Selector{}, fmt.Errorf("%q is not a reference: use @ and %d to 40 hex digits, as peek shows them", arg, refMinHex)
	}
	return Selector{id: arg}, nil
}

// IDSelector names the event id id literally, whatever it starts with
// ("@x" is the id "@x", not a reference).
func IDSelector(id string) (Selector, error) {
	if id == "" {
		return Selector{}, errors.New("an empty id")
	}
	return Selector{id: id}, nil
}

// String is the selector as an operator writes it: "@" and hex digits for a
// reference, the id otherwise.
func (s Selector) String() string {
	if s.ref != "" {
		return "@" + s.ref
	}
	return s.id
}

func (e *Entry) matches(sel Selector) bool {
	if sel.ref != "" {
		return strings.HasPrefix(e.sha1, sel.ref)
	}
	return e.ID != "" && e.ID == sel.id
}

// Operator reads never copy more than one entry at a time into Redis's Lua
// interpreter. A script that LRANGEs a page copies every entry of it twice
// (the reply, then a Lua string), outside maxmemory: 8 dead letters of 12 MiB
// took ~200 MB and got Redis OOM-killed in a 256 MiB cgroup. The page scripts
// below read one entry at a time (LINDEX), keep only its size, SHA-1 and
// first bytes, and collect the Lua garbage (collectgarbage) once 1 MiB of
// copies has accumulated, so Redis holds at most one entry's copies (its
// reply to the script and its Lua string: 2x the entry) plus a small
// constant. Their replies are bounded in bytes (scanPageBytes) as well as in
// entries. Whole entries are read from Go (LINDEX: one copy, in the reply).
//
// luaDrop is the garbage helper of those scripts: drop(n) after a copy of n
// bytes became unreachable.
const luaDrop = `
local garbage = 0
local function drop(n)
  garbage = garbage + n
  if garbage >= 1048576 then
    collectgarbage('collect')
    garbage = 0
  end
end
`

// listPageScript reads a page of a list one entry at a time: each entry's
// size, SHA-1 and first bytes. The page ends after ARGV[3] entries, at the
// end of the list, after the entry whose prefix brings the reply to ARGV[5]
// bytes, or after the entry that brings what it copied to ARGV[9] bytes
// (so that a page of huge entries does not hold Redis for long: one 12 MiB
// entry takes tens of milliseconds to copy and hash).
//
// Pages stay stable while the list changes: the next page starts after the
// previous page's last entry (the anchor), wherever it moved. Indexes from
// the tail do not move when producers LPUSH (at the head), so pending is
// scanned from the tail; they move toward the tail when consumers take
// entries, and away from it when the reaper or a release puts one back: the
// script looks for the anchor around where it was, up to anchorProbes
// entries either way. In the pending list (ARGV[8] = "1"), an anchor
// scanned from the tail that is gone, with every entry between it and the
// tail looked at, was taken by a consumer with every entry before it: the
// page starts at the tail (-1). Otherwise a lost anchor ends the scan with
// ErrListMoved (a redrive or purge took it, or the list moved too much).
//
// KEYS[1] list
// ARGV[1] LINDEX index of the first entry (>= 0 from the head, < 0 from the tail)
// ARGV[2] step: 1 (from the head) or -1 (from the tail)
// ARGV[3] most entries to read
// ARGV[4] bytes of each entry to return
// ARGV[5] reply budget, bytes
// ARGV[6] anchor: SHA-1 of the entry at ARGV[1] - ARGV[2] when the previous
// page read it, or "" for the first page
// ARGV[7] most entries to look at for the anchor
// ARGV[8] "1" when consumers take entries from the tail (pending)
// ARGV[9] copy budget, bytes
// Output: {LLEN, index of the first entry read, 1 when the list ended (2:
// the anchor was lost, nothing read), then for each entry: size, sha1 hex,
// prefix}
var listPageScript = redis.NewScript(luaDrop + `
local idx, step = tonumber(ARGV[1]), tonumber(ARGV[2])
local n, budget, copy_budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[9])
local llen = redis.call('LLEN', KEYS[1])
local copied = 0
local function sha_at(i)
  if (step < 0 and i >= 0) or (step > 0 and i < 0) then return nil end
  local e = redis.call('LINDEX', KEYS[1], i)
  if not e then return nil end
  local size, sum = #e, redis.sha1hex(e)
  e = nil
  drop(size)
  copied = copied + size
  return sum
end
if ARGV[6] ~= '' then
  local a, probes, found = idx - step, tonumber(ARGV[7]), false
  local to_tail_done = false
  for d = 0, probes do
    if sha_at(a + d) == ARGV[6] then found = a + d; break end
    if step < 0 and a + d >= -1 then to_tail_done = true end
    if d > 0 and sha_at(a - d) == ARGV[6] then found = a - d; break end
  end
  if found then
    idx = found + step
  elseif step < 0 and to_tail_done and ARGV[8] == '1' then
    idx = -1
  else
    return {llen, 0, 2}
  end
end
local out = {llen, idx, 0}
local bytes = 0
for k = 1, tonumber(ARGV[3]) do
  local e = redis.call('LINDEX', KEYS[1], idx)
  if not e then out[3] = 1; break end
  local size, p = #e, string.sub(e, 1, n)
  out[#out + 1] = size
  out[#out + 1] = redis.sha1hex(e)
  out[#out + 1] = p
  e = nil
  drop(size)
  bytes = bytes + #p + 64
  copied = copied + size
  idx = idx + step
  if bytes >= budget or copied >= copy_budget then break end
end
return out
`)

// anchorProbes bounds how far a page script looks for the previous page's
// last entry.
const anchorProbes = 1000

// ErrListMoved: a list changed too much between two pages of a scan.
var ErrListMoved = errors.New("the list changed too much while it was read")

type rawEntry struct {
	size   int
	sha1   string
	prefix string
	idx    int64 // LINDEX index when it was read
}

// listPage runs listPageScript from index first in direction step (1 or
// -1), after the entry whose SHA-1 is anchor ("" for none): up to count
// entries, fewer when the page's bytes run out. ended reports that the list
// ended.
func (q *Queue) listPage(ctx context.Context, key string, first, step int64, count, prefix int, anchor string) (llen int64, raws []rawEntry, ended bool, err error) {
	consumed := "0"
	if key == q.pending {
		consumed = "1"
	}
	res, err := listPageScript.Run(ctx, q.rdb, []string{key}, first, step, count, prefix, scanPageBytes, anchor, anchorProbes, consumed, scanCopyBytes).Slice()
	if err != nil {
		return 0, nil, false, fmt.Errorf("read %s: %w", key, err)
	}
	if len(res) < 3 {
		return 0, nil, false, fmt.Errorf("read %s: page script returned %d values", key, len(res))
	}
	if replyInt(res[2]) == 2 {
		return 0, nil, false, fmt.Errorf("read %s: %w (the entry a page ended on was removed, or moved by more than %d); run the command again", key, ErrListMoved, anchorProbes)
	}
	idx := replyInt(res[1])
	raws = make([]rawEntry, 0, (len(res)-3)/3)
	for i := 3; i+2 < len(res); i += 3 {
		raws = append(raws, rawEntry{size: int(replyInt(res[i])), sha1: replyString(res[i+1]), prefix: replyString(res[i+2]), idx: idx})
		idx += step
	}
	return replyInt(res[0]), raws, replyInt(res[2]) == 1, nil
}

// scanList reads up to limit entries of key (limit < 0: all) in pages,
// from the head (step 1) or the tail (step -1), each entry once however the
// list moves between pages (see listPageScript), calling visit with each
// and the list's length when its page was read; visit returns false to
// stop.
func (q *Queue) scanList(ctx context.Context, key string, step int64, limit int, visit func(llen int64, r rawEntry) bool) error {
	next, anchor := int64(0), ""
	if step < 0 {
		next = -1
	}
	for seen := 0; limit < 0 || seen < limit; {
		count := scanPage
		if limit >= 0 {
			count = min(count, limit-seen)
		}
		llen, raws, ended, err := q.listPage(ctx, key, next, step, count, scanPrefix, anchor)
		if err != nil {
			return err
		}
		for _, r := range raws {
			seen++
			if !visit(llen, r) {
				return nil
			}
			next, anchor = r.idx+step, r.sha1
		}
		if ended || len(raws) == 0 {
			return nil
		}
	}
	return nil
}

// claimsScript reads the claim lists of some tokens, one entry at a time
// (see listPageScript). Every key is in KEYS (as in the reaper): while a
// Redis Cluster migrates the queue's slot, Redis answers TRYAGAIN/ASK before
// running it instead of failing half-way.
//
// KEYS[1] leases zset
// KEYS[2] claimed zset
// KEYS[2+i] claim list of token i
// ARGV[1] bytes of each entry to return
// ARGV[2] reply budget, bytes: no token is read after the one that reaches it
// ARGV[3] copy budget, bytes: no token is read after the one that reaches it
// ARGV[3+i] claim token i
// Output: {tokens read, then for each token read: {LLEN, deadline or nil,
// leased at or nil, header prefix or nil, entry size, entry sha1, entry
// prefix} or {0} for an empty claim list}
var claimsScript = redis.NewScript(luaDrop + `
local n, budget, copy_budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, bytes, copied, read = {0}, 0, 0, 0
for i = 1, #KEYS - 2 do
  if bytes >= budget or copied >= copy_budget then break end
  local key, token = KEYS[2 + i], ARGV[3 + i]
  local len = redis.call('LLEN', key)
  if len == 0 then
    out[#out + 1] = {0}
  else
    local h = false
    if len >= 2 then
      local x = redis.call('LINDEX', key, 0)
      local size = #x
      h = string.sub(x, 1, n)
      x = nil
      drop(size)
      copied = copied + size
      bytes = bytes + #h
    end
    local e = redis.call('LINDEX', key, -1)
    local size, p = #e, string.sub(e, 1, n)
    local sum = redis.sha1hex(e)
    e = nil
    drop(size)
    copied = copied + size
    bytes = bytes + #p + 64
    out[#out + 1] = {len, redis.call('ZSCORE', KEYS[1], token) or false, redis.call('ZSCORE', KEYS[2], token) or false,
      h, size, sum, p}
  end
  read = read + 1
end
out[1] = read
return out
`)

// claims reads the given tokens' claim lists; tokens without an entry are
// left out.
func (q *Queue) claims(ctx context.Context, tokens []string, prefix int) ([]Entry, error) {
	var out []Entry
	for len(tokens) > 0 {
		page := tokens[:min(scanPage, len(tokens))]
		keys := make([]string, 0, 2+len(page))
		keys = append(keys, q.leases, q.claimed)
		args := make([]any, 0, 3+len(page))
		args = append(args, prefix, scanPageBytes, scanCopyBytes)
		for _, t := range page {
			keys = append(keys, q.claimPrefix+t)
			args = append(args, t)
		}
		res, err := claimsScript.Run(ctx, q.rdb, keys, args...).Slice()
		if err != nil {
			return nil, fmt.Errorf("read claims of %s: %w", q.pending, err)
		}
		read := 0
		if len(res) > 0 {
			read = int(replyInt(res[0]))
		}
		if read < 1 || read > len(page) || len(res) != read+1 {
			return nil, fmt.Errorf("read claims of %s: claims script read %d of %d tokens and returned %d values", q.pending, read, len(page), len(res))
		}
		for i, r := range res[1:] {
			c, _ := r.([]any)
			if len(c) != 7 {
				continue
			}
			out = append(out, claimEntry(page[i], c))
		}
		tokens = tokens[read:]
	}
	return out, nil
}

// claimEntry reads one token's reply of claimsScript.
func claimEntry(token string, c []any) Entry {
	raw := rawEntry{size: int(replyInt(c[4])), sha1: replyString(c[5]), prefix: replyString(c[6])}
	var e Entry
	if h, ok := c[3].(string); ok {
		var dh deliveryHeader
		if err := json.Unmarshal([]byte(h), &dh); err != nil || replyInt(c[0]) > 2 {
			// The reaper dead-letters such a claim list once its deadline
			// passes (reason unreadableClaimReason).
			e = pendingEntry(raw)
			e.Location = LocProcessing
			e.Reason = fmt.Sprintf("unreadable claim list (%d elements, the first is not a delivery header): the reaper dead-letters its elements when its deadline passes", replyInt(c[0]))
		} else {
			e = Entry{Location: LocProcessing, ID: dh.ID, IDAssigned: dh.Assigned, Attempts: dh.Attempt, Size: dh.Size}
			e.ClaimedAt, _ = time.Parse(time.RFC3339Nano, dh.ClaimedAt)
			e.Pod = dh.Pod
			if ms, ok := c[2].(string); ok {
				if f, err := strconv.ParseFloat(ms, 64); err == nil {
					e.ClaimedAt = time.UnixMilli(int64(f))
				}
			}
			off := min(max(dh.Off, 0), len(raw.prefix))
			e.Payload = []byte(raw.prefix[off:])
			e.Truncated = raw.size > len(raw.prefix)
		}
	} else {
		e = pendingEntry(raw)
		e.Location = LocClaimed
		e.Attempts++ // this delivery counts
	}
	e.Token, e.sha1, e.stored = token, raw.sha1, raw.size
	e.Ref = "@" + raw.sha1[:refHex]
	if ms, ok := c[1].(string); ok {
		if f, err := strconv.ParseFloat(ms, 64); err == nil {
			e.LeaseDeadline = time.UnixMilli(int64(f))
		}
	}
	e.PublishedAt = publishedAt(e.Payload)
	return e
}

// pendingEntry reads a pending entry (or the entry of a claim list not
// leased yet) from what a page brought back.
func pendingEntry(raw rawEntry) Entry {
	h, payload, off, _ := splitEntry(raw.prefix)
	e := Entry{
		Location: LocPending, Ref: "@" + raw.sha1[:refHex], sha1: raw.sha1, stored: raw.size,
		Attempts: h.Attempts, Size: raw.size - off, Payload: []byte(payload), Truncated: raw.size > len(raw.prefix),
	}
	if h.Assigned {
		e.ID, e.IDAssigned = h.ID, true
	} else if v, ok := topLevel([]byte(payload), fieldID); ok {
		e.ID, _ = parseID(v)
	}
	e.PublishedAt = publishedAt(e.Payload)
	return e
}

// deadEntry reads a dead letter from what a page brought back.
func deadEntry(raw rawEntry) Entry {
	dl, payload := partialDeadLetter(raw.prefix, raw.size)
	e := Entry{
		Location: LocDead, Ref: "@" + raw.sha1[:refHex], sha1: raw.sha1, stored: raw.size,
		ID: dl.ID, Attempts: dl.Attempts, Size: dl.Size, Payload: payload, Truncated: raw.size > len(raw.prefix),
		Reason: dl.Reason, DeadAt: dl.DeadAt,
	}
	if !e.Truncated {
		e.record = raw.prefix
	}
	if e.ID == "" {
		if v, ok := topLevel(payload, fieldID); ok {
			e.ID, _ = parseID(v)
		}
	}
	e.PublishedAt = publishedAt(payload)
	return e
}

// Peek returns up to n entries of one place without changing anything:
// pending, the next to be claimed first; processing, the oldest delivery
// first; dead, the newest first. Payloads are cut at 64 KiB (Truncated).
func (q *Queue) Peek(ctx context.Context, loc Location, n int) ([]Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	var out []Entry
	switch loc {
	case LocPending:
		err := q.scanList(ctx, q.pending, -1, n, func(_ int64, r rawEntry) bool {
			e := pendingEntry(r)
			e.Position = int64(len(out) + 1)
			out = append(out, e)
			return true
		})
		return out, err
	case LocDead:
		err := q.scanList(ctx, q.dead, 1, n, func(llen int64, r rawEntry) bool {
			e := deadEntry(r)
			e.Position, e.tailIdx = int64(len(out)+1), llen-r.idx-1
			out = append(out, e)
			return true
		})
		return out, err
	case LocProcessing:
		tokens, err := q.rdb.ZRange(ctx, q.claimed, 0, int64(n)-1).Result()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", q.claimed, err)
		}
		return q.claims(ctx, tokens, scanPrefix)
	case LocScheduled:
		return q.peekScheduled(ctx, n)
	}
	return nil, fmt.Errorf("peek: unknown place %q: use pending, processing, scheduled or dead", loc)
}

// Find returns every entry whose event id or reference is sel, wherever it is: pending, in flight (or claimed, not leased
// yet), dead — in that order, the way events move, so an event that moves
// during the search is still found. Payloads are whole. Its cost grows with
// the lists (pages of 100 entries, 64 KiB of each at most).
func (q *Queue) Find(ctx context.Context, sel Selector) ([]Entry, error) {
	if sel == (Selector{}) {
		return nil, errors.New("find: an empty selector")
	}
	var out []Entry
	// Pending, from the tail (the next to be claimed): producers' LPUSHes
	// meanwhile move no index from the tail, and pages follow the entries
	// consumers take (scanList), so each entry is read once.
	var ferr error
	err := q.scanList(ctx, q.pending, -1, -1, func(_ int64, r rawEntry) bool {
		e := pendingEntry(r)
		if e.matches(sel) {
			e.Position = -r.idx
			if ferr = q.fill(ctx, &e, q.pending, r.idx); ferr != nil {
				return false
			}
			out = append(out, e)
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	// Claims: every registered token, read at once (heartbeats reorder the
	// leases set, so pages of it could skip a token); one per job.
	tokens, err := q.rdb.ZRange(ctx, q.leases, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.leases, err)
	}
	es, err := q.claims(ctx, tokens, scanPrefix)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.matches(sel) {
			if err := q.fill(ctx, &e, q.claimPrefix+e.Token, -1); err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	dead, err := q.findDead(ctx, []Selector{sel})
	if err != nil {
		return nil, err
	}
	for _, e := range dead {
		if err := q.fillDead(ctx, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// findDead scans the dead list from its tail (oldest first: indexes from the
// tail do not move when new dead letters arrive) for entries matching any of
// sels.
func (q *Queue) findDead(ctx context.Context, sels []Selector) ([]Entry, error) {
	var out []Entry
	err := q.scanList(ctx, q.dead, -1, -1, func(llen int64, r rawEntry) bool {
		e := deadEntry(r)
		e.tailIdx = -r.idx - 1
		e.Position = llen - e.tailIdx
		for _, s := range sels {
			if e.matches(s) {
				out = append(out, e)
				break
			}
		}
		return true
	})
	return out, err
}

// fill replaces a truncated payload by the whole entry, read by index and
// checked against its SHA-1 (an entry that moved meanwhile stays truncated).
func (q *Queue) fill(ctx context.Context, e *Entry, key string, idx int64) error {
	if !e.Truncated {
		return nil
	}
	whole, err := q.rdb.LIndex(ctx, key, idx).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if sha1hex(whole) != e.sha1 {
		return nil
	}
	if e.Location == LocProcessing {
		var off int
		if h, err := q.rdb.LIndex(ctx, key, 0).Result(); err == nil {
			var dh deliveryHeader
			if json.Unmarshal([]byte(h), &dh) == nil {
				off = dh.Off
			}
		}
		e.Payload = []byte(whole[min(off, len(whole)):])
	} else {
		_, payload, _, _ := splitEntry(whole)
		e.Payload = []byte(payload)
	}
	e.Truncated = false
	return nil
}

// fillDead reads a dead letter's whole record and payload.
func (q *Queue) fillDead(ctx context.Context, e *Entry) error {
	if e.record == "" {
		whole, err := q.rdb.LIndex(ctx, q.dead, -(e.tailIdx + 1)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read %s: %w", q.dead, err)
		}
		if sha1hex(whole) != e.sha1 {
			return fmt.Errorf("dead letter %s moved while it was read (another redrive or purge?); run the command again", e.Ref)
		}
		e.record = whole
	}
	dl, err := parseDeadLetter(e.record)
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", e.Ref, err)
	}
	e.Payload, e.Truncated = dl.Payload, false
	e.IDAssigned = assignedByQueue(dl.ID, dl.Payload)
	return nil
}

// assignedByQueue reports whether a dead letter's id is one the queue
// assigned: it has one, and its payload has no id of its own.
func assignedByQueue(id string, payload []byte) bool {
	if id == "" {
		return false
	}
	if v, ok := topLevel(payload, fieldID); ok {
		if own, _ := parseID(v); own != "" {
			return false
		}
	}
	return true
}

// redriven is what a redrive pushes to pending for a dead letter read whole
// (fillDead): the payload byte for byte, so that its attempts start again;
// for an event whose id the queue assigned, inside an envelope that carries
// that id with attempts 0, so the event keeps its id (inspect finds it by
// it, the job gets it) and its payload stays the producer's bytes.
func redriven(e Entry) []byte {
	if e.IDAssigned {
		return envelope(envelopeHeader{ID: e.ID, Assigned: true}, e.Payload)
	}
	return e.Payload
}

// RedriveResult says what a redrive moved (or, for a dry run, would move).
type RedriveResult struct {
	// Moved are the dead letters pushed back to pending, oldest first.
	Moved []Entry
	// Skipped were left in the dead list, with why (RedriveAll only).
	Skipped []Skipped
	// Gone vanished between being read and being moved: another redrive or
	// a purge took them.
	Gone []Entry
}

// Skipped is a dead letter RedriveAll left in place.
type Skipped struct {
	Entry  Entry
	Reason string
}

// redriveScript moves dead letters back to the back of the pending list:
// each record is removed (scanning from the tail, where the oldest are) and,
// only if it was there, its payload is pushed — the producer's bytes, no
// envelope, so attempts start again; or, for an event whose id the queue
// assigned, those bytes in an envelope with that id and attempts 0
// (redriven).
//
// KEYS[1] dead list
// KEYS[2] pending list
// KEYS[3] counters hash
// ARGV[2i-1] a dead-letter record exactly as stored
// ARGV[2i]   the entry to push (redriven)
// Output: for each record, 1 moved or 0 no longer in the dead list.
var redriveScript = redis.NewScript(`
local out, moved = {}, 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    moved = moved + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if moved > 0 then redis.call('HINCRBY', KEYS[3], 'redriven', moved) end
return out
`)

// Redrive moves the dead letters matching sels (event ids or "@"
// references; every dead letter of an id) back to the pending list, oldest
// first, payload byte for byte (an id the queue assigned travels beside it,
// see redriven). Nothing changes when a selector matches no
// dead letter (ErrNotFound) or a payload is above MAX_PAYLOAD_BYTES or a
// record unreadable (ErrRedriveRefused); dryRun reports and changes nothing.
func (q *Queue) Redrive(ctx context.Context, sels []Selector, dryRun bool) (RedriveResult, error) {
	var res RedriveResult
	for _, s := range sels {
		if s == (Selector{}) {
			return res, errors.New("redrive: an empty selector")
		}
	}
	found, err := q.findDead(ctx, sels)
	if err != nil {
		return res, err
	}
	var missing []string
	for _, s := range sels {
		hit := false
		for i := range found {
			if found[i].matches(s) {
				hit = true
				break
			}
		}
		if !hit {
			missing = append(missing, s.String())
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("%w: no dead letter has id or reference %s; nothing was redriven (peek dead lists them)", ErrNotFound, strings.Join(missing, ", "))
	}
	for i := range found {
		if err := q.fillDead(ctx, &found[i]); err != nil {
			return res, fmt.Errorf("%w: %w; nothing was redriven", ErrRedriveRefused, err)
		}
		if why := q.cannotRedrive(found[i]); why != "" {
			return res, fmt.Errorf("%w: dead letter %s: %s; nothing was redriven", ErrRedriveRefused, label(found[i]), why)
		}
	}
	if dryRun {
		res.Moved = found
		return res, nil
	}
	return res, q.redriveBatches(ctx, found, &res)
}

// RedriveAll moves every dead letter there was when it started back to the
// pending list, oldest first, in batches of one script each. A dead letter
// whose payload is above MAX_PAYLOAD_BYTES, or an unreadable record, is left
// in place and reported in Skipped.
func (q *Queue) RedriveAll(ctx context.Context, dryRun bool) (RedriveResult, error) {
	var res RedriveResult
	total, err := q.rdb.LLen(ctx, q.dead).Result()
	if err != nil {
		return res, fmt.Errorf("read %s: %w", q.dead, err)
	}
	seen, keep := int64(0), int64(0) // keep: entries left at the tail
	for seen < total {
		off := keep
		if dryRun {
			off = seen
		}
		page := min(scanPage, total-seen)
		_, raws, _, err := q.listPage(ctx, q.dead, -(off + 1), -1, int(page), scanPrefix, "")
		if err != nil {
			return res, err
		}
		if len(raws) == 0 {
			break
		}
		var batch []Entry
		for _, r := range raws {
			e := deadEntry(r)
			e.tailIdx = -r.idx - 1
			seen++
			why := ""
			if err := q.fillDead(ctx, &e); err != nil {
				why = err.Error()
			} else {
				why = q.cannotRedrive(e)
			}
			if why != "" {
				res.Skipped = append(res.Skipped, Skipped{Entry: e, Reason: why})
				keep++
				continue
			}
			if dryRun {
				res.Moved = append(res.Moved, e)
				continue
			}
			batch = append(batch, e)
		}
		if err := q.redriveBatches(ctx, batch, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// cannotRedrive says why a dead letter must stay, or "".
func (q *Queue) cannotRedrive(e Entry) string {
	if len(e.Payload) > q.cfg.MaxPayloadBytes {
		return fmt.Sprintf("its payload is %d bytes, above MAX_PAYLOAD_BYTES (%d): a job would dead-letter it again; raise MAX_PAYLOAD_BYTES (and the jobs' memory) to redrive it",
			len(e.Payload), q.cfg.MaxPayloadBytes)
	}
	return ""
}

// redriveBatches moves es: small dead letters in batches of one
// redriveScript each, bounded in count and bytes (Redis copies a script's
// arguments into Lua: redriveBatchBytes bounds that copy); a larger one
// alone, by redriveAlone, which never goes through Lua.
func (q *Queue) redriveBatches(ctx context.Context, es []Entry, res *RedriveResult) error {
	for len(es) > 0 {
		if len(es[0].record)+len(redriven(es[0])) > redriveBatchBytes {
			moved, err := q.redriveAlone(ctx, es[0])
			if err != nil {
				return fmt.Errorf("redrive dead letter %s: %w", label(es[0]), err)
			}
			if moved {
				res.Moved = append(res.Moved, es[0])
			} else {
				res.Gone = append(res.Gone, es[0])
			}
			es = es[1:]
			continue
		}
		n, size := 0, 0
		for n < len(es) && n < scanPage && size+len(es[n].record)+len(redriven(es[n])) <= redriveBatchBytes {
			size += len(es[n].record) + len(redriven(es[n]))
			n++
		}
		args := make([]any, 0, 2*n)
		for _, e := range es[:n] {
			args = append(args, e.record, redriven(e))
		}
		got, err := redriveScript.Run(ctx, q.rdb, []string{q.dead, q.pending, q.counters}, args...).Int64Slice()
		if err != nil {
			return fmt.Errorf("redrive %d dead letters: %w", n, err)
		}
		for i, e := range es[:n] {
			if i < len(got) && got[i] == 1 {
				res.Moved = append(res.Moved, e)
			} else {
				res.Gone = append(res.Gone, e)
			}
		}
		es = es[n:]
	}
	return nil
}

// errMoved: a dead letter is not at the index it was read from.
var errMoved = errors.New("dead letter moved")

// redriveAlone moves one large dead letter by a transaction instead of a
// script, so that Redis holds no Lua copy of it: WATCH the dead list, check
// the record is still where it was read (by its index from the tail, which
// only moves when an older dead letter is removed), then MULTI, replace the
// record by a small tombstone (LSET) and remove that (LREM), LPUSH the
// payload, count it, EXEC. The record itself is never sent back to Redis:
// Redis holds the payload it was sent and its copy in the AOF buffer (2x the
// entry), and frees the record before it stores the payload. A change to the
// dead list meanwhile aborts the EXEC: it is tried again, after finding the
// record anew if it moved. moved is false when the record is no longer in
// the dead list (another redrive or a purge took it).
func (q *Queue) redriveAlone(ctx context.Context, e Entry) (moved bool, err error) {
	const tries = 20
	tomb := "redis-keda redrive tombstone " + newID() // never a dead letter (JSON objects)
	for range tries {
		err := q.rdb.Watch(ctx, func(tx *redis.Tx) error {
			idx := -(e.tailIdx + 1)
			got, err := tx.LIndex(ctx, q.dead, idx).Result()
			if errors.Is(err, redis.Nil) || (err == nil && got != e.record) {
				return errMoved
			}
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.LSet(ctx, q.dead, idx, tomb)
				p.LRem(ctx, q.dead, -1, tomb)
				p.LPush(ctx, q.pending, redriven(e))
				p.HIncrBy(ctx, q.counters, "redriven", 1)
				return nil
			})
			return err
		}, q.dead)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, redis.TxFailedErr): // the dead list changed: again
		case errors.Is(err, errMoved):
			found, err := q.findDead(ctx, []Selector{{ref: e.sha1}})
			if err != nil {
				return false, err
			}
			if len(found) == 0 {
				return false, nil
			}
			e.tailIdx = found[0].tailIdx
		default:
			return false, err
		}
	}
	return false, fmt.Errorf("the dead list changed under each of %d tries; run the command again", tries)
}

// purgeScript deletes a whole list and counts what it held.
//
// KEYS[1] the list (pending or dead)
// KEYS[2] counters hash
// ARGV[1] counter to increment by the list's length
// Output: the number of entries deleted.
var purgeScript = redis.NewScript(`
local n = redis.call('LLEN', KEYS[1])
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], ARGV[1], n)
end
return n
`)

// Purge deletes every entry of the pending or the dead list (events in
// flight are not touched) and returns how many there were.
func (q *Queue) Purge(ctx context.Context, loc Location) (int64, error) {
	var key string
	switch loc {
	case LocPending:
		key = q.pending
	case LocDead:
		key = q.dead
	case LocScheduled:
		return q.purgeScheduled(ctx)
	default:
		return 0, fmt.Errorf("purge: %q is not a list that can be purged: use pending, scheduled or dead", loc)
	}
	n, err := purgeScript.Run(ctx, q.rdb, []string{key, q.counters}, "purged_"+string(loc)).Int64()
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", key, err)
	}
	return n, nil
}

// label names an entry for a message: its id (Printable) and reference.
func label(e Entry) string {
	if e.ID == "" {
		return e.Ref
	}
	return Printable(e.ID) + " (" + e.Ref + ")"
}

// Printable returns s fit for a terminal: every character that is not
// printable is quoted — newline, carriage return and tab as \n, \r, \t;
// the other C0 controls and DEL as \xNN (so a producer's \x1b]0;…\x07 or
// \x1b[2J reaches no terminal); C1 controls, Unicode format characters
// (bidirectional overrides) and other non-printable characters as \uNNNN
// (\UNNNNNNNN above U+FFFF); each byte of invalid UTF-8 as \xNN. Printable
// text, spaces and backslashes included, is left as it is: the text output
// is for reading, --json gives the exact bytes.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !(r == ' ' || unicode.IsPrint(r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// partialDeadLetter reads a dead-letter record that may be cut short
// (prefix of a record of size bytes): the fields before the payload, and as
// much of the payload as the prefix holds.
func partialDeadLetter(prefix string, size int) (DeadLetter, []byte) {
	if len(prefix) >= size {
		if dl, err := parseDeadLetter(prefix); err == nil {
			return dl, dl.Payload
		}
	}
	var dl DeadLetter
	dec := json.NewDecoder(strings.NewReader(prefix))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		dl.Reason = "unreadable dead-letter record"
		return dl, nil
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := t.(string)
		if key == "payload" || key == "payload_base64" {
			rest := prefix[dec.InputOffset():]
			rest = strings.TrimLeft(rest, " \t\r\n:")
			rest = strings.TrimPrefix(rest, `"`)
			if key == "payload" {
				return dl, []byte(jsonStringPrefix(rest))
			}
			rest = rest[:len(rest)-len(rest)%4]
			p, _ := base64.StdEncoding.DecodeString(rest)
			return dl, p
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		switch key {
		case "id":
			_ = json.Unmarshal(v, &dl.ID)
		case "reason":
			_ = json.Unmarshal(v, &dl.Reason)
		case "attempts":
			_ = json.Unmarshal(v, &dl.Attempts)
		case "size":
			_ = json.Unmarshal(v, &dl.Size)
		case "dead_at":
			var s string
			if json.Unmarshal(v, &s) == nil {
				dl.DeadAt, _ = time.Parse(time.RFC3339Nano, s)
			}
		}
	}
	return dl, nil
}

// jsonStringPrefix decodes the start of a JSON string's body that was cut
// anywhere (even inside an escape).
func jsonStringPrefix(s string) string {
	for i := 0; i < 3; i++ { // a character cut in the middle: drop its bytes
		if r, n := utf8.DecodeLastRuneInString(s); r == utf8.RuneError && n == 1 {
			s = s[:len(s)-1]
		}
	}
	for cut := 0; cut <= 6 && cut <= len(s); cut++ {
		var out string
		if json.Unmarshal([]byte(`"`+s[:len(s)-cut]+`"`), &out) == nil {
			return out
		}
	}
	return ""
}

// topLevel returns the value of key in the JSON object doc starts with.
// doc may be cut short: a key after the cut is not found.
func topLevel(doc []byte, key string) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if k, _ := t.(string); k == key {
			return v, true
		}
	}
	return nil, false
}

// publishedAt is the payload's top-level published_at (RFC 3339), or zero.
func publishedAt(payload []byte) time.Time {
	v, ok := topLevel(payload, fieldPublishedAt)
	if !ok {
		return time.Time{}
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// PayloadText returns the payload as text when it is valid UTF-8 (a cut
// payload may end inside a character: that tail is dropped).
func (e Entry) PayloadText() (string, bool) {
	p := e.Payload
	if e.Truncated {
		for i := 0; i < 3 && len(p) > 0 && !utf8.Valid(p); i++ {
			p = p[:len(p)-1]
		}
	}
	if !utf8.Valid(p) {
		return "", false
	}
	return string(p), true
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// replyString and replyInt read script replies.
func replyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func replyInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
