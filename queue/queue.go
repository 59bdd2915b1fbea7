// Package queue is the Redis reliable queue that the publisher and the jobs
// share: the whole data path of redis-keda.
//
// An event moves through these keys (see keys.go; formats in envelope.go):
//
//	publish   LPUSH                       -> pending (the list KEDA counts)
//	claim     register the claim token in leases, then
//	          BRPOPLPUSH pending          -> {q}:claim:<token>
//	lease     push the delivery header into the claim list, lease it
//	heartbeat                                extends the lease
//	ack       claim list, lease           -> gone
//	nack      claim list                  -> scheduled (due after the retry schedule's delay),
//	                                         or dead after MAX_ATTEMPTS
//	snooze    claim list                  -> scheduled (not an attempt)
//	move      scheduled, once due         -> pending (back; the mover, schedule.go)
//	publish later (PublishAt/PublishIn)   -> scheduled
//	release   claim list                  -> pending (front; shutdown, not an attempt)
//	reap      claim lists past deadline   -> pending (front) or dead
//
// Delivery is at least once: an event whose consumer stalls past its lease is
// given to another consumer, so handlers must tolerate a duplicate (use
// Event.ID). No transition drops an event, none edits its bytes, and every
// multi-key step is one Lua script declared next to the method that runs it.
//
// Where each step lives: queue.go (configuration, publish, stats), claim.go
// (register, BRPOPLPUSH, lease), finish.go (heartbeat, ack, nack, release,
// bury), schedule.go (the scheduled set, the mover, the retry schedule),
// work.go (Work: a handler between claim and finish), retry.go (which
// Redis errors are retried, and how), reap.go (expired leases), admin.go
// (operator reads and moves), keys.go and envelope.go (names and formats).
package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is the queue's part of a process's configuration.
type Config struct {
	// Name of the pending list (the list KEDA watches). Derived keys share
	// its Redis Cluster slot.
	Name string `env:"QUEUE" envDefault:"events"`
	// LeaseDuration is how long a claim stays valid without a heartbeat. It
	// is also the grace period for an entry that was claimed but never
	// leased.
	LeaseDuration time.Duration `env:"LEASE_DURATION" envDefault:"30s"`
	// MaxAttempts is how many deliveries an event gets before it is
	// dead-lettered. Every delivery counts, including one whose job died
	// before it could lease the event.
	MaxAttempts int `env:"MAX_ATTEMPTS" envDefault:"5"`
	// RetryBase is the delay before the first retry; each further retry
	// waits RetryFactor times longer, at most RetryMax, minus a random part
	// of up to RetryJitter of it (Config.Backoff). A failed attempt waits in
	// the scheduled set meanwhile (no Job starts for it). RetryBase 0
	// retries at once (back of the pending list, as before the schedule);
	// RetryFactor 0 counts as 1.
	RetryBase   time.Duration `env:"RETRY_BASE" envDefault:"15s"`
	RetryFactor float64       `env:"RETRY_FACTOR" envDefault:"4"`
	RetryMax    time.Duration `env:"RETRY_MAX" envDefault:"1h"`
	RetryJitter float64       `env:"RETRY_JITTER" envDefault:"0.25"`
	// MaxWait bounds an event's "wait"; longer events are dead-lettered.
	MaxWait time.Duration `env:"MAX_WAIT" envDefault:"3600s"`
	// MaxPayloadBytes bounds an event's size. A larger entry is
	// dead-lettered at its first claim by a script (the job never sends it
	// back to Redis), and PublishRaw refuses it.
	MaxPayloadBytes int `env:"MAX_PAYLOAD_BYTES" envDefault:"1048576"`
	// MinReplicas makes Publish and PublishRaw report success only once
	// that many replicas have the batch (Redis WAIT on the connection that
	// ran the LPUSH); 0 does not wait. See publishDurably.
	MinReplicas int `env:"REDIS_MIN_REPLICAS" envDefault:"0"`
	// MinReplicasTimeout bounds that wait: past it Publish fails with
	// ErrNotReplicated (the caller retries the batch with the same ids).
	MinReplicasTimeout time.Duration `env:"REDIS_MIN_REPLICAS_TIMEOUT" envDefault:"2s"`
	// DoneMaxRecords bounds the done records the ack script keeps (the
	// last ack of each event id: when, attempt, duration, pod; see
	// done.go); the oldest beyond it are trimmed, up to two per ack. 0
	// writes none.
	DoneMaxRecords int `env:"DONE_MAX_RECORDS" envDefault:"100000"`
	// DoneMaxAge trims done records older than this (up to two per ack);
	// 0: no age bound (DONE_MAX_RECORDS still bounds them).
	DoneMaxAge time.Duration `env:"DONE_MAX_AGE" envDefault:"168h"`
}

// Validate reports the first unusable setting, naming its variable.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: QUEUE is empty; set a list name such as events", ErrInvalidConfig)
	case strings.ContainsAny(c.Name, "{}") && !hasHashTag(c.Name):
		return fmt.Errorf("%w: QUEUE=%q has braces that are not a Redis Cluster hash tag; use a name such as events or {events}:high", ErrInvalidConfig, c.Name)
	case isBareTag(c.Name):
		tag := c.Name[1 : len(c.Name)-1]
		return fmt.Errorf("%w: QUEUE=%q is the hash tag of QUEUE=%s, whose keys are already %s:* (same Redis Cluster slot): the two spellings would share every key but the pending list; "+
			"use QUEUE=%s and listName %s in the KEDA trigger (move pending events once with redis-cli RENAME %s %s)", ErrInvalidConfig, c.Name, tag, c.Name, tag, tag, c.Name, tag)
	case reservedSegment(c.Name) != "":
		return fmt.Errorf("%w: QUEUE=%q is shaped like a key of another queue (%q follows the hash tag); a queue name must not have a segment :leases, :claimed, :dead, :counters, :finished, :claim, :scheduled or :done after its tag",
			ErrInvalidConfig, c.Name, ":"+reservedSegment(c.Name))
	case c.LeaseDuration < time.Second:
		return fmt.Errorf("%w: LEASE_DURATION=%s is below 1s; use a duration such as 30s", ErrInvalidConfig, c.LeaseDuration)
	case c.MaxAttempts < 1:
		return fmt.Errorf("%w: MAX_ATTEMPTS=%d must be at least 1", ErrInvalidConfig, c.MaxAttempts)
	case c.RetryBase < 0:
		return fmt.Errorf("%w: RETRY_BASE=%s must be 0 (retry at once) or more, such as 15s", ErrInvalidConfig, c.RetryBase)
	case c.RetryFactor != 0 && !(c.RetryFactor >= 1 && c.RetryFactor <= 100):
		return fmt.Errorf("%w: RETRY_FACTOR=%v must be from 1 (a fixed delay) to 100, such as 4", ErrInvalidConfig, c.RetryFactor)
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("%w: RETRY_MAX=%s is below RETRY_BASE=%s; use a bound such as 1h", ErrInvalidConfig, c.RetryMax, c.RetryBase)
	case !(c.RetryJitter >= 0 && c.RetryJitter <= 1):
		return fmt.Errorf("%w: RETRY_JITTER=%v must be from 0 (no jitter) to 1, such as 0.25", ErrInvalidConfig, c.RetryJitter)
	case c.MaxWait <= 0:
		return fmt.Errorf("%w: MAX_WAIT=%s must be positive, such as 3600s", ErrInvalidConfig, c.MaxWait)
	case c.MaxPayloadBytes < 64:
		return fmt.Errorf("%w: MAX_PAYLOAD_BYTES=%d is below 64; use a size in bytes such as 1048576 (1 MiB)", ErrInvalidConfig, c.MaxPayloadBytes)
	case c.DoneMaxRecords < 0:
		return fmt.Errorf("%w: DONE_MAX_RECORDS=%d must be 0 (keep no done records) or more, such as 100000", ErrInvalidConfig, c.DoneMaxRecords)
	case c.DoneMaxAge < 0 || (c.DoneMaxAge > 0 && c.DoneMaxAge < time.Millisecond):
		return fmt.Errorf("%w: DONE_MAX_AGE=%s must be 0 (no age bound) or at least 1ms, such as 168h", ErrInvalidConfig, c.DoneMaxAge)
	case c.MinReplicas < 0:
		return fmt.Errorf("%w: REDIS_MIN_REPLICAS=%d must be 0 (do not wait for replicas) or more", ErrInvalidConfig, c.MinReplicas)
	case c.MinReplicas > 0 && c.MinReplicasTimeout < time.Millisecond:
		return fmt.Errorf("%w: REDIS_MIN_REPLICAS_TIMEOUT=%s must be at least 1ms with REDIS_MIN_REPLICAS=%d, such as 2s", ErrInvalidConfig, c.MinReplicasTimeout, c.MinReplicas)
	}
	return nil
}

// Queue is a reliable queue on one Redis database. It is safe for concurrent
// use.
type Queue struct {
	rdb    redis.UniversalClient
	cfg    Config
	closer io.Closer // the client Open made, nil for New

	pending, leases, claimed, dead, counters, finished, claimPrefix string
	scheduled, done, doneOrder                                      string
}

// New returns the queue named by cfg on rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Name
	return &Queue{
		rdb:         rdb,
		cfg:         cfg,
		pending:     pendingKey(n),
		leases:      leasesKey(n),
		claimed:     claimedKey(n),
		dead:        deadKey(n),
		counters:    countersKey(n),
		finished:    finishedKey(n),
		claimPrefix: claimPrefix(n),
		scheduled:   scheduledKey(n),
		done:        doneKey(n),
		doneOrder:   doneOrderKey(n),
	}, nil
}

// Open connects a new client for rc and returns the queue on it; Close
// releases the client. (New is for a client the caller owns.)
func Open(rc RedisConfig, cfg Config) (*Queue, error) {
	rdb, err := rc.NewClient()
	if err != nil {
		return nil, err
	}
	q, err := New(rdb, cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	q.closer = rdb
	return q, nil
}

// Close closes the client Open made; it does nothing for a queue from New.
func (q *Queue) Close() error {
	if q.closer == nil {
		return nil
	}
	if err := q.closer.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// Config returns the queue's configuration.
func (q *Queue) Config() Config { return q.cfg }

// Ping checks that Redis answers.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// Publish pushes the events in one round trip (one multi-value LPUSH). The
// first event of the slice is consumed first. Events without an ID get one;
// PublishedAt is set to now when zero. It returns the events as published.
//
// A failed Publish may still have reached Redis (the reply was lost): the
// caller may retry, and should retry the *returned-on-success* form's ids —
// give events their ID (NewEventID) before the first attempt, so a retry
// re-sends the same ids and a duplicate is recognisable. Publish itself never
// re-sends.
//
// With MinReplicas > 0 success also means that many replicas have the batch;
// ErrNotReplicated means they did not within MinReplicasTimeout (the batch
// may still be on the master: retry it with the same ids).
func (q *Queue) Publish(ctx context.Context, events ...Event) ([]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	now := time.Now()
	out := make([]Event, len(events))
	args := make([]any, len(events))
	for i, ev := range events {
		if ev.ID == "" {
			ev.ID = newID()
		}
		if ev.PublishedAt.IsZero() {
			ev.PublishedAt = now
		}
		out[i] = ev
		args[i] = ev.Marshal()
	}
	if err := q.push(ctx, args); err != nil {
		return nil, fmt.Errorf("publish %d events: %w", len(events), err)
	}
	return out, nil
}

// PublishRaw pushes payloads as they are (any bytes: validation happens at
// claim time, where a bad payload is dead-lettered with its reason). A
// payload above MAX_PAYLOAD_BYTES is refused with ErrPayloadTooLarge, one
// that starts with the envelope marker "rkq1 " with ErrInvalidEvent; either
// way nothing of the call is published.
func (q *Queue) PublishRaw(ctx context.Context, payloads ...[]byte) error {
	if len(payloads) == 0 {
		return nil
	}
	args := make([]any, len(payloads))
	for i, p := range payloads {
		if err := q.checkRaw(p, i, len(payloads)); err != nil {
			return err
		}
		args[i] = p
	}
	if err := q.push(ctx, args); err != nil {
		return fmt.Errorf("publish %d payloads: %w", len(payloads), err)
	}
	return nil
}

// checkRaw refuses payload i of n as PublishRaw documents.
func (q *Queue) checkRaw(p []byte, i, n int) error {
	if bytes.HasPrefix(p, []byte(envelopeMagic)) {
		return fmt.Errorf("%w: payload %d of %d starts with %q, the marker of the queue's own envelopes (a job would read the rest as the queue's bookkeeping); start the payload with anything else, e.g. send it as JSON",
			ErrInvalidEvent, i+1, n, envelopeMagic)
	}
	if len(p) > q.cfg.MaxPayloadBytes {
		return fmt.Errorf("%w: payload %d of %d is %d bytes, above MAX_PAYLOAD_BYTES (%d); store large data elsewhere and publish a reference",
			ErrPayloadTooLarge, i+1, n, len(p), q.cfg.MaxPayloadBytes)
	}
	return nil
}

// DeadLetters returns up to n dead letters, newest first. A record that
// cannot be read is returned with its Reason saying so and Record set.
func (q *Queue) DeadLetters(ctx context.Context, n int64) ([]DeadLetter, error) {
	raws, err := q.rdb.LRange(ctx, q.dead, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(raws))
	for _, r := range raws {
		dl, err := parseDeadLetter(r)
		if err != nil {
			dl.Reason = "unreadable dead-letter record: " + err.Error()
		}
		out = append(out, dl)
	}
	return out, nil
}

// Stats is a snapshot of the queue.
type Stats struct {
	Pending int64 `json:"pending"`
	// Processing counts leased deliveries (in flight).
	Processing int64 `json:"processing"`
	// Claiming counts registered claims not leased yet: jobs waiting for an
	// event, or killed between BRPOPLPUSH and the lease (the reaper returns
	// those entries after their deadline).
	Claiming int64 `json:"claiming"`
	Dead     int64 `json:"dead"`
	// Scheduled counts events waiting for their due time (retries,
	// delayed events) in the scheduled set.
	Scheduled int64 `json:"scheduled"`
	// OldestInFlight is how long the oldest leased delivery has been in
	// flight (0 when none).
	OldestInFlight time.Duration `json:"oldest_in_flight"`
	// Counters are the per-outcome totals the scripts keep (acked, retried,
	// dead, released, reaped_requeued, reaped_rescued, reaped_dead,
	// reaped_stale).
	Counters map[string]int64 `json:"counters"`
}

// Stats reads the queue in one round trip; its cost does not grow with the
// number of events.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	pipe := q.rdb.Pipeline()
	pending := pipe.LLen(ctx, q.pending)
	leases := pipe.ZCard(ctx, q.leases)
	claimed := pipe.ZCard(ctx, q.claimed)
	dead := pipe.LLen(ctx, q.dead)
	scheduled := pipe.ZCard(ctx, q.scheduled)
	oldest := pipe.ZRangeWithScores(ctx, q.claimed, 0, 0)
	now := pipe.Time(ctx)
	counters := pipe.HGetAll(ctx, q.counters)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return s, fmt.Errorf("read queue stats: %w", err)
	}
	s.Pending, s.Processing, s.Dead, s.Scheduled = pending.Val(), claimed.Val(), dead.Val(), scheduled.Val()
	s.Claiming = max(leases.Val()-claimed.Val(), 0)
	if o := oldest.Val(); len(o) == 1 {
		s.OldestInFlight = max(now.Val().Sub(time.UnixMilli(int64(o[0].Score))), 0)
	}
	s.Counters = make(map[string]int64, len(counters.Val()))
	for k, v := range counters.Val() {
		s.Counters[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return s, nil
}

// Persistence is what the server says about its persistence (CONFIG GET,
// else INFO persistence) and what a Redis restart would cost.
type Persistence struct {
	// AppendOnly is "yes" or "no"; AppendFsync "always", "everysec" or
	// "no"; Save the RDB snapshot rules ("" = none). A field the server
	// did not report (INFO does not give appendfsync or save) is "?".
	AppendOnly, AppendFsync, Save string
	// Risk is a warning for the operator, "" when a restart loses nothing
	// acknowledged (AOF with appendfsync always).
	Risk string
}

// Persistence reads the server's persistence settings: CONFIG GET when the
// ACL allows it, else INFO persistence; an error (NOPERM for the documented
// application user, which may run neither) when it can read neither.
func (q *Queue) Persistence(ctx context.Context) (Persistence, error) {
	p := Persistence{AppendOnly: "?", AppendFsync: "?", Save: "?"}
	cfg, err := q.rdb.ConfigGet(ctx, "app*").Result() // appendonly, appendfsync
	if err == nil {
		save, serr := q.rdb.ConfigGet(ctx, "save").Result()
		if serr == nil {
			p.AppendOnly, p.AppendFsync, p.Save = cfg["appendonly"], cfg["appendfsync"], save["save"]
		}
		err = serr
	}
	if err != nil {
		info, ierr := q.rdb.Info(ctx, "persistence").Result()
		if ierr != nil {
			return p, fmt.Errorf("read persistence settings: %w (INFO: %w)", err, ierr)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
				p.AppendOnly = map[string]string{"1": "yes", "0": "no"}[v]
			}
		}
	}
	switch {
	case p.AppendOnly == "yes" && p.AppendFsync == "always":
	case p.AppendOnly == "yes" && p.AppendFsync == "everysec":
		p.Risk = "Redis persistence: AOF with appendfsync everysec — a Redis crash can lose the last second of writes (published events, claims, acks); use appendfsync always to lose nothing"
	case p.AppendOnly == "yes":
		p.Risk = "Redis persistence: AOF without a reliable fsync — a Redis crash can lose the writes the OS had not flushed (published events, claims, acks); use appendfsync always to lose nothing"
	case p.AppendOnly == "no" && p.Save != "" && p.Save != "?":
		p.Risk = "Redis persistence: RDB snapshots only (no AOF) — a Redis restart goes back to the last snapshot: events published since are lost, events in flight vanish or are delivered again; use appendonly yes with appendfsync always"
	case p.AppendOnly == "no" && p.Save == "":
		p.Risk = "Redis has no persistence (appendonly no, no RDB snapshots) — a Redis restart loses every event, pending and in flight; use appendonly yes with appendfsync always"
	case p.AppendOnly == "no":
		p.Risk = "Redis reports AOF off (appendonly no) — a Redis restart loses every event written since its last RDB snapshot, if any; use appendonly yes with appendfsync always"
	}
	return p, nil
}
