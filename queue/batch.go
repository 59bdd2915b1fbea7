// Batches of payloads published under known ids: what `redis-keda publish`
// runs. Every payload is checked and given its pending entry first
// (BatchEntry); PublishEntries then pushes the entries in order, many
// values per LPUSH and several LPUSHes per round trip, and says exactly
// which made it.

package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// BatchEntry returns the pending entry that publishes payload under an id,
// and that id:
//   - a payload with an id of its own (a JSON object whose top-level "id"
//     is a non-empty string or a number, as the jobs read it) is pushed byte
//     for byte under that id; want, when set, must be that id;
//   - any other payload is pushed byte for byte inside an envelope that
//     carries the id (want, or a new random one) as assigned by the queue:
//     the job gets the payload's bytes exactly and Event.ID = the id, and
//     inspect finds it by the id from the moment it is published.
//
// Errors (wrapping ErrPayloadTooLarge or ErrInvalidEvent) say what is wrong:
// a payload above MAX_PAYLOAD_BYTES, or whose own id differs from want.
func (q *Queue) BatchEntry(payload []byte, want string) (entry []byte, id string, err error) {
	if len(payload) > q.cfg.MaxPayloadBytes {
		return nil, "", fmt.Errorf("%w: %d bytes, above MAX_PAYLOAD_BYTES (%d); store large data elsewhere and publish a reference",
			ErrPayloadTooLarge, len(payload), q.cfg.MaxPayloadBytes)
	}
	own, ok := OwnID(payload)
	switch {
	case ok && want != "" && own != want:
		return nil, "", fmt.Errorf("%w: the payload's own \"id\" is %q, not %q; drop --id or make them equal", ErrInvalidEvent, own, want)
	case ok:
		return payload, own, nil // JSON: cannot start with the envelope marker
	}
	id = want
	if id == "" {
		id = newID()
	}
	return assignedEnvelope(id, payload), id, nil
}

// assignedEnvelope is envelope(envelopeHeader{ID: id, Assigned: true},
// payload), without encoding/json for the common id of hex digits.
func assignedEnvelope(id string, payload []byte) []byte {
	simple := id != ""
	for i := 0; i < len(id) && simple; i++ {
		c := id[i]
		simple = c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
	}
	if !simple {
		return envelope(envelopeHeader{ID: id, Assigned: true}, payload)
	}
	out := make([]byte, 0, len(envelopeMagic)+len(id)+36+len(payload))
	out = append(out, envelopeMagic...)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, `","assigned":true,"attempts":0}`...)
	out = append(out, '\n')
	return append(out, payload...)
}

// OwnID returns the id a payload carries itself, as the jobs read it
// (parseAnyEvent): the top-level "id" of a JSON object when it is a
// non-empty string or a number (its JSON text), the last one when repeated.
func OwnID(payload []byte) (string, bool) {
	raw, ok := topLevelFast(payload, fieldID)
	if !ok {
		return "", false
	}
	if len(raw) > 1 && raw[0] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), len(raw) > 2 // the common case, no escapes
	}
	id, err := parseID(raw)
	return id, err == nil && id != ""
}

// topLevelFast is topLevel for a payload that is a JSON object: the raw
// value of its last top-level key named key. It checks the whole payload
// with json.Valid, then walks the top level by hand (a valid document needs
// no error handling), which costs a small fraction of json.Decoder.
func topLevelFast(doc []byte, key string) (json.RawMessage, bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' || !json.Valid(doc) {
		return nil, false
	}
	var found json.RawMessage
	ok := false
	i = skipSpace(doc, i+1)
	for i < len(doc) && doc[i] == '"' {
		end := skipString(doc, i)
		k := doc[i:end]
		match := string(k[1:len(k)-1]) == key
		if !match && bytes.IndexByte(k, '\\') >= 0 {
			var s string
			match = json.Unmarshal(k, &s) == nil && s == key
		}
		i = skipSpace(doc, end)
		i = skipSpace(doc, i+1) // ':'
		vend := skipValue(doc, i)
		if match {
			found, ok = doc[i:vend], true
		}
		i = skipSpace(doc, vend)
		if i < len(doc) && doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	return found, ok
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// Bounds of one PublishEntries round trip.
const (
	// batchValues and batchBytes bound one LPUSH (whichever comes first;
	// at least one value): Redis's reply to a multi-value LPUSH is one
	// integer, and ~1 MiB keeps each command's time in Redis short.
	batchValues = 1000
	batchBytes  = 1 << 20
	// batchDepth is how many LPUSHes one round trip carries.
	batchDepth = 16
)

// BatchResult says what PublishEntries pushed, by index into its entries.
type BatchResult struct {
	// Confirmed[i] is true when Redis replied that entry i is on the
	// pending list.
	Confirmed []bool
	// Unknown[i] is true when entry i was sent but the reply was lost (the
	// connection broke): it may or may not be on the list. Publishing it
	// again under the same id may make a duplicate, recognisable by its id.
	Unknown []bool
}

// PublishEntries pushes entries (from BatchEntry) to the pending list in
// their order — the first is claimed first — up to 1,000 values (1 MiB)
// per LPUSH and 16 LPUSHes per round trip; each LPUSH is atomic. progress,
// when set, is called after each round trip with the entries it confirmed
// (indexes from, to: [from, to)), in order.
//
// On an error it stops after the round trip that failed and returns the
// error with the result saying which entries Redis confirmed (an LPUSH
// after a refused one in the same round trip may still have run: its own
// reply says so) and which are unknown (sent, reply lost). Entries after
// that round trip were not sent.
//
// With REDIS_MIN_REPLICAS each LPUSH is followed by WAIT (as Publish does),
// one LPUSH per round trip.
func (q *Queue) PublishEntries(ctx context.Context, entries [][]byte, progress func(from, to int)) (BatchResult, error) {
	res := BatchResult{Confirmed: make([]bool, len(entries)), Unknown: make([]bool, len(entries))}
	type chunk struct{ from, to int }
	for next := 0; next < len(entries); {
		var chunks []chunk
		for len(chunks) < batchDepth && next < len(entries) {
			c := chunk{from: next}
			size := 0
			for next < len(entries) && next-c.from < batchValues && (next == c.from || size+len(entries[next]) <= batchBytes) {
				size += len(entries[next])
				next++
			}
			c.to = next
			chunks = append(chunks, c)
			if q.cfg.MinReplicas > 0 {
				break
			}
		}
		var errs []error
		if q.cfg.MinReplicas > 0 {
			c := chunks[0]
			err := q.push(ctx, anySlice(entries[c.from:c.to]))
			errs = []error{err}
		} else {
			pipe := q.rdb.Pipeline()
			cmds := make([]*redis.IntCmd, len(chunks))
			for i, c := range chunks {
				cmds[i] = pipe.LPush(ctx, q.pending, anySlice(entries[c.from:c.to])...)
			}
			_, _ = pipe.Exec(ctx) // each command's own error is read below
			errs = make([]error, len(cmds))
			for i, cmd := range cmds {
				errs[i] = cmd.Err()
			}
		}
		var first error
		for i, c := range chunks {
			err := errs[i]
			for j := c.from; j < c.to; j++ {
				switch {
				case err == nil:
					res.Confirmed[j] = true
				case isRedisReply(err):
				default:
					res.Unknown[j] = true
				}
			}
			if err == nil && progress != nil {
				progress(c.from, c.to)
			}
			if err != nil && first == nil {
				first = fmt.Errorf("LPUSH of entries %d to %d of %d: %w", c.from+1, c.to, len(entries), err)
			}
		}
		if first != nil {
			return res, first
		}
	}
	return res, nil
}

// isRedisReply reports whether err is Redis's own error reply (the command
// was refused and did nothing), not a failure to get a reply.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func anySlice(entries [][]byte) []any {
	out := make([]any, len(entries))
	for i, e := range entries {
		out[i] = e
	}
	return out
}

// scheduleBatch is how many members one scheduling script carries.
const scheduleBatch = 1000

// ScheduleEntries is PublishEntries for later: the entries go to the
// scheduled set (see schedule.go), due at at, or — at zero — d after
// Redis's TIME when it starts (the same due time for the whole batch).
// Each script of up to 1,000 members is atomic; the result and progress say
// which made it, as PublishEntries does.
func (q *Queue) ScheduleEntries(ctx context.Context, at time.Time, d time.Duration, entries [][]byte, progress func(from, to int)) (BatchResult, error) {
	res := BatchResult{Confirmed: make([]bool, len(entries)), Unknown: make([]bool, len(entries))}
	if at.IsZero() {
		now, err := q.rdb.Time(ctx).Result()
		if err != nil {
			return res, fmt.Errorf("read the Redis clock: %w", err)
		}
		at = now.Add(max(d, 0))
	}
	for from := 0; from < len(entries); {
		to := min(from+scheduleBatch, len(entries))
		members := make([]any, 0, to-from)
		for _, e := range entries[from:to] {
			members = append(members, ScheduledMember(e))
		}
		err := q.schedule(ctx, "at", at.UnixMilli(), members)
		for j := from; j < to; j++ {
			switch {
			case err == nil:
				res.Confirmed[j] = true
			case !isRedisReply(err):
				res.Unknown[j] = true
			}
		}
		if err != nil {
			return res, fmt.Errorf("schedule entries %d to %d of %d: %w", from+1, to, len(entries), err)
		}
		if progress != nil {
			progress(from, to)
		}
		from = to
	}
	return res, nil
}
