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
	got := fmt.Sprintf("%d of %d replicas", e.Replicas, e.Want)
	if e.Replicas < 0 {
		got = fmt.Sprintf("unknown how many of %d replicas (WAIT failed: %v)", e.Want, e.Err)
	}
	return fmt.Sprintf("%v: %s (REDIS_MIN_REPLICAS) acknowledged the batch within %s (REDIS_MIN_REPLICAS_TIMEOUT) on master %s; "+
		"it is on the master and could vanish in a failover: retry it with the same ids", ErrNotReplicated, got, e.Timeout, e.Master)
}

// Is makes errors.Is(err, ErrNotReplicated) true.
func (e *NotReplicatedError) Is(target error) bool { return target == ErrNotReplicated }

func (e *NotReplicatedError) Unwrap() error { return e.Err }

// push LPUSHes a batch onto the pending list; with MinReplicas it also waits
// for that many replicas to have it.
func (q *Queue) push(ctx context.Context, args []any) error {
	if q.cfg.MinReplicas == 0 {
		return q.rdb.LPush(ctx, q.pending, args...).Err()
	}
	return q.pushReplicated(ctx, args)
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
func (q *Queue) pushReplicated(ctx context.Context, args []any) error {
	r := retrier{timeout: q.cfg.MinReplicasTimeout}
	for {
		pushed, err := q.pushWait(ctx, args)
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

// pushWait is one LPUSH + WAIT; pushed reports whether the LPUSH may have
// run.
func (q *Queue) pushWait(ctx context.Context, args []any) (pushed bool, err error) {
	master, err := q.masterClient(ctx)
	if err != nil {
		return false, err
	}
	conn := master.Conn() // one connection for both commands
	defer conn.Close()
	if err := conn.LPush(ctx, q.pending, args...).Err(); err != nil {
		return errors.Is(err, ErrReplyLost) || replyLost(err), err
	}
	n, err := conn.Wait(ctx, q.cfg.MinReplicas, q.cfg.MinReplicasTimeout).Result()
	addr := master.Options().Addr
	if addr == "FailoverClient" { // go-redis's name for Sentinel's master client
		addr = "(the master Sentinel named)"
	}
	if err != nil {
		return true, &NotReplicatedError{Replicas: -1, Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: addr, Err: err}
	}
	if n < int64(q.cfg.MinReplicas) {
		return true, &NotReplicatedError{Replicas: int(n), Want: q.cfg.MinReplicas, Timeout: q.cfg.MinReplicasTimeout, Master: addr}
	}
	return true, nil
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
