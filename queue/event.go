package queue

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event is one unit of work. Only Wait is required: the original proof of
// concept's `{"wait": 17}` is a complete event. The publisher adds ID and
// PublishedAt; every other field a producer sets is carried along untouched
// and ignored by the job.
type Event struct {
	// ID identifies the event across redeliveries: the payload's "id", or,
	// for a payload without one, an ID the queue assigns at the first claim
	// and keeps beside the payload (never in it) for every redelivery.
	ID string
	// Wait is how long the job sleeps: the "wait" field, in seconds.
	Wait time.Duration
	// PublishedAt is the "published_at" field (RFC 3339), zero if absent or
	// not a time.
	PublishedAt time.Time
}

// Fields of the JSON payload that the queue reads or writes.
const (
	fieldID          = "id"
	fieldWait        = "wait"
	fieldPublishedAt = "published_at"
)

// eventExample is quoted in every decoding error so the reader knows the
// accepted form.
const eventExample = `a JSON object such as {"wait": 17} (wait = seconds to sleep, a number >= 0)`

// Marshal renders the event as the publisher sends it:
// {"id":"...","published_at":"...","wait":17}.
func (e Event) Marshal() []byte {
	fields := map[string]json.RawMessage{
		fieldWait: json.RawMessage(formatSeconds(e.Wait)),
	}
	if e.ID != "" {
		fields[fieldID] = mustJSON(e.ID)
	}
	if !e.PublishedAt.IsZero() {
		fields[fieldPublishedAt] = mustJSON(e.PublishedAt.UTC().Format(time.RFC3339Nano))
	}
	return mustJSON(fields)
}

// DecodeEvent parses and validates a payload. maxWait bounds the "wait"
// field (0 means no bound). The error wraps ErrInvalidEvent and says what is
// wrong and what is expected.
func DecodeEvent(payload []byte, maxWait time.Duration) (Event, error) {
	return parseEvent(payload, maxWait)
}

// parseEvent decodes the fields the job reads. It never changes the payload.
func parseEvent(payload []byte, maxWait time.Duration) (Event, error) {
	var ev Event
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 {
		return ev, invalid("payload is empty; expected " + eventExample)
	}
	if trimmed[0] != '{' {
		return ev, invalid("payload is not a JSON object; expected " + eventExample)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return ev, invalid(fmt.Sprintf("payload is not valid JSON (%v); expected %s", err, eventExample))
	}

	rawWait, ok := fields[fieldWait]
	if !ok {
		return ev, invalid(`missing field "wait"; expected ` + eventExample)
	}
	secs, err := parseSeconds(rawWait)
	if err != nil {
		return ev, invalid(fmt.Sprintf(`field "wait" is %s: %v; expected %s`, truncate(string(rawWait), 40), err, eventExample))
	}
	ev.Wait = time.Duration(secs * float64(time.Second))
	if maxWait > 0 && ev.Wait > maxWait {
		return ev, invalid(fmt.Sprintf(`field "wait" is %s seconds, above MAX_WAIT (%s); split the work or raise MAX_WAIT`, string(rawWait), maxWait))
	}

	if rawID, ok := fields[fieldID]; ok {
		id, err := parseID(rawID)
		if err != nil {
			return ev, invalid(fmt.Sprintf(`field "id" is %s: %v; use a string such as "evt-42" or leave it out`, truncate(string(rawID), 40), err))
		}
		ev.ID = id
	}
	if raw, ok := fields[fieldPublishedAt]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				ev.PublishedAt = t
			}
		}
	}
	return ev, nil
}

// parseSeconds accepts a JSON number that is finite and not negative.
func parseSeconds(raw json.RawMessage) (float64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, errors.New("not a number")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errors.New("not a finite number")
	}
	if f < 0 {
		return 0, errors.New("negative")
	}
	// time.Duration holds ~292 years; anything near that is nonsense anyway.
	if f > float64(math.MaxInt64/int64(time.Second)) {
		return 0, errors.New("too large")
	}
	return f, nil
}

// parseID accepts a non-empty string, a number (kept as its JSON text), or
// null (= no id).
func parseID(raw json.RawMessage) (string, error) {
	s := bytes.TrimSpace(raw)
	switch {
	case bytes.Equal(s, []byte("null")):
		return "", nil
	case len(s) > 0 && s[0] == '"':
		var id string
		if err := json.Unmarshal(s, &id); err != nil {
			return "", err
		}
		if id == "" {
			return "", errors.New("empty")
		}
		return id, nil
	case len(s) > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')):
		return string(s), nil
	default:
		return "", errors.New("not a string or number")
	}
}

// InvalidEventError is returned (wrapping ErrInvalidEvent) for a payload that
// can never be processed. Claim has already moved such a payload to the
// dead-letter list when it returns this error.
type InvalidEventError struct {
	Reason string // what is wrong and what is expected
	// Payload is the payload as it was on the list (truncated in Error); for
	// a payload above MAX_PAYLOAD_BYTES only its first 256 bytes.
	Payload string
	Size    int // the payload's size in bytes
}

func (e *InvalidEventError) Error() string {
	if e.Payload == "" {
		return "invalid event: " + e.Reason
	}
	return fmt.Sprintf("invalid event %s: %s", truncate(e.Payload, 120), e.Reason)
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

func invalid(reason string) error { return &InvalidEventError{Reason: reason} }

// NewEventID returns a random event id (16 hex digits). Give events their id
// before publishing when a failed publish may be retried: the retry then
// re-sends the same ids, so a duplicate left by a publish that did reach
// Redis is recognisable.
func NewEventID() string { return newID() }

// newID returns a random 16-hex-digit identifier.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// derivedID names an event that arrived without an id: a digest of its
// payload (so the log shows which payload it was) plus a random part (so two
// identical payloads are still two events).
func derivedID(payload []byte) string {
	sum := sha256.Sum256(payload)
	return "p" + hex.EncodeToString(sum[:4]) + "-" + newID()[:8]
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// mustJSON marshals values that cannot fail to marshal (strings, maps of
// already-valid raw JSON).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("queue: marshal %T: %v", v, err))
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseAnyEvent reads what the queue can use from any payload: the "id" and
// "published_at" of a JSON object, when they are usable. Anything else
// (not JSON, a bad id) is the handler's business: an unusable id is ignored
// and the queue assigns one.
func parseAnyEvent(payload []byte) Event {
	var ev Event
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ev
	}
	var fields map[string]json.RawMessage // exact keys, as parseEvent reads them
	if json.Unmarshal(trimmed, &fields) != nil {
		return ev
	}
	if raw, ok := fields[fieldID]; ok {
		ev.ID, _ = parseID(raw)
	}
	var s string
	if raw, ok := fields[fieldPublishedAt]; ok && json.Unmarshal(raw, &s) == nil {
		ev.PublishedAt, _ = time.Parse(time.RFC3339Nano, s)
	}
	return ev
}
