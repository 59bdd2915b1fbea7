// Done records: what the queue keeps of an acked event, and Inspect, an
// event's fate by id in every state.

package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A done record is written by the ack script (finish.go) into the HASH
// {q}:done, field = event id, value = one JSON object:
//
//	{"acked_ms":1733450000123,"leased_ms":1733449999000,"attempt":2,"acks":1,"pod":"redis-keda-jobs-x7k2p-8c9dz"}
//
// acked_ms is when the ack ran and leased_ms when the acked delivery was
// leased, both Unix ms on the Redis server's clock (so duration =
// acked_ms - leased_ms is the acked attempt's time in flight, whatever the
// pods' clocks say); attempt is that delivery's number (1 = the first);
// pod the pod that held the lease (left out when the job did not know its
// name). The ZSET {q}:done:order scores each id with its acked_ms.
//
// An id acked again (a redelivery processed twice — at-least-once — or a
// producer re-using an id) keeps ONE record, the latest, with "acks"
// counted on: the question "what happened to X" gets the last answer, a
// count above 1 says it was processed more than once, and memory stays one
// record per id. Keeping every ack would let one hot id grow without
// bound.
//
// Bounds: each ack trims up to two of the oldest records that are beyond
// DONE_MAX_RECORDS or older than DONE_MAX_AGE, so trimming costs O(1) per
// ack and the set converges to its bounds as acks go on (lowering a bound
// trims the excess two per ack, not at once; with no acks, old records
// stay until the next ack).

// DoneRecord is an acked event as its done record keeps it.
type DoneRecord struct {
	ID string
	// AckedAt is when it was acked, LeasedAt when the acked delivery was
	// leased (Redis server clock).
	AckedAt, LeasedAt time.Time
	// Attempt is the acked delivery's number (1 = the first).
	Attempt int
	// Acks counts the acks of this id while its record was kept: more than
	// 1 means it was processed more than once.
	Acks int
	// Pod is the pod that held the lease ("" when unknown).
	Pod string
}

// Duration is the acked attempt's time in flight: leased to acked.
func (r DoneRecord) Duration() time.Duration { return r.AckedAt.Sub(r.LeasedAt) }

type doneRecordJSON struct {
	AckedMS  int64  `json:"acked_ms"`
	LeasedMS int64  `json:"leased_ms"`
	Attempt  int    `json:"attempt"`
	Acks     int    `json:"acks"`
	Pod      string `json:"pod,omitempty"`
}

func parseDoneRecord(id, rec string) (DoneRecord, error) {
	var j doneRecordJSON
	if err := json.Unmarshal([]byte(rec), &j); err != nil {
		return DoneRecord{ID: id}, fmt.Errorf("done record of %q is not JSON: %w", id, err)
	}
	return DoneRecord{ID: id, AckedAt: time.UnixMilli(j.AckedMS), LeasedAt: time.UnixMilli(j.LeasedMS),
		Attempt: j.Attempt, Acks: j.Acks, Pod: j.Pod}, nil
}

// Done returns the done record of event id; ok is false when there is none
// (never acked, acked before the records' bounds trimmed it, or records
// off: DONE_MAX_RECORDS=0).
func (q *Queue) Done(ctx context.Context, id string) (rec DoneRecord, ok bool, err error) {
	raw, err := q.rdb.HGet(ctx, q.done, id).Result()
	if errors.Is(err, redis.Nil) {
		return DoneRecord{}, false, nil
	}
	if err != nil {
		return DoneRecord{}, false, fmt.Errorf("read %s: %w", q.done, err)
	}
	rec, err = parseDoneRecord(id, raw)
	return rec, err == nil, err
}

// DoneRecords returns up to n done records, the latest ack first: one
// ZREVRANGE and one HMGET, O(n).
func (q *Queue) DoneRecords(ctx context.Context, n int) ([]DoneRecord, error) {
	if n <= 0 {
		return nil, nil
	}
	ids, err := q.rdb.ZRevRange(ctx, q.doneOrder, 0, int64(n)-1).Result()
	if err != nil || len(ids) == 0 {
		if err != nil {
			err = fmt.Errorf("read %s: %w", q.doneOrder, err)
		}
		return nil, err
	}
	raws, err := q.rdb.HMGet(ctx, q.done, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.done, err)
	}
	out := make([]DoneRecord, 0, len(ids))
	for i, r := range raws {
		s, ok := r.(string)
		if !ok {
			continue // trimmed between the two reads
		}
		rec, err := parseDoneRecord(ids[i], s)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// doneEntry is a done record as an Entry (Location LocDone).
func doneEntry(r DoneRecord) Entry {
	return Entry{Location: LocDone, ID: r.ID, Attempts: r.Attempt, ClaimedAt: r.LeasedAt, AckedAt: r.AckedAt, Acks: r.Acks, Pod: r.Pod}
}

// Inspect answers "what happened to this event": every place the id (or
// reference) is found — scheduled (DueAt; payload cut at 64 KiB),
// pending (Position, PublishedAt), in flight
// (processing: Pod, ClaimedAt, LeaseDeadline; or claimed, not leased yet),
// dead (Reason, DeadAt) — in that order, then its done record (LocDone:
// AckedAt, Attempts, ClaimedAt, Pod, Acks) when an id was given. One id
// may be in several places: a redelivered duplicate, or an id published
// again after it was acked. Nothing found is an error wrapping
// ErrNotFound.
//
// It reads the lists with Find's bounded scans (pages of 100 entries, 64
// KiB of each): its cost grows with the queue; the done record is one
// HGET.
func (q *Queue) Inspect(ctx context.Context, sel Selector) ([]Entry, error) {
	es, err := q.findScheduled(ctx, sel) // first: due events move on to pending
	if err != nil {
		return nil, err
	}
	found, err := q.Find(ctx, sel)
	if err != nil {
		return nil, err
	}
	es = append(es, found...)
	if sel.id != "" {
		rec, ok, err := q.Done(ctx, sel.id)
		if err != nil {
			return nil, err
		}
		if ok {
			es = append(es, doneEntry(rec))
		}
	}
	if len(es) == 0 {
		why := fmt.Sprintf("an event acked more than DONE_MAX_AGE (%s) ago, or before the last DONE_MAX_RECORDS (%d) acks, has no record left", q.cfg.DoneMaxAge, q.cfg.DoneMaxRecords)
		if q.cfg.DoneMaxRecords == 0 {
			why = "done records are off (DONE_MAX_RECORDS=0), so an acked event is not found"
		}
		return nil, fmt.Errorf("%w: no event has id or reference %s in queue %s (scheduled, pending, in flight, dead or done); %s", ErrNotFound, sel, q.pending, why)
	}
	return es, nil
}
