// The schedule: events that wait for their time — a failed attempt waiting
// for its retry, an event published for later (PublishAt, PublishIn), a
// snoozed event — sit in the queue's scheduled ZSET until they are due; the
// mover (MoveDue) then pushes them onto the pending list, where KEDA counts
// them. KEDA's redis trigger counts only the pending list, so waiting work
// starts no Job.

package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// scheduledKey is the ZSET of events waiting for their time: score = due
// time (Unix ms, Redis server clock), member = "<nonce> <entry>" (see
// ScheduledMember). The mover moves due members to pending.
func scheduledKey(name string) string { return hashTag(name) + ":scheduled" }

// A scheduled member is
//
//	<nonce> <entry>
//
// nonce: 1 to 64 bytes of A-Z a-z 0-9 . _ : - that make the member unique
// (a sorted set keeps one member per value: two identical payloads due at
// once would otherwise become one event); then exactly one space; then the
// entry exactly as it goes onto the pending list (the producer's payload, or
// the queue's envelope for a retry). The mover strips "<nonce> " and pushes
// the rest. A member that does not start that way is dead-lettered whole,
// with a reason naming this format (it is never dropped).
//
// A non-Go producer schedules an event with plain redis-cli, the score being
// the due time in Unix milliseconds:
//
//	redis-cli ZADD '{events}:scheduled' 1796000000000 "$(openssl rand -hex 8) {\"wait\": 3}"
const (
	maxNonceLen = 64
	// scheduledFormat is quoted by the mover's dead letter for a malformed
	// member.
	scheduledFormat = `a scheduled member must be "<nonce> <payload>": a unique nonce of 1-64 bytes of A-Z a-z 0-9 . _ : - (e.g. 16 random hex digits), one space, then the payload (see README, "Delayed events"); the whole member is kept here as the payload`
)

// ScheduledMember returns the member that schedules entry (a payload) in
// the scheduled ZSET, with a fresh random nonce.
func ScheduledMember(payload []byte) []byte {
	nonce := newID()
	m := make([]byte, 0, len(nonce)+1+len(payload))
	m = append(m, nonce...)
	m = append(m, ' ')
	return append(m, payload...)
}

// validNonce reports whether s is a nonce of the member format (Go's twin
// of the mover script's check; TestScheduledMemberFormat runs both).
func validNonce(s string) bool {
	if len(s) == 0 || len(s) > maxNonceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// scheduleScript adds members to the scheduled ZSET.
//
// KEYS[1] scheduled zset
// ARGV[1] "at": ARGV[2] is the due time (Unix ms); "in": ARGV[2] is ms
// from now by the server's clock
// ARGV[2] ms
// ARGV[3..] members
// Output: the due time used (Unix ms)
var scheduleScript = redis.NewScript(luaPrelude + `
local due = tonumber(ARGV[2])
if ARGV[1] == 'in' then due = now_ms() + due end
for i = 3, #ARGV, 500 do
  local args = {}
  for j = i, math.min(i + 499, #ARGV) do
    table.insert(args, due)
    table.insert(args, ARGV[j])
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return due
`)

// PublishAt publishes events that stay in the scheduled set until at (by
// Redis's clock), then go to the back of the pending list. A time in the
// past is due at once. Otherwise it is Publish: ids and PublishedAt are
// filled in, the returned events are the ones published, and with
// REDIS_MIN_REPLICAS success means that many replicas have them. Two equal
// events are two scheduled members (each gets its own nonce).
func (q *Queue) PublishAt(ctx context.Context, at time.Time, events ...Event) ([]Event, error) {
	out, members := q.scheduledEvents(events)
	if len(members) == 0 {
		return nil, nil
	}
	if err := q.schedule(ctx, "at", at.UnixMilli(), members); err != nil {
		return nil, fmt.Errorf("publish %d events at %s: %w", len(events), at.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// PublishIn is PublishAt with a delay from now by Redis's clock (TIME at the
// moment the events are stored): they are due after d.
func (q *Queue) PublishIn(ctx context.Context, d time.Duration, events ...Event) ([]Event, error) {
	out, members := q.scheduledEvents(events)
	if len(members) == 0 {
		return nil, nil
	}
	if err := q.schedule(ctx, "in", max(d, 0).Milliseconds(), members); err != nil {
		return nil, fmt.Errorf("publish %d events in %s: %w", len(events), d, err)
	}
	return out, nil
}

// PublishRawAt is PublishRaw for later: the payloads (any bytes, checked as
// PublishRaw checks them) are due at at, by Redis's clock.
func (q *Queue) PublishRawAt(ctx context.Context, at time.Time, payloads ...[]byte) error {
	members, err := q.rawMembers(payloads)
	if err != nil || len(members) == 0 {
		return err
	}
	if err := q.schedule(ctx, "at", at.UnixMilli(), members); err != nil {
		return fmt.Errorf("publish %d payloads at %s: %w", len(payloads), at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// PublishRawIn is PublishRawAt with a delay from now by Redis's clock.
func (q *Queue) PublishRawIn(ctx context.Context, d time.Duration, payloads ...[]byte) error {
	members, err := q.rawMembers(payloads)
	if err != nil || len(members) == 0 {
		return err
	}
	if err := q.schedule(ctx, "in", max(d, 0).Milliseconds(), members); err != nil {
		return fmt.Errorf("publish %d payloads in %s: %w", len(payloads), d, err)
	}
	return nil
}

func (q *Queue) scheduledEvents(events []Event) ([]Event, []any) {
	now := time.Now()
	out := make([]Event, len(events))
	members := make([]any, len(events))
	for i, ev := range events { // as Publish does
		if ev.ID == "" {
			ev.ID = newID()
		}
		if ev.PublishedAt.IsZero() {
			ev.PublishedAt = now
		}
		out[i] = ev
		members[i] = ScheduledMember(ev.Marshal())
	}
	return out, members
}

func (q *Queue) rawMembers(payloads [][]byte) ([]any, error) {
	members := make([]any, len(payloads))
	for i, p := range payloads {
		if err := q.checkRaw(p, i, len(payloads)); err != nil {
			return nil, err
		}
		members[i] = ScheduledMember(p)
	}
	return members, nil
}

// schedule runs scheduleScript; with MinReplicas it WAITs on the script's
// connection as Publish does (once: ErrNotReplicated when short).
func (q *Queue) schedule(ctx context.Context, mode string, ms int64, members []any) error {
	args := append([]any{mode, ms}, members...)
	keys := []string{scheduledKey(q.cfg.Name)}
	if q.cfg.MinReplicas == 0 {
		return scheduleScript.Run(ctx, q.rdb, keys, args...).Err()
	}
	master, err := q.masterClient(ctx)
	if err != nil {
		return err
	}
	conn := master.Conn()
	defer conn.Close()
	if err := scheduleScript.Run(ctx, conn, keys, args...).Err(); err != nil {
		return err
	}
	n, err := conn.Wait(ctx, q.cfg.MinReplicas, q.cfg.MinReplicasTimeout).Result()
	switch {
	case err != nil:
		return &NotReplicatedError{Replicas: -1, Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: master.Options().Addr, Err: err}
	case n < int64(q.cfg.MinReplicas):
		return &NotReplicatedError{Replicas: int(n), Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: master.Options().Addr}
	}
	return nil
}

// moveBatch is how many due members one mover script call moves: O(batch)
// work per call, so Redis is never blocked for long.
const moveBatch = 1000

// moveScript moves due members of the scheduled ZSET to the back of the
// pending list, earliest due first (so the earliest is claimed first among
// them); a member that is not "<nonce> <entry>" goes to the dead list whole.
// One script call is atomic: several movers at once move each member once.
//
// KEYS[1] scheduled zset
// KEYS[2] pending list
// KEYS[3] dead list
// KEYS[4] counters hash
// ARGV[1] batch size
// ARGV[2] dead_at for a malformed member's dead letter (RFC 3339)
// ARGV[3] its reason
// Output: {moved, dead-lettered, ms until the next member is due (0: due
// now, another batch waits; -1: the set is empty)}
var moveScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out, bad = {}, {}
for _, m in ipairs(due) do
  local sp = string.find(m, ' ', 1, true)
  if sp and sp >= 2 and sp <= 65 and not string.find(string.sub(m, 1, sp - 1), '[^%w%._:%-]') then
    table.insert(out, string.sub(m, sp + 1))
  else
    table.insert(bad, dead_record({reason = ARGV[3], attempts = 0, dead_at = ARGV[2]}, m, utf8_valid(m)))
  end
end
for i = 1, #out, 500 do
  redis.call('LPUSH', KEYS[2], unpack(out, i, math.min(i + 499, #out)))
end
for i = 1, #bad, 500 do
  redis.call('LPUSH', KEYS[3], unpack(bad, i, math.min(i + 499, #bad)))
end
for i = 1, #due, 500 do
  redis.call('ZREM', KEYS[1], unpack(due, i, math.min(i + 499, #due)))
end
if #out > 0 then redis.call('HINCRBY', KEYS[4], 'scheduled_moved', #out) end
if #bad > 0 then
  redis.call('HINCRBY', KEYS[4], 'scheduled_dead', #bad)
  redis.call('HINCRBY', KEYS[4], 'dead', #bad)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if #nxt == 2 then wait = math.max(tonumber(nxt[2]) - now, 0) end
return {#out, #bad, wait}
`)

// MoveResult is what one MoveDue did.
type MoveResult struct {
	Moved int // due events pushed onto the pending list
	Dead  int // malformed members dead-lettered
	// Next is how long until the next scheduled event is due (by Redis's
	// clock, when MoveDue finished); -1 when nothing is scheduled.
	Next time.Duration
}

// MoveDue moves every due scheduled event to the back of the pending list,
// earliest due first, in batches of moveBatch (each one script call, O(batch)),
// until none is due. Several movers may run at once: each event moves once.
func (q *Queue) MoveDue(ctx context.Context) (MoveResult, error) {
	var res MoveResult
	keys := []string{scheduledKey(q.cfg.Name), q.pending, q.dead, q.counters}
	for {
		r, err := moveScript.Run(ctx, q.rdb, keys, moveBatch, nowRFC3339(), scheduledFormat).Int64Slice()
		if err != nil {
			return res, fmt.Errorf("move due events: %w", err)
		}
		res.Moved += int(r[0])
		res.Dead += int(r[1])
		res.Next = time.Duration(r[2]) * time.Millisecond
		if r[2] < 0 {
			res.Next = -1
		}
		if r[2] != 0 {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
}

// Backoff is the retry schedule: the delay before the retry that follows
// failed attempt n (1 = the first delivery):
//
//	d = min(RETRY_BASE × RETRY_FACTOR^(n-1), RETRY_MAX)
//	delay = d − rand[0, RETRY_JITTER × d)
//
// so delays grow exponentially, never exceed RETRY_MAX, and retries of a
// burst that failed together spread out.
func (c Config) Backoff(attempt int) time.Duration {
	d := float64(c.RetryBase) * math.Pow(max(c.RetryFactor, 1), float64(max(attempt, 1)-1))
	if d > float64(c.RetryMax) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(c.RetryMax)
	}
	return time.Duration(d - rand.Float64()*c.RetryJitter*d)
}

// RetryAfterError is a handler's verdict "retry, but not before Delay"
// (wrap it, or return it from RetryAfter): the attempt counts as any
// failure does (dead-lettered with Err's text on the MAX_ATTEMPTS-th), and
// the retry waits Delay in the scheduled set instead of the retry
// schedule's delay.
type RetryAfterError struct {
	Delay time.Duration
	Err   error // why it failed: the dead letter's reason on the last attempt
}

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.Delay)
	}
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the verdict "err; retry after d" (d < 0 counts as 0).
func RetryAfter(d time.Duration, err error) error {
	return &RetryAfterError{Delay: max(d, 0), Err: err}
}

// SnoozeError is a handler's verdict "not now: run me again after Delay"
// (River's JobSnooze): the event waits Delay in the scheduled set and the
// delivery does not count as an attempt. Return it from Snooze.
type SnoozeError struct {
	Delay time.Duration
}

func (e *SnoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.Delay) }

// Snooze returns the verdict "run again after d, not counted" (d < 0 counts
// as 0).
func Snooze(d time.Duration) error { return &SnoozeError{Delay: max(d, 0)} }

// retryDelay is the delay a handler's error asks for, -1 for the schedule's.
func retryDelay(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return max(ra.Delay, 0)
	}
	return -1
}

// snoozeDelay is a *SnoozeError's delay within err.
func snoozeDelay(err error) time.Duration {
	var se *SnoozeError
	errors.As(err, &se)
	return max(se.Delay, 0)
}

// scheduledPageScript reads the earliest-due members one at a time (see
// luaDrop): each one's size, SHA-1, score and first bytes.
//
// KEYS[1] scheduled zset
// ARGV[1] first index
// ARGV[2] how many
// ARGV[3] bytes of each member to return
// Output: {size, sha1, score, prefix, ...}
var scheduledPageScript = redis.NewScript(luaDrop + `
local out = {}
local first, n, pre = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = first, first + n - 1 do
  local z = redis.call('ZRANGE', KEYS[1], i, i, 'WITHSCORES')
  if #z == 0 then break end
  local m = z[1]
  table.insert(out, #m)
  table.insert(out, redis.sha1hex(m))
  table.insert(out, z[2])
  table.insert(out, string.sub(m, 1, pre))
  drop(#m)
end
return out
`)

// scheduledPage reads count members from index first, earliest due first.
func (q *Queue) scheduledPage(ctx context.Context, first, count int) ([]Entry, error) {
	res, err := scheduledPageScript.Run(ctx, q.rdb, []string{q.scheduled}, first, count, scanPrefix).Slice()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.scheduled, err)
	}
	out := make([]Entry, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		size, sha, prefix := int(replyInt(res[i])), replyString(res[i+1]), replyString(res[i+3])
		score, _ := strconv.ParseFloat(replyString(res[i+2]), 64)
		out = append(out, scheduledEntry(rawEntry{size: size, sha1: sha, prefix: prefix}, int64(score)))
	}
	return out, nil
}

// scheduledEntry reads a scheduled member: "<nonce> <entry>", the entry as
// pendingEntry reads it. A malformed member (the mover will dead-letter it)
// is shown whole as its payload.
func scheduledEntry(raw rawEntry, dueMs int64) Entry {
	nonce, rest, ok := strings.Cut(raw.prefix, " ")
	var e Entry
	if ok && validNonce(nonce) {
		off := len(nonce) + 1
		e = pendingEntry(rawEntry{size: raw.size - off, sha1: raw.sha1, prefix: rest})
	} else {
		e = Entry{Ref: "@" + raw.sha1[:refHex], sha1: raw.sha1, Size: raw.size, Payload: []byte(raw.prefix), Truncated: raw.size > len(raw.prefix)}
	}
	e.Location, e.stored, e.DueAt = LocScheduled, raw.size, time.UnixMilli(dueMs)
	return e
}

// peekScheduled returns up to n scheduled events, the earliest due first.
func (q *Queue) peekScheduled(ctx context.Context, n int) ([]Entry, error) {
	var out []Entry
	for len(out) < n {
		page, err := q.scheduledPage(ctx, len(out), min(scanPage, n-len(out)))
		if err != nil {
			return nil, err
		}
		for i := range page {
			page[i].Position = int64(len(out) + i + 1)
		}
		out = append(out, page...)
		if len(page) < min(scanPage, n-len(out)+len(page)) {
			break
		}
	}
	return out, nil
}

// purgeScheduledScript deletes the scheduled set.
//
// KEYS[1] scheduled zset
// KEYS[2] counters hash
// Output: the number of members deleted.
var purgeScheduledScript = redis.NewScript(`
local n = redis.call('ZCARD', KEYS[1])
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'purged_scheduled', n)
end
return n
`)

func (q *Queue) purgeScheduled(ctx context.Context) (int64, error) {
	n, err := purgeScheduledScript.Run(ctx, q.rdb, []string{q.scheduled, q.counters}).Int64()
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", q.scheduled, err)
	}
	return n, nil
}

// makeDueScript makes scheduled members due now (the mover then moves
// them): one named by its score and SHA-1, or up to a batch of those not
// due yet.
//
// KEYS[1] scheduled zset
// KEYS[2] counters hash
// ARGV[1] "one" or "batch"
// ARGV[2] "one": the member's score; "batch": how many
// ARGV[3] "one": the member's SHA-1
// Output: how many were made due (0 for "one": it is gone, or due already)
var makeDueScript = redis.NewScript(luaPrelude + luaDrop + `
local now = now_ms()
local n = 0
if ARGV[1] == 'one' then
  local ms = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])
  for _, m in ipairs(ms) do
    if redis.sha1hex(m) == ARGV[3] then
      if tonumber(ARGV[2]) > now then redis.call('ZADD', KEYS[1], now, m) end
      n = 1
      break
    end
    drop(#m)
  end
else
  local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
  for _, m in ipairs(ms) do
    redis.call('ZADD', KEYS[1], now, m)
  end
  n = #ms
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'scheduled_redriven', n) end
return n
`)

// RedriveScheduled makes the scheduled events that match sels (by event id
// or reference) due now, so the mover moves them to the back of the pending
// list at its next run (their attempts unchanged). It returns the entries
// made due; one that was moved or deleted meanwhile is left out.
func (q *Queue) RedriveScheduled(ctx context.Context, sels []Selector) ([]Entry, error) {
	keys := []string{q.scheduled, q.counters}
	var matched []Entry
	for first := 0; ; first += scanPage {
		page, err := q.scheduledPage(ctx, first, scanPage)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			for _, sel := range sels {
				if e.matches(sel) {
					matched = append(matched, e)
					break
				}
			}
		}
		if len(page) < scanPage {
			break
		}
	}
	var moved []Entry
	for _, e := range matched {
		n, err := makeDueScript.Run(ctx, q.rdb, keys, "one", e.DueAt.UnixMilli(), e.sha1).Int()
		if err != nil {
			return moved, fmt.Errorf("make scheduled event %s due: %w", label(e), err)
		}
		if n == 1 {
			moved = append(moved, e)
		}
	}
	return moved, nil
}

// RedriveScheduledAll makes every scheduled event due now (batches of
// moveBatch, one script call each) and returns how many it changed.
func (q *Queue) RedriveScheduledAll(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := makeDueScript.Run(ctx, q.rdb, []string{q.scheduled, q.counters}, "batch", moveBatch).Int()
		total += n
		if err != nil {
			return total, fmt.Errorf("make %s due: %w", q.scheduled, err)
		}
		if n < moveBatch {
			return total, nil
		}
	}
}

// RunMover moves due scheduled events until ctx ends: a MoveDue at once,
// then again after every (at most) or at the next due time the last run saw,
// whichever comes first; so an event is pending within about every of its
// due time, or at once when it was already known at the previous run. each,
// if set, sees every run's result (err non-nil when the run failed; the
// next is tried after every). While no mover runs, due events wait in the
// scheduled set: nothing is lost.
func (q *Queue) RunMover(ctx context.Context, every time.Duration, each func(MoveResult, error)) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := every
		res, err := q.MoveDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && res.Next >= 0 && res.Next < next {
			next = res.Next
		}
		if each != nil {
			each(res, err)
		}
		t.Reset(next)
	}
}
