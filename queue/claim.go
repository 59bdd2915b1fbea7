// The claim path: register a claim token, BRPOPLPUSH the next pending entry
// into the token's claim list, lease it (or dead-letter it at once when it
// can never be delivered). Its retries are in retry.go.

package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

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
	// AnyPayload accepts any payload up to MAX_PAYLOAD_BYTES (JSON or not,
	// with or without "wait"): the content is the handler's business. The
	// event's ID and PublishedAt are still read from a JSON object's "id" and
	// "published_at" when they are usable. False: the built-in sleep's
	// format, an object with a valid "wait" (DecodeEvent), else dead-lettered.
	AnyPayload bool
	// OnRetry, if set, sees each Redis error the claim is about to retry.
	OnRetry func(error)
	// Pod names the claimer in the delivery header (inspect shows it for an
	// event in flight, the done record keeps it): the pod name (POD_NAME),
	// or the hostname outside Kubernetes. At most 253 bytes of printable
	// text; "" leaves it out.
	Pod string
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
	if err := checkPod(opt.Pod); err != nil {
		return nil, err
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
	return q.lease(context.WithoutCancel(ctx), token, key, entry, r, opt)
}

// checkPod refuses a pod name the delivery header must not carry: longer
// than maxPodLen, or with bytes that are not printable UTF-8 (a name from
// the environment is shown by inspect and the dashboard as it is).
func checkPod(pod string) error {
	if len(pod) > maxPodLen {
		return fmt.Errorf("%w: pod name is %d bytes, above %d (a Kubernetes pod name is at most 253 characters); set POD_NAME from the downward API (fieldRef metadata.name)",
			ErrInvalidConfig, len(pod), maxPodLen)
	}
	if !utf8.ValidString(pod) || strings.IndexFunc(pod, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%w: pod name %q has bytes that are not printable UTF-8; set POD_NAME from the downward API (fieldRef metadata.name)", ErrInvalidConfig, pod)
	}
	return nil
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
func (q *Queue) lease(ctx context.Context, token, key, entry string, r *retrier, opt ClaimOptions) (*Delivery, error) {
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
	case opt.AnyPayload:
		ev = parseAnyEvent([]byte(payload))
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
		Off:       off, Size: len(payload), UTF8: utf8.ValidString(payload), Pod: opt.Pod,
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
