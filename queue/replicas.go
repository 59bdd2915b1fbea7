package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// NotReplicatedError details ErrNotReplicated: a batch that is on the master
// (or may be) but on fewer replicas than REDIS_MIN_REPLICAS.
type NotReplicatedError struct {
	Replicas int           // replicas that acknowledged it (-1: unknown, the WAIT failed)
	Want     int           // REDIS_MIN_REPLICAS
	Timeout  time.Duration // REDIS_MIN_REPLICAS_TIMEOUT
	Master   string        // the master that ran the LPUSH
	Err      error         // why the WAIT failed, when it did
}

func (e *NotReplicatedError) Error() string {
	if e.Replicas < 0 {
		return fmt.Sprintf("%v: unknown how many of %d replicas (REDIS_MIN_REPLICAS) have the batch pushed on master %s (WAIT failed: %v); "+
			"it may be lost with that master: push it again with the same ids", ErrNotReplicated, e.Want, e.Master, e.Err)
	}
	return fmt.Sprintf("%v: %d of %d replicas (REDIS_MIN_REPLICAS) acknowledged the batch within %s (REDIS_MIN_REPLICAS_TIMEOUT) on master %s; "+
		"it is on the master and could vanish in a failover until they do: wait for them (PublishAwaitingReplicas), "+
		"or push it again with the same ids, which makes a second copy", ErrNotReplicated, e.Replicas, e.Want, e.Timeout, e.Master)
}

// Is makes errors.Is(err, ErrNotReplicated) true.
func (e *NotReplicatedError) Is(target error) bool { return target == ErrNotReplicated }

func (e *NotReplicatedError) Unwrap() error { return e.Err }

// push LPUSHes a batch onto the pending list; with MinReplicas it also waits
// for that many replicas to have it (one WAIT of MinReplicasTimeout).
func (q *Queue) push(ctx context.Context, args []any) error {
	if q.cfg.MinReplicas == 0 {
		return q.rdb.LPush(ctx, q.pending, args...).Err()
	}
	return q.pushReplicated(ctx, args, nil)
}

// minWaitPause spaces the WAITs of PublishAwaitingReplicas when
// REDIS_MIN_REPLICAS_TIMEOUT is tiny (a WAIT that comes back short at once).
const minWaitPause = 50 * time.Millisecond

// PublishAwaitingReplicas is Publish for a caller that must not push a
// batch twice while it waits for replicas (the publisher). With
// MinReplicas > 0, once the LPUSH has run it repeats only the WAIT, on the
// LPUSH's connection (WAIT counts the replicas that have every write of its
// connection), one WAIT of MinReplicasTimeout at a time, until MinReplicas
// replicas have the batch — or until keepWaiting, called after each short
// answer with that answer, returns false. It never sends the LPUSH again
// once it may have run.
//
// It returns the events and nil once they are replicated; the events and
// a *NotReplicatedError (Replicas >= 0) when keepWaiting stopped the wait:
// the batch is on the master, do not push it again; the events and a
// *NotReplicatedError with Replicas -1 when the WAIT itself failed (the
// connection broke: the master may be gone, and the batch with it: push it
// again with the same ids); nil and the error when the LPUSH failed (with
// ErrReplyLost it may have run). With MinReplicas 0 it is Publish.
func (q *Queue) PublishAwaitingReplicas(ctx context.Context, keepWaiting func(*NotReplicatedError) bool, events ...Event) ([]Event, error) {
	if q.cfg.MinReplicas == 0 || len(events) == 0 {
		return q.Publish(ctx, events...)
	}
	now := time.Now()
	out := make([]Event, len(events))
	args := make([]any, len(events))
	for i, ev := range events { // as Publish does
		if ev.ID == "" {
			ev.ID = newID()
		}
		if ev.PublishedAt.IsZero() {
			ev.PublishedAt = now
		}
		out[i] = ev
		args[i] = ev.Marshal()
	}
	if keepWaiting == nil {
		keepWaiting = func(*NotReplicatedError) bool { return false }
	}
	err := q.pushReplicated(ctx, args, keepWaiting)
	var nr *NotReplicatedError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &nr):
		return out, fmt.Errorf("publish %d events: %w", len(events), err)
	default:
		return nil, fmt.Errorf("publish %d events: %w", len(events), err)
	}
}

// AckingReplicas is how many replicas of the master of the queue's pending
// list acknowledge its replication stream: WAIT MinReplicas within (the ACL
// the README documents allows WAIT, not ROLE or INFO). It counts the
// replicas that have every write of a pooled connection within that time,
// so a frozen replica (connected, silent) does not count; it returns as
// soon as MinReplicas do, so a count at or above MinReplicas may be lower
// than the number of replicas.
func (q *Queue) AckingReplicas(ctx context.Context, within time.Duration) (int, error) {
	master, err := q.masterClient(ctx)
	if err != nil {
		return 0, err
	}
	conn := master.Conn()
	defer conn.Close()
	n, err := conn.Wait(ctx, q.cfg.MinReplicas, within).Result()
	if err != nil {
		return 0, fmt.Errorf("count the replicas (WAIT): %w", err)
	}
	return int(n), nil
}

// pushReplicated runs LPUSH, then WAIT MinReplicas MinReplicasTimeout, on one
// connection to the master of the pending list. WAIT counts the replicas
// that acknowledged every write made on its own connection so far, so it
// must follow the LPUSH on the same connection: in cluster mode that is a
// connection to the master of the queue's hash slot (WAIT has no key the
// cluster client could route by).
//
// Replication is asynchronous: a master can acknowledge an LPUSH and die
// before any replica has it, and the promoted replica then never saw the
// batch. Once WAIT has counted MinReplicas replicas, the batch survives the
// master's loss unless those replicas are lost too (Sentinel and Cluster
// promote the most up-to-date replica they can reach) — but not a split
// brain: a replica promoted while the old master still takes writes that
// its other replicas acknowledge. Waiting for every replica rules that out
// too (the promoted one stopped acknowledging when it was promoted).
//
// An LPUSH that provably did not run — refused with a transient error
// (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY, LOADING) or never sent (the
// dial failed: a dead master the slot map still names) — is sent again, to
// the master the refreshed slot map names, for up to MinReplicasTimeout.
// Nothing that may have run is sent again here: a lost reply is returned.
//
// keepWaiting (nil: one WAIT only) decides after each short WAIT whether to
// WAIT again on the same connection.
func (q *Queue) pushReplicated(ctx context.Context, args []any, keepWaiting func(*NotReplicatedError) bool) error {
	r := retrier{timeout: q.cfg.MinReplicasTimeout}
	for {
		pushed, err := q.pushWait(ctx, args, keepWaiting)
		if err == nil || pushed {
			return err
		}
		if cc, ok := q.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx) // asynchronous: the backoff below gives it time
		}
		if !r.again(ctx, err) { // permanent (a real refusal), or out of time
			return err
		}
	}
}

// pushWait is one LPUSH, then WAITs on its connection (more than one while
// keepWaiting says so); pushed reports whether the LPUSH may have run.
func (q *Queue) pushWait(ctx context.Context, args []any, keepWaiting func(*NotReplicatedError) bool) (pushed bool, err error) {
	master, err := q.masterClient(ctx)
	if err != nil {
		return false, err
	}
	conn := master.Conn() // one connection for both commands
	defer conn.Close()
	if err := conn.LPush(ctx, q.pending, args...).Err(); err != nil {
		return errors.Is(err, ErrReplyLost) || replyLost(err), err
	}
	addr := master.Options().Addr
	if addr == "FailoverClient" { // go-redis's name for Sentinel's master client
		addr = "(the master Sentinel named)"
	}
	var short *NotReplicatedError
	for {
		start := time.Now()
		n, err := conn.Wait(ctx, q.cfg.MinReplicas, q.cfg.MinReplicasTimeout).Result()
		if err != nil && short != nil && ctx.Err() != nil {
			return true, short // the caller's context ended a wait that had an answer
		}
		if err != nil {
			return true, &NotReplicatedError{Replicas: -1, Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: addr, Err: err}
		}
		if n >= int64(q.cfg.MinReplicas) {
			return true, nil
		}
		short = &NotReplicatedError{Replicas: int(n), Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: addr}
		if keepWaiting == nil || !keepWaiting(short) {
			return true, short
		}
		if d := minWaitPause - time.Since(start); d > 0 {
			select {
			case <-ctx.Done():
				return true, short
			case <-time.After(d):
			}
		}
	}
}

// masterClient is the client whose connections reach the master holding
// the pending list: the cluster client's node for the queue's slot, or the
// client itself (standalone; Sentinel's failover client dials the current
// master).
func (q *Queue) masterClient(ctx context.Context) (*redis.Client, error) {
	switch c := q.rdb.(type) {
	case *redis.ClusterClient:
		m, err := c.MasterForKey(ctx, q.pending)
		if err != nil {
			return nil, fmt.Errorf("find the master of %s: %w", q.pending, err)
		}
		return m, nil
	case *redis.Client:
		return c, nil
	default:
		return nil, fmt.Errorf("%w: REDIS_MIN_REPLICAS needs a *redis.Client or *redis.ClusterClient (RedisConfig.NewClient makes one), not %T", ErrInvalidConfig, q.rdb)
	}
}
