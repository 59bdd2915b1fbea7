package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReapResult counts what one Reap pass did.
type ReapResult struct {
	Requeued int // expired leases given back to pending
	Dead     int // expired leases of events out of attempts, dead-lettered
	Rescued  int // entries that never got a lease, given back to pending
}

// reapBatch bounds the work of one pass; the next pass takes the rest.
const reapBatch = 1000

// Reap recovers the work of consumers that died:
//
//   - entries whose lease expired (killed or stalled consumer) go back to
//     the front of the pending list, or to the dead-letter list when that was
//     their MaxAttempts-th delivery;
//   - entries that never got a lease (a consumer died between BRPOPLPUSH and
//     the lease script) go back to the front of pending once they have been
//     seen unleased for LeaseDuration.
//
// Every move is one script that re-checks its condition, so Reap is safe to
// run from many processes at once and never races a live consumer: a
// heartbeat that lands first keeps the event where it is.
func (q *Queue) Reap(ctx context.Context) (ReapResult, error) {
	var res ReapResult
	if err := q.reapExpired(ctx, &res); err != nil {
		return res, err
	}
	if err := q.rescueUnleased(ctx, &res); err != nil {
		return res, err
	}
	return res, nil
}

func (q *Queue) reapExpired(ctx context.Context, res *ReapResult) error {
	now, err := q.redisNow(ctx)
	if err != nil {
		return err
	}
	entries, err := q.rdb.ZRangeByScore(ctx, q.leases, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: reapBatch,
	}).Result()
	if err != nil {
		return fmt.Errorf("list expired leases: %w", err)
	}
	for _, entry := range entries {
		var fields map[string]json.RawMessage
		var id string
		if json.Unmarshal([]byte(entry), &fields) == nil {
			id, _ = parseID(fields[fieldID])
		}
		if id == "" { // not written by this package: keep it, but out of the way
			rec := deadRecord(DeadLetter{Reason: "unreadable in-flight entry with an expired lease", Payload: entry})
			if ok, err := q.deadLetter(ctx, entry, rec, "", modeExpired); err != nil {
				return err
			} else if ok {
				res.Dead++
			}
			continue
		}
		attempts, err := q.rdb.HGet(ctx, q.attempts, id).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read attempts of %s: %w", id, err)
		}
		payload := mustJSON(without(fields, fieldClaim, fieldClaimedAt))
		if attempts >= q.cfg.MaxAttempts {
			rec := deadRecord(DeadLetter{
				ID:       id,
				Reason:   fmt.Sprintf("lease expired on attempt %d of %d (MAX_ATTEMPTS): the job was killed or stalled without heartbeating", attempts, q.cfg.MaxAttempts),
				Attempts: attempts,
				Payload:  string(payload),
			})
			ok, err := q.deadLetter(ctx, entry, rec, id, modeExpired)
			if err != nil {
				return err
			}
			if ok {
				res.Dead++
			}
			continue
		}
		ok, err := q.requeue(ctx, entry, payload, id, modeExpired, 0, "front")
		if err != nil {
			return err
		}
		if ok {
			res.Requeued++
		}
	}
	return nil
}

// rescueScript gives one never-leased entry back to the pending list.
//
// KEYS[1] processing list
// KEYS[2] pending list
// KEYS[3] unleased hash
// ARGV[1] raw entry
// Output: 1 rescued, 0 not there any more (leased or rescued meanwhile).
var rescueScript = redis.NewScript(`
local moved = redis.call('LREM', KEYS[1], 1, ARGV[1])
if moved == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return moved
`)

func (q *Queue) rescueUnleased(ctx context.Context, res *ReapResult) error {
	entries, err := q.rdb.LRange(ctx, q.processing, -reapBatch, -1).Result()
	if err != nil {
		return fmt.Errorf("list processing: %w", err)
	}
	seen, err := q.rdb.HGetAll(ctx, q.unleased).Result()
	if err != nil {
		return fmt.Errorf("read unleased: %w", err)
	}
	if len(entries) == 0 && len(seen) == 0 {
		return nil
	}
	now, err := q.redisNow(ctx)
	if err != nil {
		return err
	}

	// Which entries have no lease? Identical raw payloads may be in flight
	// together: count copies, each copy is one event.
	copies := map[string]int{}
	if len(entries) > 0 {
		scores, err := q.rdb.ZMScore(ctx, q.leases, entries...).Result()
		if err != nil {
			return fmt.Errorf("read leases: %w", err)
		}
		for i, e := range entries {
			if scores[i] == 0 { // ZMSCORE reports a missing member as 0
				copies[e]++
			}
		}
	}

	grace := q.cfg.LeaseDuration
	for entry, n := range copies {
		first, ok := seen[entry]
		if !ok {
			if err := q.rdb.HSetNX(ctx, q.unleased, entry, now.UnixMilli()).Err(); err != nil {
				return fmt.Errorf("mark unleased entry: %w", err)
			}
			continue
		}
		ms, _ := strconv.ParseInt(first, 10, 64)
		if now.Sub(time.UnixMilli(ms)) < grace {
			continue
		}
		for range n {
			moved, err := rescueScript.Run(ctx, q.rdb, []string{q.processing, q.pending, q.unleased}, entry).Int()
			if err != nil {
				return fmt.Errorf("rescue unleased entry: %w", err)
			}
			res.Rescued += moved
		}
	}
	// Forget entries that got their lease (or left) since we first saw them.
	var stale []string
	for entry := range seen {
		if copies[entry] == 0 {
			stale = append(stale, entry)
		}
	}
	if len(stale) > 0 {
		if err := q.rdb.HDel(ctx, q.unleased, stale...).Err(); err != nil {
			return fmt.Errorf("forget leased entries: %w", err)
		}
	}
	return nil
}

// redisNow is the Redis server's clock, the one lease deadlines use.
func (q *Queue) redisNow(ctx context.Context) (time.Time, error) {
	t, err := q.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("read redis time: %w", err)
	}
	return t, nil
}
