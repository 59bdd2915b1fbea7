package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ReapResult counts what Reap did.
type ReapResult struct {
	Requeued int // leased deliveries whose lease expired, given back to pending
	Rescued  int // entries claimed but never leased (the job died first), given back to pending
	Dead     int // either kind, on its MAX_ATTEMPTS-th delivery: dead-lettered
	Stale    int // registered claims that never moved an entry (the job died waiting), forgotten
	// Unreadable claim lists (a first element that is not a delivery
	// header, or more than two elements: the queue never writes them), each
	// quarantined: every element dead-lettered byte for byte (counted in
	// Dead too) with the reason UnreadableClaimReason.
	Unreadable int
	Batches    int // script calls it took
}

// Reap batch bounds: entries per script call, and payload bytes after which
// a call stops early (one huge entry is handled alone). Measured on a 2-core
// machine, a batch of 200 small entries takes ~2 ms of Redis time.
const (
	reapBatch      = 100
	reapBatchBytes = 256 << 10
)

// UnreadableClaimReason is the reason of the dead letters of an unreadable
// claim list, filled with its token, the element's position and the
// number of elements (reapScript formats it in Lua the same way).
const UnreadableClaimReason = "unreadable claim list %s: element %d of %d, kept byte for byte (its first element is not a delivery header)"

// dueScript lists up to a batch of claim tokens past their deadline, oldest
// deadline first (Redis server clock).
//
// KEYS[1] leases zset
// ARGV[1] batch size
// Output: the tokens.
var dueScript = redis.NewScript(luaPrelude + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
`)

// reapScript recovers the claim lists of due tokens (from dueScript). Each
// is one of:
//   - empty: a claimer that died waiting — the token is forgotten;
//   - [entry]: claimed but never leased — the delivery counts: back to the
//     front of pending in an envelope with attempts+1, or dead on the
//     MAX_ATTEMPTS-th;
//   - [header, entry]: the lease expired — back to the front of pending with
//     the header's attempts, or dead when that was the MAX_ATTEMPTS-th;
//   - anything else (a first element that is not a delivery header, more
//     than two elements): unreadable — quarantined, every element to the
//     dead list byte for byte (UnreadableClaimReason), so that one corrupt
//     list neither fails the batch nor stays forever.
//
// Every key it touches is in KEYS, the claim lists included, although they
// share the queue's slot anyway: while a Redis Cluster migrates that slot,
// Redis refuses (TRYAGAIN, ASK) a script whose keys are not all on one node
// before it runs, whereas a key built inside the script fails only when the
// script reaches it — after it may already have pushed entries (duplicates)
// — with an error that does not say "retry later". A token is handled only
// if it is still due when the script runs (a heartbeat, or another reaper,
// may have come in between), so many reapers may run at once; every entry
// is handled in O(1).
//
// KEYS[1] leases zset
// KEYS[2] claimed zset
// KEYS[3] pending list
// KEYS[4] dead list
// KEYS[5] counters hash
// KEYS[5+i] claim list of token i
// ARGV[1] MAX_ATTEMPTS
// ARGV[2] byte budget of the batch
// ARGV[3] dead_at for dead letters (RFC 3339)
// ARGV[3+i] token i
// Output: {requeued, rescued, dead, stale, stopped, unreadable}; stopped is
// 1 when the byte budget ended the batch before its last token.
var reapScript = redis.NewScript(luaPrelude + `
local max_attempts = tonumber(ARGV[1])
local now = now_ms()
local requeued, rescued, dead, stale, bytes, stopped, unreadable = 0, 0, 0, 0, 0, 0, 0
local function header(c)
  if #c ~= 2 then return nil end
  local ok, h = pcall(cjson.decode, c[1])
  if not ok or type(h) ~= 'table' or type(h.attempt) ~= 'number' or type(h.off) ~= 'number'
    or h.off < 0 or h.off > #c[2] or h.off % 1 ~= 0 then return nil end
  return h
end
local done, keys, gone = 0, {}, {}
for i = 1, #KEYS - 5 do
  if bytes >= tonumber(ARGV[2]) then stopped = 1; break end
  local key, token = KEYS[5 + i], ARGV[3 + i]
  local deadline = redis.call('ZSCORE', KEYS[1], token)
  if deadline and tonumber(deadline) <= now then
    local c = redis.call('LRANGE', key, 0, -1)
    if #c == 0 then
      stale = stale + 1
    elseif #c == 1 then
      local e = c[1]
      bytes = bytes + #e
      local h, payload = split_entry(e)
      local attempts = ((h and tonumber(h.attempts)) or 0) + 1
      local nh = {attempts = attempts}
      if h and h.assigned then nh.id = h.id; nh.assigned = true end
      if attempts >= max_attempts then
        redis.call('LPUSH', KEYS[4], dead_record({id = nh.id, attempts = attempts, dead_at = ARGV[3],
          reason = string.format('claimed but never leased on delivery %d of %d (MAX_ATTEMPTS): the job died right after claiming it every time; a payload too large for the job\'s memory does this', attempts, max_attempts)},
          payload, utf8_valid(payload)))
        dead = dead + 1
      else
        redis.call('RPUSH', KEYS[3], envelope(nh, payload))
        rescued = rescued + 1
      end
    elseif not header(c) then
      for j = 1, #c do
        bytes = bytes + #c[j]
        redis.call('LPUSH', KEYS[4], dead_record({attempts = 0, dead_at = ARGV[3],
          reason = string.format('unreadable claim list %s: element %d of %d, kept byte for byte (its first element is not a delivery header)', token, j, #c)},
          c[j], utf8_valid(c[j])))
      end
      dead = dead + #c
      unreadable = unreadable + 1
    else
      local h = header(c)
      local e = c[2]
      bytes = bytes + #e
      local payload = string.sub(e, h.off + 1)
      if h.attempt >= max_attempts then
        redis.call('LPUSH', KEYS[4], dead_record({id = h.id, attempts = h.attempt, dead_at = ARGV[3],
          reason = string.format('lease expired on attempt %d of %d (MAX_ATTEMPTS): the job was killed or stalled without heartbeating', h.attempt, max_attempts)},
          payload, h.utf8))
        dead = dead + 1
      else
        local nh = {attempts = h.attempt}
        if h.assigned then nh.id = h.id; nh.assigned = true end
        redis.call('RPUSH', KEYS[3], envelope(nh, payload))
        requeued = requeued + 1
      end
    end
    done = done + 1
    keys[done], gone[done] = key, token
  end
end
if done > 0 then
  redis.call('DEL', unpack(keys))
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
if requeued > 0 then redis.call('HINCRBY', KEYS[5], 'reaped_requeued', requeued) end
if rescued > 0 then redis.call('HINCRBY', KEYS[5], 'reaped_rescued', rescued) end
if dead > 0 then
  redis.call('HINCRBY', KEYS[5], 'reaped_dead', dead)
  redis.call('HINCRBY', KEYS[5], 'dead', dead)
end
if stale > 0 then redis.call('HINCRBY', KEYS[5], 'reaped_stale', stale) end
return {requeued, rescued, dead, stale, stopped, unreadable}
`)

// Reap recovers the work of consumers that died, until nothing due is left:
//
//   - deliveries whose lease expired (killed or stalled job) go back to the
//     front of the pending list, or to the dead list when that was their
//     MAX_ATTEMPTS-th delivery;
//   - entries claimed but never leased (the job died between BRPOPLPUSH and
//     the lease, e.g. OOM-killed by a huge payload) go back to the front once
//     their claim's deadline passed; that delivery counts, so an entry that
//     keeps killing its job ends in the dead list.
//
// It works in batches (reapBatch entries or reapBatchBytes of payload per
// script call, after a read of the batch's due tokens), so Redis is never
// blocked for long, and every batch is O(its size) whatever the number of
// events in flight.
func (q *Queue) Reap(ctx context.Context) (ReapResult, error) {
	var res ReapResult
	fixed := []string{q.leases, q.claimed, q.pending, q.dead, q.counters}
	for {
		due, err := dueScript.Run(ctx, q.rdb, []string{q.leases}, reapBatch).StringSlice()
		if err != nil {
			return res, fmt.Errorf("reap %s: %w", q.pending, err)
		}
		if len(due) == 0 {
			return res, nil
		}
		keys := append(make([]string, 0, len(fixed)+len(due)), fixed...)
		args := make([]any, 0, 3+len(due))
		args = append(args, q.cfg.MaxAttempts, reapBatchBytes, nowRFC3339())
		for _, token := range due {
			keys = append(keys, q.claimPrefix+token)
			args = append(args, token)
		}
		out, err := reapScript.Run(ctx, q.rdb, keys, args...).Int64Slice()
		if err != nil {
			return res, fmt.Errorf("reap %s: %w", q.pending, err)
		}
		if len(out) != 6 {
			return res, fmt.Errorf("reap %s: reap script returned %d values, want 6", q.pending, len(out))
		}
		res.Batches++
		res.Requeued += int(out[0])
		res.Rescued += int(out[1])
		res.Dead += int(out[2])
		res.Stale += int(out[3])
		res.Unreadable += int(out[5])
		if out[4] == 0 && len(due) < reapBatch {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("reap %s: %w", q.pending, err)
		}
	}
}
