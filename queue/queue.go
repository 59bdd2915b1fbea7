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
//	nack      claim list                  -> pending (back), or dead after MAX_ATTEMPTS
//	release   claim list                  -> pending (front; shutdown, not an attempt)
//	reap      claim lists past deadline   -> pending (front) or dead
//
// Delivery is at least once: an event whose consumer stalls past its lease is
// given to another consumer, so handlers must tolerate a duplicate (use
// Event.ID). No transition drops an event, none edits its bytes, and every
// multi-key step is one Lua script declared next to the method that runs it.
package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
		return fmt.Errorf("%w: QUEUE=%q is shaped like a key of another queue (%q follows the hash tag); a queue name must not have a segment :leases, :claimed, :dead, :counters, :finished or :claim after its tag",
			ErrInvalidConfig, c.Name, ":"+reservedSegment(c.Name))
	case c.LeaseDuration < time.Second:
		return fmt.Errorf("%w: LEASE_DURATION=%s is below 1s; use a duration such as 30s", ErrInvalidConfig, c.LeaseDuration)
	case c.MaxAttempts < 1:
		return fmt.Errorf("%w: MAX_ATTEMPTS=%d must be at least 1", ErrInvalidConfig, c.MaxAttempts)
	case c.MaxWait <= 0:
		return fmt.Errorf("%w: MAX_WAIT=%s must be positive, such as 3600s", ErrInvalidConfig, c.MaxWait)
	case c.MaxPayloadBytes < 64:
		return fmt.Errorf("%w: MAX_PAYLOAD_BYTES=%d is below 64; use a size in bytes such as 1048576 (1 MiB)", ErrInvalidConfig, c.MaxPayloadBytes)
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
		if bytes.HasPrefix(p, []byte(envelopeMagic)) {
			return fmt.Errorf("%w: payload %d of %d starts with %q, the marker of the queue's own envelopes (a job would read the rest as the queue's bookkeeping); start the payload with anything else, e.g. send it as JSON",
				ErrInvalidEvent, i+1, len(payloads), envelopeMagic)
		}
		if len(p) > q.cfg.MaxPayloadBytes {
			return fmt.Errorf("%w: payload %d of %d is %d bytes, above MAX_PAYLOAD_BYTES (%d); store large data elsewhere and publish a reference",
				ErrPayloadTooLarge, i+1, len(payloads), len(p), q.cfg.MaxPayloadBytes)
		}
		args[i] = p
	}
	if err := q.push(ctx, args); err != nil {
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
	// IDAssigned is true when the payload has no id and Event.ID was
	// assigned by the queue (it travels beside the payload from now on).
	IDAssigned bool
	ClaimedAt  time.Time
	// Token is the claim token: the delivery's claim list is
	// {QUEUE}:claim:<Token>.
	Token string

	payload string // the producer's bytes
}

// Payload returns the event exactly as the producer sent it.
func (d *Delivery) Payload() []byte { return []byte(d.payload) }

// ClaimOptions tune ClaimWith.
type ClaimOptions struct {
	// Timeout is how long to wait for an event (at least 1s). Default 10s.
	Timeout time.Duration
	// RetryTimeout is how long Redis errors are retried, with backoff,
	// before Claim gives up (0: not retried). A retry keeps the claim token,
	// so an entry moved by a BRPOPLPUSH whose reply was lost is found and
	// leased, not orphaned.
	RetryTimeout time.Duration
	// ReleaseTimeout bounds putting back what an interrupted claim had
	// moved. Default 10s.
	ReleaseTimeout time.Duration
	// OnRetry, if set, sees each Redis error the claim is about to retry.
	OnRetry func(error)
	// OnRecover, if set, is told how long Redis failed once it answers
	// again. The claim then waits its whole Timeout afresh: time spent
	// unable to reach Redis is not time spent waiting for an event.
	OnRecover func(outage time.Duration)
}

// Claim is ClaimWith with only a timeout.
func (q *Queue) Claim(ctx context.Context, timeout time.Duration) (*Delivery, error) {
	return q.ClaimWith(ctx, ClaimOptions{Timeout: timeout})
}

// registerScript registers (or extends) a claim token before its
// BRPOPLPUSH, so the reaper can recover the entry if the claimer dies before
// leasing it.
//
// KEYS[1] leases zset
// ARGV[1] claim token
// ARGV[2] ms from now until the reaper may recover the token's claim list
// Output: 1
var registerScript = redis.NewScript(luaPrelude + `
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// unregisterScript withdraws a claim token whose wait ended empty-handed.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// ARGV[1] claim token
// Output: the claim list's length; the token is withdrawn only when it is 0
// (otherwise an entry arrived after all and the claimer leases it).
var unregisterScript = redis.NewScript(`
local n = redis.call('LLEN', KEYS[1])
if n == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return n
`)

// ClaimWith takes the oldest pending event and leases it for LeaseDuration.
// It registers a claim token, then waits with BRPOPLPUSH pending ->
// {q}:claim:<token> in slices of at most one second, so a cancelled ctx
// (SIGTERM) is noticed within a second; whatever the claim had moved then goes
// back to the front of pending (ErrClaimInterrupted).
//
// Errors: ErrNoEvent when nothing arrived within the timeout; an error
// wrapping ErrInvalidEvent (an *InvalidEventError) when the entry can never
// be processed — it has been dead-lettered with the reason; ErrClaimInterrupted
// when ctx ended; otherwise Redis trouble that outlasted RetryTimeout (an
// entry moved meanwhile stays registered, and the reaper recovers it).
func (q *Queue) ClaimWith(ctx context.Context, opt ClaimOptions) (*Delivery, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	opt.Timeout = max(opt.Timeout, time.Second)
	if opt.ReleaseTimeout <= 0 {
		opt.ReleaseTimeout = 10 * time.Second
	}
	r := &retrier{timeout: opt.RetryTimeout, onRetry: opt.OnRetry, onRecover: opt.OnRecover}
	for {
		d, err := q.claimToken(ctx, newID(), opt, r)
		if errors.Is(err, errEntryGone) {
			continue // the reaper recovered the entry between our steps: claim again
		}
		return d, err
	}
}

// errEntryGone: the claim list no longer holds the entry (the reaper
// returned it to pending after the token's deadline).
var errEntryGone = errors.New("claimed entry no longer in its claim list")

func (q *Queue) claimToken(ctx context.Context, token string, opt ClaimOptions, r *retrier) (*Delivery, error) {
	key := q.claimPrefix + token
	end := time.Now().Add(opt.Timeout)
	// Redis answering again after a streak of failures restarts the wait:
	// the claim waits Timeout for an event while Redis answers, however long
	// it was unreachable before (within RetryTimeout).
	recovered := false
	onRecover := r.onRecover
	r.onRecover = func(outage time.Duration) {
		recovered = true
		if onRecover != nil {
			onRecover(outage)
		}
	}
	defer func() { r.onRecover = onRecover }()
	// The reaper may recover this claim list once the rest of the wait and a
	// lease's worth of grace have passed. Every retry re-registers first, so
	// a claimer that outlives a Redis outage keeps its token.
	register := func() error {
		ms := (max(time.Until(end), 0) + q.cfg.LeaseDuration).Milliseconds()
		return registerScript.Run(ctx, q.rdb, []string{q.leases}, token, ms).Err()
	}
	if err := r.do(ctx, register); err != nil {
		if ctx.Err() != nil {
			return nil, q.interruptClaim(ctx, token, opt.ReleaseTimeout)
		}
		return nil, fmt.Errorf("register claim on %s: %w", q.pending, err)
	}

	var entry string
	check := false // a call failed: its BRPOPLPUSH may have moved an entry
	for {
		if ctx.Err() != nil {
			return nil, q.interruptClaim(ctx, token, opt.ReleaseTimeout)
		}
		if recovered {
			// Wait afresh, and register the later deadline (check does).
			recovered = false
			end = time.Now().Add(opt.Timeout)
			check = true
		}
		if check {
			var items []string
			err := register()
			if err == nil {
				items, err = q.rdb.LRange(ctx, key, 0, -1).Result()
			}
			if err != nil {
				if r.again(ctx, err) {
					continue
				}
				return nil, q.claimFailed(ctx, token, opt, err)
			}
			r.ok()
			check = false
			if len(items) > 0 {
				entry = items[len(items)-1] // a leased list is [header, entry]
				break
			}
		}
		left := time.Until(end)
		if left <= 0 {
			n, err := unregisterScript.Run(ctx, q.rdb, []string{key, q.leases}, token).Int()
			if err != nil {
				if r.again(ctx, err) {
					continue
				}
				return nil, q.claimFailed(ctx, token, opt, err)
			}
			if n == 0 {
				return nil, ErrNoEvent
			}
			check = true // an entry arrived at the last moment
			continue
		}
		slice := min(time.Second, left.Round(time.Second))
		got, err := q.rdb.BRPopLPush(ctx, q.pending, key, max(slice, time.Second)).Result()
		if errors.Is(err, redis.Nil) {
			r.ok()
			continue
		}
		if err != nil {
			check = true
			if r.again(ctx, err) {
				continue
			}
			return nil, q.claimFailed(ctx, token, opt, err)
		}
		r.ok()
		entry = got
		break
	}
	if ctx.Err() != nil { // shutdown: put it back rather than start it
		return nil, q.interruptClaim(ctx, token, opt.ReleaseTimeout)
	}
	// Leasing takes a moment; a signal meanwhile is Work's to handle (it
	// releases the event at once), so the lease itself is not cancelled.
	return q.lease(context.WithoutCancel(ctx), token, key, entry, r)
}

// claimFailed is the error of a claim that gave up on Redis; ctx ending
// instead turns it into an interruption.
func (q *Queue) claimFailed(ctx context.Context, token string, opt ClaimOptions, err error) error {
	if ctx.Err() != nil {
		return q.interruptClaim(ctx, token, opt.ReleaseTimeout)
	}
	return fmt.Errorf("claim from %s: %w", q.pending, err)
}

// abortScript puts back what an interrupted claim moved, unchanged, at the
// front of the pending list, and withdraws the token.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] pending list
// ARGV[1] claim token
// Output: the size of the entry put back, or -1 when there was none.
var abortScript = redis.NewScript(`
local e = redis.call('LINDEX', KEYS[1], -1)
local n = redis.call('LLEN', KEYS[1])
if n > 1 then return -2 end
redis.call('ZREM', KEYS[2], ARGV[1])
if not e then return -1 end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[3], e)
return #e
`)

// interruptClaim runs abortScript on a context that outlives ctx by at most
// timeout, retrying Redis errors.
func (q *Queue) interruptClaim(ctx context.Context, token string, timeout time.Duration) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var n int
	err := Retry(actx, func() error {
		var err error
		n, err = abortScript.Run(actx, q.rdb, []string{q.claimPrefix + token, q.leases, q.pending}, token).Int()
		return err
	})
	if err != nil {
		return &ClaimInterruptedError{Released: -1, Err: fmt.Errorf("put back claim %s: %w", token, err)}
	}
	if n == -2 { // cannot happen: only this claimer leases its token
		return &ClaimInterruptedError{Released: -1, Err: fmt.Errorf("claim %s is already leased", token)}
	}
	return &ClaimInterruptedError{Released: n}
}

// leaseScript pushes the delivery header in front of the claimed entry and
// starts its lease. It is idempotent per token: run again (its reply was
// lost), it returns the header already there.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// ARGV[1] claim token
// ARGV[2] delivery header (JSON)
// ARGV[3] lease duration, ms
// Output: the header in force, or nil when the claim list is empty (the
// reaper recovered the entry: not ours any more).
var leaseScript = redis.NewScript(luaPrelude + `
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return false end
if n >= 2 then return redis.call('LINDEX', KEYS[1], 0) end
local now = now_ms()
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
return ARGV[2]
`)

// deadClaimScript dead-letters a claimed entry that can never be processed
// (invalid, too large, out of attempts) without leasing it.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// KEYS[4] dead list
// KEYS[5] counters hash
// KEYS[6] finished zset
// ARGV[1] claim token
// ARGV[2] the dead letter, or (ARGV[3] "prefix") its JSON up to the payload
// ARGV[3] "record", or "prefix": the script appends the payload it holds,
// so a large payload never travels back from the job
// ARGV[4] prefix mode: where the payload starts in the entry (bytes)
// ARGV[5] prefix mode: "1" when the payload is valid UTF-8
// ARGV[6] ms the finished marker lives
// Output: 1 dead-lettered, 2 dead-lettered already by this token (an earlier
// reply was lost), 0 the claim list was empty (recovered meanwhile).
var deadClaimScript = redis.NewScript(luaPrelude + `
local e = redis.call('LINDEX', KEYS[1], -1)
if not e then
  if finished(KEYS[6], ARGV[1] .. ':dead') then return 2 end
  return 0
end
local rec = ARGV[2]
if ARGV[3] == 'prefix' then
  rec = dead_record_from_prefix(ARGV[2], string.sub(e, tonumber(ARGV[4]) + 1), ARGV[5] == '1')
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], rec)
redis.call('HINCRBY', KEYS[5], 'dead', 1)
mark_finished(KEYS[6], ARGV[1] .. ':dead', ARGV[6])
return 1
`)

// lease validates the claimed entry and turns it into a delivery, or
// dead-letters it.
func (q *Queue) lease(ctx context.Context, token, key, entry string, r *retrier) (*Delivery, error) {
	h, payload, off, envErr := splitEntry(entry)
	attempt := h.Attempts + 1

	var inv *InvalidEventError
	var ev Event
	switch {
	case len(payload) > q.cfg.MaxPayloadBytes:
		inv = &InvalidEventError{
			Reason: fmt.Sprintf("payload too large: %d bytes, above MAX_PAYLOAD_BYTES (%d); store large data elsewhere and publish a reference, or raise MAX_PAYLOAD_BYTES (and the job's memory)",
				len(payload), q.cfg.MaxPayloadBytes),
			Payload: strings.Clone(payload[:min(len(payload), 256)]), // a preview; the payload stays in Redis
			Size:    len(payload),
		}
		prefix := deadRecordPrefix(assignedID(h), inv.Reason, attempt, len(payload))
		isUTF8 := "0"
		if utf8.ValidString(payload) {
			isUTF8 = "1"
		}
		if err := q.deadClaim(ctx, token, key, r, prefix, "prefix", off, isUTF8); err != nil {
			return nil, err
		}
		return nil, inv
	case envErr != nil:
		inv = &InvalidEventError{Reason: envErr.Error()}
	case attempt > q.cfg.MaxAttempts:
		inv = &InvalidEventError{Reason: fmt.Sprintf("delivered %d times, MAX_ATTEMPTS is %d", h.Attempts, q.cfg.MaxAttempts)}
	default:
		var err error
		ev, err = parseEvent([]byte(payload), q.cfg.MaxWait)
		if err != nil {
			errors.As(err, &inv)
		}
	}
	if inv != nil {
		inv.Payload, inv.Size = payload, len(payload)
		rec := deadRecord(assignedID(h), inv.Reason, attempt, []byte(payload))
		if err := q.deadClaim(ctx, token, key, r, string(rec), "record", 0, ""); err != nil {
			return nil, err
		}
		return nil, inv
	}

	d := &Delivery{Event: ev, Attempt: attempt, ClaimedAt: time.Now(), Token: token, payload: payload}
	if ev.ID == "" {
		d.IDAssigned = true
		if d.Event.ID = assignedID(h); d.Event.ID == "" {
			d.Event.ID = derivedID([]byte(payload))
		}
	}
	header := string(encodeJSON(deliveryHeader{
		Token: token, ID: d.Event.ID, Assigned: d.IDAssigned, Attempt: attempt,
		ClaimedAt: d.ClaimedAt.UTC().Format(time.RFC3339Nano),
		Off:       off, Size: len(payload), UTF8: utf8.ValidString(payload),
	}))
	var got any
	err := r.do(ctx, func() error {
		var err error
		got, err = leaseScript.Run(ctx, q.rdb, []string{key, q.leases, q.claimed}, token, header, q.cfg.LeaseDuration.Milliseconds()).Result()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil, errEntryGone
	case err != nil:
		return nil, fmt.Errorf("lease event %s: %w", d.Event.ID, err)
	case got != header: // an earlier attempt leased it; its reply was lost
		var prev deliveryHeader
		if s, ok := got.(string); !ok || json.Unmarshal([]byte(s), &prev) != nil {
			return nil, fmt.Errorf("lease event %s: unexpected header %v", d.Event.ID, got)
		}
		d.Event.ID, d.IDAssigned, d.Attempt = prev.ID, prev.Assigned, prev.Attempt
		d.ClaimedAt, _ = time.Parse(time.RFC3339Nano, prev.ClaimedAt)
	}
	return d, nil
}

// assignedID is the id an envelope carries for an id-less payload.
func assignedID(h envelopeHeader) string {
	if h.Assigned {
		return h.ID
	}
	return ""
}

func (q *Queue) deadClaim(ctx context.Context, token, key string, r *retrier, rec, mode string, off int, isUTF8 string) error {
	ttl := max(r.timeout, defaultFinishTTL) + q.cfg.LeaseDuration
	var n int
	err := r.do(ctx, func() error {
		var err error
		n, err = deadClaimScript.Run(ctx, q.rdb, []string{key, q.leases, q.claimed, q.dead, q.counters, q.finished},
			token, rec, mode, off, isUTF8, ttl.Milliseconds()).Int()
		return err
	})
	if err != nil {
		return fmt.Errorf("dead-letter claimed entry: %w", err)
	}
	if n == 0 {
		return errEntryGone
	}
	return nil // 1, or 2: an earlier run whose reply was lost dead-lettered it
}

// heartbeatScript extends a lease that still exists.
//
// KEYS[1] leases zset
// KEYS[2] claim list
// ARGV[1] claim token
// ARGV[2] lease duration, ms
// Output: 1 extended, 0 the delivery is gone (the reaper took the event back).
var heartbeatScript = redis.NewScript(luaPrelude + `
if redis.call('LLEN', KEYS[2]) < 2 or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// Heartbeat extends the delivery's lease by LeaseDuration from now.
// ErrLeaseLost means the event is no longer ours.
func (q *Queue) Heartbeat(ctx context.Context, d *Delivery) error {
	n, err := heartbeatScript.Run(ctx, q.rdb, []string{q.leases, q.claimPrefix + d.Token}, d.Token, q.cfg.LeaseDuration.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("heartbeat event %s: %w", d.Event.ID, ErrLeaseLost)
	}
	return nil
}

// ackScript removes a finished delivery.
//
// KEYS[1] claim list
// KEYS[2] leases zset
// KEYS[3] claimed zset
// KEYS[4] counters hash
// KEYS[5] finished zset
// ARGV[1] claim token
// ARGV[2] ms the finished marker lives
// Output: 1 acked, 2 acked already by this token (an earlier reply was
// lost), 0 the delivery was not in flight (lease lost).
var ackScript = redis.NewScript(luaPrelude + `
if redis.call('LLEN', KEYS[1]) < 2 then
  if finished(KEYS[5], ARGV[1] .. ':acked') then return 2 end
  return 0
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
	n, err := ackScript.Run(ctx, q.rdb, []string{q.claimPrefix + d.Token, q.leases, q.claimed, q.counters, q.finished},
		d.Token, ttl.Milliseconds()).Int()
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
// ARGV[1] claim token
// ARGV[2] "back" (LPUSH: after the others), "front" (RPUSH: next), "dead"
// ARGV[3] deliveries to record in the envelope
// ARGV[4] dead letter (for "dead")
// ARGV[5] counter to increment (it also names the finished marker)
// ARGV[6] ms the finished marker lives
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
	keys := []string{q.claimPrefix + d.Token, q.leases, q.claimed, q.pending, q.dead, q.counters, q.finished}
	n, err := requeueScript.Run(ctx, q.rdb, keys, d.Token, where, attempts, record, counter, ttl.Milliseconds()).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("%s event %s: %w", counter, d.Event.ID, err)
	case n == 2:
		return true, fmt.Errorf("%s event %s: %w", counter, d.Event.ID, errFinished)
	}
	return n == 1, nil
}

// Nack gives up this delivery because processing failed with reason: the
// event goes to the back of the pending list, or to the dead-letter list when
// this was its MaxAttempts-th delivery. dead reports which. Nacking it again
// (an earlier Nack's reply was lost) succeeds. ErrLeaseLost means the event
// was no longer ours.
func (q *Queue) Nack(ctx context.Context, d *Delivery, reason string) (dead bool, err error) {
	dead, err = q.nack(ctx, d, reason, defaultFinishTTL)
	if errors.Is(err, errFinished) {
		return dead, nil
	}
	return dead, err
}

// nack is Nack with the finished marker's lifetime; with errFinished, dead
// still says where the earlier run put the event.
func (q *Queue) nack(ctx context.Context, d *Delivery, reason string, ttl time.Duration) (dead bool, err error) {
	var moved bool
	if d.Attempt >= q.cfg.MaxAttempts {
		rec := deadRecord(d.Event.ID, fmt.Sprintf("failed on attempt %d of %d (MAX_ATTEMPTS): %s", d.Attempt, q.cfg.MaxAttempts, reason),
			d.Attempt, []byte(d.payload))
		moved, err = q.requeue(ctx, d, "dead", d.Attempt, rec, "dead", ttl)
		dead = true
	} else {
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
	oldest := pipe.ZRangeWithScores(ctx, q.claimed, 0, 0)
	now := pipe.Time(ctx)
	counters := pipe.HGetAll(ctx, q.counters)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return s, fmt.Errorf("read queue stats: %w", err)
	}
	s.Pending, s.Processing, s.Dead = pending.Val(), claimed.Val(), dead.Val()
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
