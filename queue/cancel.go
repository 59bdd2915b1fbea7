// Cancel: an operator stops an in-flight event. The request is a key beside
// the delivery's claim list, {q}:cancel:<token>; the job's next heartbeat
// reads it (heartbeatScript answers "extended, cancel requested"), Work
// cancels the handler's context with ErrCancelled as its cause (the runner
// turns that into SIGTERM to its program's process group), and once the
// handler has returned the event is dead-lettered with reason
// CancelReason, so that it can be redriven.

package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// CancelReason is the reason of the dead letter of a cancelled event.
const CancelReason = "cancelled by operator"

// ErrCancelled is the cause of a handler's context when an operator
// cancelled its event (Cancel); Heartbeat wraps it when the lease was
// extended and a cancel is pending.
var ErrCancelled = errors.New(CancelReason)

// cancelKey is the ZSET claim token -> until when (Unix ms, Redis clock)
// the request holds: a member asks the job holding that delivery to stop.
// Added by Cancel, read by every heartbeat, removed by Work once the event
// is dead-lettered; a request whose job died (the reaper recovers its
// event, requeued, not cancelled) is pruned by a later Cancel once expired.
// (Only commands the documented ACL user already has: ZADD, ZSCORE, ZREM,
// ZRANGEBYSCORE.)
func cancelKey(name string) string { return hashTag(name) + ":cancel" }

// cancelTTL is how long a cancel request waits for its job's heartbeat: a
// living job heartbeats every LeaseDuration/3; a dead one's lease expires
// and the reaper recovers the event (requeued, not cancelled).
func (q *Queue) cancelTTL() time.Duration { return 3 * q.cfg.LeaseDuration }

// cancelScript asks the job of one delivery to stop, if it is in flight.
//
// KEYS[1] leases zset
// KEYS[2] claim list
// KEYS[3] cancel zset
// ARGV[1] claim token
// ARGV[2] ms the request lives
// Output: 1 requested, 0 the delivery is not in flight (finished or
// recovered meanwhile).
var cancelScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 10)
for _, t in ipairs(old) do redis.call('ZREM', KEYS[3], t) end
if redis.call('LLEN', KEYS[2]) < 2 or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// Cancel asks the jobs processing the in-flight events sel names (an event
// id or "@" reference) to stop: each is dead-lettered with reason
// CancelReason once its job has stopped its handler, within about
// LeaseDuration/3 (its next heartbeat). It returns the deliveries it asked;
// ErrNotFound when no in-flight event matches. Its cost grows with the
// events in flight (one claims read of all of them), not with the queue.
func (q *Queue) Cancel(ctx context.Context, sel Selector) ([]Entry, error) {
	if sel == (Selector{}) {
		return nil, errors.New("cancel: an empty selector")
	}
	tokens, err := q.rdb.ZRange(ctx, q.claimed, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.claimed, err)
	}
	es, err := q.claims(ctx, tokens, snapshotPrefix)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range es {
		if e.Location != LocProcessing || !e.matches(sel) {
			continue
		}
		keys := []string{q.leases, q.claimPrefix + e.Token, cancelKey(q.cfg.Name)}
		n, err := cancelScript.Run(ctx, q.rdb, keys, e.Token, q.cancelTTL().Milliseconds()).Int()
		if err != nil {
			return out, fmt.Errorf("cancel event %s: %w", label(e), err)
		}
		if n == 1 {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no event in flight has id or reference %s; nothing was cancelled", ErrNotFound, sel)
	}
	return out, nil
}

// cancelled dead-letters a delivery whose cancel was requested, then
// removes the request (errFinished: an earlier run did it).
func (q *Queue) cancelled(ctx context.Context, d *Delivery, ttl time.Duration) error {
	rec := deadRecord(d.Event.ID, CancelReason, d.Attempt, []byte(d.payload))
	moved, err := q.requeue(ctx, d, "dead", d.Attempt, rec, "dead", ttl)
	if err != nil && !errors.Is(err, errFinished) {
		return err
	}
	if !moved {
		return fmt.Errorf("dead-letter cancelled event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	if derr := q.rdb.ZRem(ctx, cancelKey(q.cfg.Name), d.Token).Err(); derr != nil {
		return fmt.Errorf("dead-letter cancelled event %s: remove the request (it expires by itself): %w", d.Event.ID, derr)
	}
	return err
}
