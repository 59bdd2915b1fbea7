// Package queue is the Redis reliable queue that the publisher and the jobs
// share: the whole data path of redis-keda.
//
// An event moves through these keys (see keys.go):
//
//	publish   LPUSH                    -> pending (the list KEDA counts)
//	claim     BRPOPLPUSH pending       -> processing, then the lease script
//	                                      swaps the raw entry for a unique
//	                                      in-flight entry and records a lease
//	heartbeat                             extends the lease
//	ack       processing, lease, attempts -> gone
//	nack      processing               -> pending, or dead after MaxAttempts
//	release   processing               -> pending (shutdown; not an attempt)
//	reap      expired or never-leased entries -> pending or dead
//
// Delivery is at least once: an event whose consumer stalls past its lease is
// given to another consumer, so handlers must tolerate a duplicate (use
// Event.ID). No transition drops an event: every multi-key step is one Lua
// script, declared next to the method that runs it.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// is also the grace period for an entry that never got a lease.
	LeaseDuration time.Duration `env:"LEASE_DURATION" envDefault:"30s"`
	// MaxAttempts is how many deliveries an event gets before it is
	// dead-lettered.
	MaxAttempts int `env:"MAX_ATTEMPTS" envDefault:"5"`
	// MaxWait bounds an event's "wait"; longer events are dead-lettered.
	MaxWait time.Duration `env:"MAX_WAIT" envDefault:"3600s"`
}

// Validate reports the first unusable setting, naming its variable.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: QUEUE is empty; set a list name such as events", ErrInvalidConfig)
	case strings.ContainsAny(c.Name, "{}") && !hasHashTag(c.Name):
		return fmt.Errorf("%w: QUEUE=%q has braces that are not a Redis Cluster hash tag; use a name such as events or {events}", ErrInvalidConfig, c.Name)
	case c.LeaseDuration < time.Second:
		return fmt.Errorf("%w: LEASE_DURATION=%s is below 1s; use a duration such as 30s", ErrInvalidConfig, c.LeaseDuration)
	case c.MaxAttempts < 1:
		return fmt.Errorf("%w: MAX_ATTEMPTS=%d must be at least 1", ErrInvalidConfig, c.MaxAttempts)
	case c.MaxWait <= 0:
		return fmt.Errorf("%w: MAX_WAIT=%s must be positive, such as 3600s", ErrInvalidConfig, c.MaxWait)
	}
	return nil
}

// Queue is a reliable queue on one Redis database. It is safe for concurrent
// use.
type Queue struct {
	rdb    redis.UniversalClient
	cfg    Config
	closer io.Closer // the client Open made, nil for New

	pending, processing, leases, attempts, dead, unleased string
}

// New returns the queue named by cfg on rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Name
	return &Queue{
		rdb:        rdb,
		cfg:        cfg,
		pending:    pendingKey(n),
		processing: processingKey(n),
		leases:     leasesKey(n),
		attempts:   attemptsKey(n),
		dead:       deadKey(n),
		unleased:   unleasedKey(n),
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
	if err := q.rdb.LPush(ctx, q.pending, args...).Err(); err != nil {
		return nil, fmt.Errorf("publish %d events: %w", len(events), err)
	}
	return out, nil
}

// PublishRaw pushes payloads as they are (any bytes: validation happens at
// claim time, where a bad payload is dead-lettered with its reason).
func (q *Queue) PublishRaw(ctx context.Context, payloads ...[]byte) error {
	if len(payloads) == 0 {
		return nil
	}
	args := make([]any, len(payloads))
	for i, p := range payloads {
		args[i] = p
	}
	if err := q.rdb.LPush(ctx, q.pending, args...).Err(); err != nil {
		return fmt.Errorf("publish %d payloads: %w", len(payloads), err)
	}
	return nil
}

// Delivery is one claimed event. Finish it with exactly one of Ack, Nack or
// Release (Work does that for you).
type Delivery struct {
	Event Event
	// Attempt is this delivery's number: 1 the first time.
	Attempt int
	// IDAssigned is true when the event came without an id and Claim
	// assigned Event.ID (it travels with the event from now on).
	IDAssigned bool
	ClaimedAt  time.Time

	fields map[string]json.RawMessage // the payload's fields, id included
	entry  string                     // this delivery's processing-list entry
}

// Payload returns the event as it goes back to the pending list on retry.
func (d *Delivery) Payload() []byte { return mustJSON(d.fields) }

// leaseScript turns the raw entry BRPOPLPUSH put in the processing list into
// this delivery's unique entry, records its lease and counts the attempt.
//
// KEYS[1] processing list
// KEYS[2] leases zset
// KEYS[3] attempts hash
// ARGV[1] raw entry, as moved by BRPOPLPUSH
// ARGV[2] in-flight entry (payload + claim token)
// ARGV[3] lease duration, ms
// ARGV[4] event id
// Output: the attempt number (>= 1), or -1 when the raw entry is no longer in
// the processing list (the reaper returned it to pending: not ours any more).
var leaseScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
return redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
`)

// Claim takes the oldest pending event, waiting up to timeout for one
// (BRPOPLPUSH pending processing), and leases it for LeaseDuration.
//
// Errors: ErrNoEvent when nothing arrived; an error wrapping ErrInvalidEvent
// (an *InvalidEventError) when the payload can never be processed — it has
// been dead-lettered with the reason, nothing is left to do. Any other error
// is Redis trouble; an event that was moved but not leased is recovered by
// the reaper.
func (q *Queue) Claim(ctx context.Context, timeout time.Duration) (*Delivery, error) {
	for {
		raw, err := q.rdb.BRPopLPush(ctx, q.pending, q.processing, timeout).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrNoEvent
		}
		if err != nil {
			return nil, fmt.Errorf("claim from %s: %w", q.pending, err)
		}
		d, err := q.lease(ctx, raw)
		if errors.Is(err, errRawGone) {
			continue // the reaper requeued it between our two steps; claim again
		}
		return d, err
	}
}

var errRawGone = errors.New("raw entry no longer in processing")

// lease validates the raw entry and turns it into a delivery (or a dead
// letter).
func (q *Queue) lease(ctx context.Context, raw string) (*Delivery, error) {
	fields, ev, err := parseEvent([]byte(raw), q.cfg.MaxWait)
	if err != nil {
		var inv *InvalidEventError
		errors.As(err, &inv)
		inv.Payload = raw
		rec := deadRecord(DeadLetter{Reason: inv.Reason, Attempts: 0, Payload: raw})
		if _, derr := q.deadLetter(ctx, raw, rec, "", modeRaw); derr != nil {
			return nil, fmt.Errorf("dead-letter invalid event (%s): %w", inv.Reason, derr)
		}
		return nil, inv
	}

	d := &Delivery{Event: ev, ClaimedAt: time.Now(), fields: fields}
	if ev.ID == "" {
		d.Event.ID = derivedID([]byte(raw))
		d.IDAssigned = true
		d.fields = withField(fields, fieldID, mustJSON(d.Event.ID))
	}
	d.entry = string(withFields(d.fields, map[string]json.RawMessage{
		fieldClaim:     mustJSON(newID()),
		fieldClaimedAt: mustJSON(d.ClaimedAt.UTC().Format(time.RFC3339Nano)),
	}))

	keys := []string{q.processing, q.leases, q.attempts}
	n, err := leaseScript.Run(ctx, q.rdb, keys, raw, d.entry, q.cfg.LeaseDuration.Milliseconds(), d.Event.ID).Int()
	if err != nil {
		return nil, fmt.Errorf("lease event %s: %w", d.Event.ID, err)
	}
	if n < 0 {
		return nil, errRawGone
	}
	d.Attempt = n
	return d, nil
}

// heartbeatScript extends a lease that still exists.
//
// KEYS[1] leases zset
// ARGV[1] in-flight entry
// ARGV[2] lease duration, ms
// Output: 1 extended, 0 the lease is gone (the reaper took the event back).
var heartbeatScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// Heartbeat extends the delivery's lease by LeaseDuration from now.
// ErrLeaseLost means the event is no longer ours.
func (q *Queue) Heartbeat(ctx context.Context, d *Delivery) error {
	n, err := heartbeatScript.Run(ctx, q.rdb, []string{q.leases}, d.entry, q.cfg.LeaseDuration.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// ackScript removes a finished delivery and its records.
//
// KEYS[1] processing list
// KEYS[2] leases zset
// KEYS[3] attempts hash
// ARGV[1] in-flight entry
// ARGV[2] event id
// Output: 1 acked, 0 the entry was not in flight (lease lost).
var ackScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
`)

// Ack marks the delivery done. ErrLeaseLost means the reaper had already
// given the event back (it will be processed again: a duplicate).
func (q *Queue) Ack(ctx context.Context, d *Delivery) error {
	n, err := ackScript.Run(ctx, q.rdb, []string{q.processing, q.leases, q.attempts}, d.entry, d.Event.ID).Int()
	if err != nil {
		return fmt.Errorf("ack event %s: %w", d.Event.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("ack event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// Guards for requeue and dead-letter scripts: who may move the entry.
const (
	modeOwner   = "owner"   // the consumer holding the lease
	modeExpired = "expired" // the reaper: only while the lease is expired
	modeRaw     = "raw"     // an entry that never had a lease
)

// requeueScript moves an in-flight entry back to the pending list.
//
// KEYS[1] processing list
// KEYS[2] leases zset
// KEYS[3] pending list
// KEYS[4] attempts hash
// ARGV[1] in-flight entry
// ARGV[2] payload to push back (the event without its claim token)
// ARGV[3] mode: "owner", or "expired" (only if the lease deadline passed)
// ARGV[4] attempts adjustment: 0, or -1 to not count this delivery (release)
// ARGV[5] event id
// ARGV[6] "front" (RPUSH: consumed next) or "back" (LPUSH: after the others)
// Output: 1 requeued, 0 not moved (not in flight, or the lease was renewed).
var requeueScript = redis.NewScript(`
if ARGV[3] == 'expired' then
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not deadline then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(deadline) > now then return 0 end
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[4]) ~= 0 then
  if redis.call('HINCRBY', KEYS[4], ARGV[5], ARGV[4]) <= 0 then
    redis.call('HDEL', KEYS[4], ARGV[5])
  end
end
if ARGV[6] == 'front' then
  redis.call('RPUSH', KEYS[3], ARGV[2])
else
  redis.call('LPUSH', KEYS[3], ARGV[2])
end
return 1
`)

func (q *Queue) requeue(ctx context.Context, entry string, payload []byte, id, mode string, adjust int, where string) (bool, error) {
	keys := []string{q.processing, q.leases, q.pending, q.attempts}
	n, err := requeueScript.Run(ctx, q.rdb, keys, entry, payload, mode, adjust, id, where).Int()
	if err != nil {
		return false, fmt.Errorf("requeue event %s: %w", id, err)
	}
	return n == 1, nil
}

// deadScript moves an entry from the processing list to the dead-letter list.
//
// KEYS[1] processing list
// KEYS[2] leases zset
// KEYS[3] dead list
// KEYS[4] attempts hash
// ARGV[1] processing entry
// ARGV[2] dead-letter record (JSON)
// ARGV[3] mode: "owner", "expired" (only if the lease deadline passed) or
//
//	"raw" (an entry that was never leased)
//
// ARGV[4] event id ("" when the payload had none)
// Output: 1 dead-lettered, 0 not moved.
var deadScript = redis.NewScript(`
if ARGV[3] == 'expired' then
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not deadline then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(deadline) > now then return 0 end
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HDEL', KEYS[4], ARGV[4])
end
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1
`)

func (q *Queue) deadLetter(ctx context.Context, entry string, record []byte, id, mode string) (bool, error) {
	keys := []string{q.processing, q.leases, q.dead, q.attempts}
	n, err := deadScript.Run(ctx, q.rdb, keys, entry, record, mode, id).Int()
	if err != nil {
		return false, fmt.Errorf("dead-letter event %s: %w", id, err)
	}
	return n == 1, nil
}

// Nack gives up this delivery because processing failed with reason: the
// event goes to the back of the pending list, or to the dead-letter list when
// this was its MaxAttempts-th delivery. dead reports which.
// ErrLeaseLost means the event was no longer ours.
func (q *Queue) Nack(ctx context.Context, d *Delivery, reason string) (dead bool, err error) {
	var moved bool
	if d.Attempt >= q.cfg.MaxAttempts {
		rec := deadRecord(DeadLetter{
			ID:       d.Event.ID,
			Reason:   fmt.Sprintf("failed on attempt %d of %d (MAX_ATTEMPTS): %s", d.Attempt, q.cfg.MaxAttempts, reason),
			Attempts: d.Attempt,
			Payload:  string(d.Payload()),
		})
		moved, err = q.deadLetter(ctx, d.entry, rec, d.Event.ID, modeOwner)
		dead = true
	} else {
		moved, err = q.requeue(ctx, d.entry, d.Payload(), d.Event.ID, modeOwner, 0, "back")
	}
	if err != nil {
		return false, err
	}
	if !moved {
		return false, fmt.Errorf("nack event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return dead, nil
}

// Release hands the event back unprocessed, at the front of the pending list,
// without counting the delivery as an attempt: for a consumer that is shutting
// down (SIGTERM). ErrLeaseLost means the event was no longer ours.
func (q *Queue) Release(ctx context.Context, d *Delivery) error {
	moved, err := q.requeue(ctx, d.entry, d.Payload(), d.Event.ID, modeOwner, -1, "front")
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("release event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// DeadLetter is one record of the dead-letter list.
type DeadLetter struct {
	ID       string    `json:"id,omitempty"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	DeadAt   time.Time `json:"dead_at"`
	// Payload is the event as it was on the pending list (any bytes).
	Payload string `json:"payload"`
}

func deadRecord(dl DeadLetter) []byte {
	if dl.DeadAt.IsZero() {
		dl.DeadAt = time.Now().UTC()
	}
	return mustJSON(dl)
}

// DeadLetters returns up to n dead letters, newest first.
func (q *Queue) DeadLetters(ctx context.Context, n int64) ([]DeadLetter, error) {
	raws, err := q.rdb.LRange(ctx, q.dead, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(raws))
	for _, r := range raws {
		var dl DeadLetter
		if err := json.Unmarshal([]byte(r), &dl); err != nil {
			dl = DeadLetter{Reason: "unreadable dead-letter record: " + err.Error(), Payload: r}
		}
		out = append(out, dl)
	}
	return out, nil
}

// Stats is a snapshot of the queue.
type Stats struct {
	Pending    int64 `json:"pending"`
	Processing int64 `json:"processing"`
	Dead       int64 `json:"dead"`
	// OldestInFlight is how long the oldest claimed event has been in
	// flight (0 when none, or when that entry has not been leased yet).
	OldestInFlight time.Duration `json:"oldest_in_flight"`
}

// Stats reads the list lengths and the oldest in-flight age in one round trip.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	pipe := q.rdb.Pipeline()
	pending := pipe.LLen(ctx, q.pending)
	processing := pipe.LLen(ctx, q.processing)
	dead := pipe.LLen(ctx, q.dead)
	oldest := pipe.LIndex(ctx, q.processing, -1) // entries are pushed left as they are claimed
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return s, fmt.Errorf("read queue stats: %w", err)
	}
	s.Pending, s.Processing, s.Dead = pending.Val(), processing.Val(), dead.Val()
	if e := oldest.Val(); e != "" {
		var f struct {
			ClaimedAt time.Time `json:"claimed_at"`
		}
		if json.Unmarshal([]byte(e), &f) == nil && !f.ClaimedAt.IsZero() {
			s.OldestInFlight = time.Since(f.ClaimedAt)
		}
	}
	return s, nil
}
