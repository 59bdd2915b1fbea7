// The finish path: heartbeat a delivery's lease, then end it exactly once with
// Ack, Nack (retry or dead), Release (shutdown) or Bury (dead now). Work, in
// work.go, drives it.

package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// heartbeatScript extends a lease that still exists, and says whether an
// operator asked to cancel the delivery (cancel.go).
//
// KEYS[1] leases zset
// KEYS[2] claim list
// KEYS[3] cancel zset
// ARGV[1] claim token
// ARGV[2] lease duration, ms
// Output: 1 extended, 2 extended and cancel requested, 0 the delivery is
// gone (the reaper took the event back).
var heartbeatScript = redis.NewScript(luaPrelude + `
if redis.call('LLEN', KEYS[2]) < 2 or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local c = redis.call('ZSCORE', KEYS[3], ARGV[1])
if c and tonumber(c) > now then return 2 end
return 1
`)

// Heartbeat extends the delivery's lease by LeaseDuration from now.
// ErrLeaseLost means the event is no longer ours. ErrCancelled means the
// lease was extended and an operator asked to cancel the event (Cancel):
// stop its work; Work then dead-letters it.
func (q *Queue) Heartbeat(ctx context.Context, d *Delivery) error {
	keys := []string{q.leases, q.claimPrefix + d.Token, cancelKey(q.cfg.Name)}
	n, err := heartbeatScript.Run(ctx, q.rdb, keys, d.Token, q.cfg.LeaseDuration.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, err)
	}
	switch n {
	case 0:
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, ErrLeaseLost)
	case 2:
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, ErrCancelled)
	}
	return nil
}

// ackScript removes a finished delivery and writes its event's done record
// (done.go): the record of an id acked before is replaced, its "acks"
// counted on. It then trims up to two of the oldest done records that are
// beyond DONE_MAX_RECORDS or older than DONE_MAX_AGE (O(1) per ack).
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// KEYS[4] counters hash
// KEYS[5] finished zset
// KEYS[6] done hash
// KEYS[7] done order zset
// ARGV[1] claim token
// ARGV[2] ms the finished marker lives
// ARGV[3] DONE_MAX_RECORDS (0: write no done record)
// ARGV[4] DONE_MAX_AGE, ms (0: no age bound)
// Output: 1 acked, 2 acked already by this token (an earlier reply was
// lost), 0 the delivery was not in flight (lease lost).
var ackScript = redis.NewScript(luaPrelude + `
if redis.call('LLEN', KEYS[1]) < 2 then
  if finished(KEYS[5], ARGV[1] .. ':acked') then return 2 end
  return 0
end
local maxn, maxage = tonumber(ARGV[3]), tonumber(ARGV[4])
if maxn > 0 then
  local ok, h = pcall(cjson.decode, redis.call('LINDEX', KEYS[1], 0))
  if ok and type(h) == 'table' and type(h.id) == 'string' and h.id ~= '' then
    local now = now_ms()
    local leased = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1]) or now)
    local acks = 1
    local prev = redis.call('HGET', KEYS[6], h.id)
    if prev then acks = (tonumber(string.match(prev, '"acks":(%d+)')) or 0) + 1 end
    local rec = '{"acked_ms":' .. string.format('%d', now) .. ',"leased_ms":' .. string.format('%d', leased) ..
      ',"attempt":' .. string.format('%d', tonumber(h.attempt) or 0) .. ',"acks":' .. acks
    if type(h.pod) == 'string' and h.pod ~= '' then
      rec = rec .. ',"pod":' .. cjson.encode(string.sub(h.pod, 1, 253))
    end
    redis.call('HSET', KEYS[6], h.id, rec .. '}')
    redis.call('ZADD', KEYS[7], now, h.id)
    local oldest = redis.call('ZRANGE', KEYS[7], 0, 1, 'WITHSCORES')
    local n = redis.call('ZCARD', KEYS[7])
    for i = 1, #oldest, 2 do
      if n > maxn or (maxage > 0 and tonumber(oldest[i + 1]) <= now - maxage) then
        redis.call('ZREM', KEYS[7], oldest[i])
        redis.call('HDEL', KEYS[6], oldest[i])
        n = n - 1
      end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'acked', 1)
mark_finished(KEYS[5], ARGV[1] .. ':acked', ARGV[2])
return 1
`)

// defaultFinishTTL is how long Ack, Nack and Release remember a finished
// delivery, so that calling one again after a lost reply (within that time)
// succeeds instead of reporting ErrLeaseLost. Work uses its own retry bound.
const defaultFinishTTL = 2 * time.Minute

// Ack marks the delivery done. Acking it again (an earlier Ack's reply was
// lost) succeeds. ErrLeaseLost means the reaper had already given the event
// back: it will be processed again, a duplicate.
func (q *Queue) Ack(ctx context.Context, d *Delivery) error {
	err := q.ack(ctx, d, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return nil
	}
	return err
}

// ack is Ack with the finished marker's lifetime; errFinished means an
// earlier run of the same ack did it.
func (q *Queue) ack(ctx context.Context, d *Delivery, ttl time.Duration) error {
	n, err := ackScript.Run(ctx, q.rdb, []string{q.claimPrefix + d.Token, q.leases, q.claimed, q.counters, q.finished, q.done, q.doneOrder},
		d.Token, ttl.Milliseconds(), q.cfg.DoneMaxRecords, q.cfg.DoneMaxAge.Milliseconds()).Int()
	switch {
	case err != nil:
		return fmt.Errorf("ack event %s: %w", d.Event.ID, err)
	case n == 0:
		return fmt.Errorf("ack event %s: %w", d.Event.ID, ErrLeaseLost)
	case n == 2:
		return fmt.Errorf("ack event %s: %w", d.Event.ID, errFinished)
	}
	return nil
}

// requeueScript finishes a delivery without acking it: back to the pending
// list in an envelope (the payload unchanged inside), or to the dead list.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// KEYS[4] pending list
// KEYS[5] dead list
// KEYS[6] counters hash
// KEYS[7] finished zset
// KEYS[8] scheduled zset
// ARGV[1] claim token
// ARGV[2] "back" (LPUSH: after the others), "front" (RPUSH: next), "dead",
// "later" (scheduled, due in ARGV[7] ms by the server's clock; the claim
// token is the member's nonce: see schedule.go)
// ARGV[3] deliveries to record in the envelope
// ARGV[4] dead letter (for "dead")
// ARGV[5] counter to increment (it also names the finished marker)
// ARGV[6] ms the finished marker lives
// ARGV[7] ms until due (for "later")
// Output: 1 moved, 2 moved already by this token (an earlier reply was lost),
// 0 the delivery was not in flight (lease lost).
var requeueScript = redis.NewScript(luaPrelude + `
if redis.call('LLEN', KEYS[1]) < 2 then
  if finished(KEYS[7], ARGV[1] .. ':' .. ARGV[5]) then return 2 end
  return 0
end
if ARGV[2] == 'dead' then
  redis.call('LPUSH', KEYS[5], ARGV[4])
else
  local h = cjson.decode(redis.call('LINDEX', KEYS[1], 0))
  local e = redis.call('LINDEX', KEYS[1], 1)
  local attempts = tonumber(ARGV[3])
  local out
  if attempts == 0 and not h.assigned then
    out = e -- released on its first delivery: the entry exactly as it came
  else
    local nh = {attempts = attempts}
    if h.assigned then nh.id = h.id; nh.assigned = true end
    out = envelope(nh, string.sub(e, h.off + 1))
  end
  if ARGV[2] == 'front' then
    redis.call('RPUSH', KEYS[4], out)
  elseif ARGV[2] == 'later' then
    redis.call('ZADD', KEYS[8], now_ms() + tonumber(ARGV[7]), ARGV[1] .. ' ' .. out)
  else
    redis.call('LPUSH', KEYS[4], out)
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[6], ARGV[5], 1)
mark_finished(KEYS[7], ARGV[1] .. ':' .. ARGV[5], ARGV[6])
return 1
`)

// requeue runs requeueScript: moved is false when the delivery was not in
// flight; errFinished when an earlier run with the same counter did it.
func (q *Queue) requeue(ctx context.Context, d *Delivery, where string, attempts int, record []byte, counter string, ttl time.Duration) (bool, error) {
	return q.requeueIn(ctx, d, where, attempts, record, counter, ttl, 0)
}

// requeueIn is requeue with the delay of where "later".
func (q *Queue) requeueIn(ctx context.Context, d *Delivery, where string, attempts int, record []byte, counter string, ttl, delay time.Duration) (bool, error) {
	keys := []string{q.claimPrefix + d.Token, q.leases, q.claimed, q.pending, q.dead, q.counters, q.finished, q.scheduled}
	n, err := requeueScript.Run(ctx, q.rdb, keys, d.Token, where, attempts, record, counter, ttl.Milliseconds(), max(delay, 0).Milliseconds()).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("%s event %s: %w", counter, d.Event.ID, err)
	case n == 2:
		return true, fmt.Errorf("%s event %s: %w", counter, d.Event.ID, errFinished)
	}
	return n == 1, nil
}

// Nack gives up this delivery because processing failed with reason: the
// event waits in the scheduled set for the retry schedule's delay
// (Config.Backoff of this attempt; with RETRY_BASE 0 it goes straight to the
// back of the pending list), or goes to the dead-letter list when this was
// its MaxAttempts-th delivery. dead reports which. Nacking it again (an
// earlier Nack's reply was lost) succeeds. ErrLeaseLost means the event was
// no longer ours.
func (q *Queue) Nack(ctx context.Context, d *Delivery, reason string) (dead bool, err error) {
	return q.NackAfter(ctx, d, reason, -1)
}

// NackAfter is Nack with the delay chosen by the caller (a handler's
// retry-after) instead of the schedule's; delay < 0 means the schedule's,
// 0 the back of the pending list at once. The attempt counts: on the
// MaxAttempts-th delivery the event is dead-lettered all the same.
func (q *Queue) NackAfter(ctx context.Context, d *Delivery, reason string, delay time.Duration) (dead bool, err error) {
	dead, err = q.nack(ctx, d, reason, delay, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return dead, nil
	}
	return dead, err
}

// nack is NackAfter with the finished marker's lifetime; with errFinished,
// dead still says where the earlier run put the event.
func (q *Queue) nack(ctx context.Context, d *Delivery, reason string, delay, ttl time.Duration) (dead bool, err error) {
	var moved bool
	if delay < 0 {
		delay = 0
		if q.cfg.RetryBase > 0 {
			delay = q.cfg.Backoff(d.Attempt)
		}
	}
	switch {
	case d.Attempt >= q.cfg.MaxAttempts:
		rec := deadRecord(d.Event.ID, fmt.Sprintf("failed on attempt %d of %d (MAX_ATTEMPTS): %s", d.Attempt, q.cfg.MaxAttempts, reason),
			d.Attempt, []byte(d.payload))
		moved, err = q.requeue(ctx, d, "dead", d.Attempt, rec, "dead", ttl)
		dead = true
	case delay > 0:
		moved, err = q.requeueIn(ctx, d, "later", d.Attempt, nil, "retried", ttl, delay)
	default:
		moved, err = q.requeue(ctx, d, "back", d.Attempt, nil, "retried", ttl)
	}
	switch {
	case errors.Is(err, errFinished):
		return dead, err
	case err != nil:
		return false, err
	case !moved:
		return false, fmt.Errorf("nack event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return dead, nil
}

// Release hands the event back unprocessed, at the front of the pending list,
// without counting the delivery as an attempt: for a consumer that is shutting
// down (SIGTERM). Releasing it again (an earlier Release's reply was lost)
// succeeds. ErrLeaseLost means the event was no longer ours.
func (q *Queue) Release(ctx context.Context, d *Delivery) error {
	err := q.release(ctx, d, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return nil
	}
	return err
}

func (q *Queue) release(ctx context.Context, d *Delivery, ttl time.Duration) error {
	moved, err := q.requeue(ctx, d, "front", d.Attempt-1, nil, "released", ttl)
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("release event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// Bury dead-letters the delivery now, whatever its attempt, with reason:
// for an event that can never succeed. ErrLeaseLost means the event was no
// longer ours.
func (q *Queue) Bury(ctx context.Context, d *Delivery, reason string) error {
	err := q.bury(ctx, d, reason, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return nil // an earlier Bury's reply was lost; it did bury
	}
	return err
}

// bury is Bury with the finished marker's lifetime (errFinished: an earlier
// run did it).
func (q *Queue) bury(ctx context.Context, d *Delivery, reason string, ttl time.Duration) error {
	rec := deadRecord(d.Event.ID, fmt.Sprintf("failed on attempt %d of %d, not retried: %s", d.Attempt, q.cfg.MaxAttempts, reason),
		d.Attempt, []byte(d.payload))
	moved, err := q.requeue(ctx, d, "dead", d.Attempt, rec, "dead", ttl)
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("dead-letter event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// Snooze hands the event back to run again after delay, without counting
// this delivery as an attempt (River's JobSnooze): it waits in the scheduled
// set, then goes to the back of the pending list. Snoozing it again (an
// earlier Snooze's reply was lost) succeeds. ErrLeaseLost means the event was
// no longer ours.
func (q *Queue) Snooze(ctx context.Context, d *Delivery, delay time.Duration) error {
	err := q.snooze(ctx, d, delay, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return nil
	}
	return err
}

func (q *Queue) snooze(ctx context.Context, d *Delivery, delay, ttl time.Duration) error {
	moved, err := q.requeueIn(ctx, d, "later", d.Attempt-1, nil, "snoozed", ttl, delay)
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("snooze event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}
