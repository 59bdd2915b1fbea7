package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/redis-keda/redis-keda/queue"
)

func statsCommand() command {
	return command{
		name:    "stats",
		summary: "lengths, ages, leases about to expire and outcome totals of the queue",
		usage: `Usage: redis-keda stats [--expiring DURATION] [--json]

Shows the queue in one script call, whose cost does not grow with the queue:
  pending     events waiting, and the age of the next one to be claimed (from
              its published_at; "unknown" when the producer sent none: the
              queue never stamps an event's bytes)
  processing  deliveries in flight, and how long the oldest has been
  scheduled   retries and delayed events waiting for their due time; how
              many are overdue (due, not moved to pending yet) and how long
              the earliest has been due (a running mover keeps it under
              MOVE_INTERVAL)
  claiming    claims not leased: jobs waiting for an event, or killed between
              taking one and leasing it (the reaper returns those)
  dead        dead letters, and the age of the oldest
  leases      expired (the reaper takes them back at its next run) and
              expiring within DURATION (a heartbeat is overdue)
  totals      what the queue's scripts counted since it was created: acked,
              retried, dead, released, reaped_*, redriven, purged_*

Flags:
  --expiring DURATION  window for "expiring" leases (default LEASE_DURATION/2)
  --json               one JSON object (ages in seconds, null when unknown)

Example:
  REDIS_ADDR=redis:6379 QUEUE=events redis-keda stats
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			expiring := fs.Duration("expiring", 0, "")
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			if len(ops) > 0 {
				return nil, fmt.Errorf("stats takes no arguments, got %q", ops)
			}
			if *expiring < 0 {
				return nil, fmt.Errorf("--expiring %s is negative", *expiring)
			}
			return func(ctx context.Context, e *env) int { return stats(ctx, e, *expiring) }, nil
		},
	}
}

// statsJSON is `stats --json`.
type statsJSON struct {
	Queue                string           `json:"queue"`
	Pending              int64            `json:"pending"`
	Processing           int64            `json:"processing"`
	Claiming             int64            `json:"claiming"`
	Dead                 int64            `json:"dead"`
	Scheduled            int64            `json:"scheduled"`
	ScheduledOverdue     int64            `json:"scheduled_overdue"`
	OldestOverdueSeconds *float64         `json:"oldest_overdue_seconds"`
	OldestPendingSeconds *float64         `json:"oldest_pending_seconds"`
	OldestPendingUnknown bool             `json:"oldest_pending_unknown"`
	OldestProcessingSecs *float64         `json:"oldest_processing_seconds"`
	OldestDeadSeconds    *float64         `json:"oldest_dead_seconds"`
	LeasesExpired        int64            `json:"leases_expired"`
	LeasesExpiring       int64            `json:"leases_expiring"`
	ExpiringWithinSecs   float64          `json:"expiring_within_seconds"`
	Counters             map[string]int64 `json:"counters"`
}

func stats(ctx context.Context, e *env, expiring time.Duration) int {
	s, err := e.q.Snapshot(ctx, queue.SnapshotOptions{ExpiringWithin: expiring, OldestDead: true})
	if err != nil {
		return e.fail(err)
	}
	secs := func(t time.Time) *float64 {
		d, ok := s.Age(t)
		if !ok {
			return nil
		}
		v := d.Seconds()
		return &v
	}
	if e.json {
		return e.writeJSON(statsJSON{
			Queue: e.cfg.Queue.Name, Pending: s.Pending, Processing: s.Processing, Claiming: s.Claiming, Dead: s.Dead,
			OldestPendingSeconds: secs(s.OldestPending), OldestPendingUnknown: s.OldestPendingUnknown,
			OldestProcessingSecs: secs(s.OldestProcessing), OldestDeadSeconds: secs(s.OldestDead),
			Scheduled: s.Scheduled, ScheduledOverdue: s.Overdue, OldestOverdueSeconds: secs(s.OldestOverdue),
			LeasesExpired: s.LeasesExpired, LeasesExpiring: s.LeasesExpiring, ExpiringWithinSecs: s.ExpiringWithin.Seconds(),
			Counters: s.Counters,
		})
	}
	fmt.Fprint(e.stdout, StatsText(e.cfg.Queue.Name, s))
	return ExitOK
}

// StatsText renders a snapshot the way `redis-keda stats` prints it.
func StatsText(name string, s queue.Snapshot) string {
	var b strings.Builder
	oldest := func(t time.Time) string {
		if d, ok := s.Age(t); ok {
			return "oldest " + age(d)
		}
		return ""
	}
	line := func(label string, n int64, note string) {
		fmt.Fprintf(&b, "  %-16s %6d   %s", label, n, note)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "queue %s\n", name)
	pendingNote := oldest(s.OldestPending)
	if s.OldestPendingUnknown {
		pendingNote = "oldest unknown (the next event has no published_at)"
	}
	line("pending", s.Pending, pendingNote)
	line("processing", s.Processing, oldest(s.OldestProcessing))
	line("claiming", s.Claiming, "")
	line("scheduled", s.Scheduled, scheduledNote(s))
	line("dead", s.Dead, oldest(s.OldestDead))
	b.WriteString("leases\n")
	line("expired", s.LeasesExpired, "(the reaper takes them back at its next run)")
	line("expiring", s.LeasesExpiring, "(within "+age(s.ExpiringWithin)+": a heartbeat is overdue)")
	b.WriteString("totals\n")
	for _, n := range queue.CounterNames() {
		line(n, s.Counters[n], "")
	}
	// No trailing spaces on lines without a note.
	out := strings.ReplaceAll(b.String(), "   \n", "\n")
	return out
}

func peekCommand() command {
	return command{
		name:    "peek",
		summary: "show the next pending events, the deliveries in flight or the newest dead letters",
		usage: `Usage: redis-keda peek pending|processing|scheduled|dead [-n N] [--json]

Shows up to N entries without changing anything:
  pending     the next to be claimed first
  processing  the deliveries in flight (leased), the oldest first
  scheduled   retries and delayed events, the earliest due first, with
              their due times
  dead        the newest dead letters first, with their reasons
Each entry has its event id (when it has one) and a reference, @ and 12 hex
digits, that inspect and redrive accept for entries without an id. At most
64 KiB of each entry is read; the table shows the first 60 characters of the
payload, --json what was read ("truncated": true when there is more).
Characters that are not printable (terminal escapes, other controls,
invalid UTF-8) are quoted in the table: \x1b, \n, \u202e, \xff; --json
gives the exact bytes.

Flags:
  -n N    how many entries, 1 to 1000 (default 10)
  --json  a JSON array

Example:
  redis-keda peek dead -n 5
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			n := fs.Int("n", 10, "")
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			if len(ops) != 1 {
				return nil, fmt.Errorf("peek takes one of pending, processing, scheduled or dead, got %q", ops)
			}
			loc := queue.Location(ops[0])
			if loc != queue.LocPending && loc != queue.LocProcessing && loc != queue.LocScheduled && loc != queue.LocDead {
				return nil, fmt.Errorf("peek %q: use pending, processing, scheduled or dead", ops[0])
			}
			if *n < 1 || *n > 1000 {
				return nil, fmt.Errorf("-n %d: use 1 to 1000", *n)
			}
			return func(ctx context.Context, e *env) int { return peek(ctx, e, loc, *n) }, nil
		},
	}
}

func peek(ctx context.Context, e *env, loc queue.Location, n int) int {
	es, err := e.q.Peek(ctx, loc, n)
	if err != nil {
		return e.fail(err)
	}
	if e.json {
		out := make([]entryJSON, len(es))
		for i, en := range es {
			out[i] = toJSON(en)
		}
		return e.writeJSON(out)
	}
	if len(es) == 0 {
		fmt.Fprintf(e.stdout, "no %s entries in queue %s\n", loc, e.cfg.Queue.Name)
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	switch loc {
	case queue.LocPending:
		fmt.Fprintln(tw, "POS\tID\tREF\tATTEMPTS\tSIZE\tPAYLOAD")
		for _, en := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", en.Position, dash(queue.Printable(en.ID)), en.Ref, en.Attempts, en.Size, cell(en, 60))
		}
	case queue.LocProcessing:
		fmt.Fprintln(tw, "ID\tREF\tATTEMPT\tCLAIMED AT\tLEASE UNTIL\tTOKEN\tSIZE\tPAYLOAD")
		for _, en := range es {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", dash(queue.Printable(en.ID)), en.Ref, en.Attempts, stamp(en.ClaimedAt), stamp(en.LeaseDeadline), queue.Printable(en.Token), en.Size, cell(en, 60))
		}
	case queue.LocScheduled:
		scheduledTable(tw, es)
	case queue.LocDead:
		fmt.Fprintln(tw, "POS\tID\tREF\tATTEMPTS\tDEAD AT\tREASON\tPAYLOAD")
		for _, en := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", en.Position, dash(queue.Printable(en.ID)), en.Ref, en.Attempts, stamp(en.DeadAt), short(queue.Printable(en.Reason), 60), cell(en, 60))
		}
	}
	if err := tw.Flush(); err != nil {
		return e.fail(fmt.Errorf("write table: %w", err))
	}
	return ExitOK
}

func inspectCommand() command {
	return command{
		name:    "inspect",
		summary: "an event's fate by id: pending, in flight (pod), dead (reason) or done (acked)",
		usage: `Usage: redis-keda inspect ID|@REF [--json]
       redis-keda inspect --id ID [--json]

Finds every entry whose event id is ID (the payload's "id", or the id the
queue assigned to a payload without one), or whose reference starts with
@REF (as peek shows it), wherever it is: pending (position, age), in flight
(the pod holding it, since when, its lease), claimed but not leased yet,
dead (reason), and done: its done record (acked at, the acked attempt, its
duration from lease to ack, the pod that did it), kept for the last
DONE_MAX_RECORDS acks within DONE_MAX_AGE. Shows its attempts and its whole
payload (base64 when it is not UTF-8 text). One id can be in several
places (a duplicate delivery, an id published again). It reads the lists in
pages of 100 (64 KiB of each entry at most): its cost grows with the queue.
Nothing is changed. Characters that are not printable are quoted (\x1b,
\n, \u202e, \xff); --json gives the exact bytes.

Exit code 3 when the id is found nowhere: never published, acked before the
done records' bounds trimmed its record, or purged.

An argument that starts with @ is a reference; an event id that starts
with @ is given with --id.

Flags:
  --id ID  the event id ID, taken literally (e.g. --id @home)
  --json   a JSON array of the entries found

Examples:
  redis-keda inspect evt-42
  redis-keda inspect @3f2a9c1b7d0e --json
  redis-keda inspect --id @home
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			sel, err := oneSelector(fs, args, "inspect")
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) int { return inspect(ctx, e, sel) }, nil
		},
	}
}

// oneSelector parses a command that names exactly one event: an ID or
// @REF operand, or --id ID.
func oneSelector(fs *flag.FlagSet, args []string, cmd string) (queue.Selector, error) {
	var ids []string
	fs.Func("id", "", func(v string) error { ids = append(ids, v); return nil })
	ops, err := parseInterleaved(fs, args)
	if err != nil {
		return queue.Selector{}, err
	}
	sels, err := selectors(ops, ids)
	if err != nil {
		return queue.Selector{}, err
	}
	if len(sels) != 1 {
		return queue.Selector{}, fmt.Errorf("%s takes one id or @reference (or --id ID), got %q", cmd, append(ops, ids...))
	}
	return sels[0], nil
}

// selectors reads ID and @REF operands and --id values.
func selectors(ops, ids []string) ([]queue.Selector, error) {
	var out []queue.Selector
	for _, op := range ops {
		s, err := queue.ParseSelector(op)
		if err != nil {
			if strings.HasPrefix(op, "@") {
				return nil, fmt.Errorf("%w; for an event id that starts with @, use --id %s", err, op)
			}
			return nil, err
		}
		out = append(out, s)
	}
	for _, id := range ids {
		s, err := queue.IDSelector(id)
		if err != nil {
			return nil, fmt.Errorf("--id: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

func inspect(ctx context.Context, e *env, sel queue.Selector) int {
	es, err := e.q.Inspect(ctx, sel)
	if err != nil {
		return e.fail(err)
	}
	if e.json {
		out := make([]entryJSON, len(es))
		for i, en := range es {
			out[i] = toJSON(en)
			out[i].Truncated = false
		}
		return e.writeJSON(out)
	}
	for i, en := range es {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprint(e.stdout, e.describe(en))
	}
	return ExitOK
}

// describe is inspect's text for one entry.
func (e *env) describe(en queue.Entry) string {
	var b strings.Builder
	row := func(k, v string) { fmt.Fprintf(&b, "  %-13s %s\n", k, v) }
	if en.Location == queue.LocDone {
		fmt.Fprintf(&b, "event %s\n", queue.Printable(en.ID))
	} else {
		fmt.Fprintf(&b, "event %s %s\n", dash(queue.Printable(en.ID)), en.Ref)
	}
	if en.IDAssigned {
		row("id", "assigned by the queue (the payload has none)")
	}
	maxAttempts := e.cfg.Queue.MaxAttempts
	switch en.Location {
	case queue.LocPending:
		row("where", fmt.Sprintf("pending, position %d (1 = the next to be claimed)", en.Position))
		row("attempts", fmt.Sprintf("%d so far; the next claim is delivery %d of MAX_ATTEMPTS %d", en.Attempts, en.Attempts+1, maxAttempts))
	case queue.LocProcessing:
		row("where", "in flight, claim token "+queue.Printable(en.Token))
		row("pod", dash(queue.Printable(en.Pod)))
		row("attempts", fmt.Sprintf("this is delivery %d of MAX_ATTEMPTS %d", en.Attempts, maxAttempts))
		row("claimed at", stamp(en.ClaimedAt))
		row("lease until", stamp(en.LeaseDeadline)+" (moved forward by every heartbeat)")
	case queue.LocClaimed:
		row("where", "claimed by a job, not leased yet, claim token "+queue.Printable(en.Token))
		row("attempts", fmt.Sprintf("this is delivery %d of MAX_ATTEMPTS %d", en.Attempts, maxAttempts))
		row("reaped after", stamp(en.LeaseDeadline)+" (if the job died before leasing it)")
	case queue.LocDead:
		row("where", fmt.Sprintf("dead, position %d (1 = the newest dead letter)", en.Position))
		row("attempts", plural(en.Attempts, "delivery", "deliveries"))
		row("dead at", stamp(en.DeadAt))
		row("reason", queue.Printable(en.Reason))
	case queue.LocScheduled:
		row("where", "scheduled, due at "+stamp(en.DueAt)+" (Redis clock; then the mover puts it on the pending list)")
		row("attempts", fmt.Sprintf("%d so far; the next claim is delivery %d of MAX_ATTEMPTS %d", en.Attempts, en.Attempts+1, maxAttempts))
	case queue.LocDone:
		row("where", "done (acked)")
		row("acked at", stamp(en.AckedAt))
		row("attempts", fmt.Sprintf("acked on delivery %d", en.Attempts))
		row("duration", age(en.AckedAt.Sub(en.ClaimedAt))+" (leased at "+stamp(en.ClaimedAt)+", acked at, Redis clock)")
		row("pod", dash(queue.Printable(en.Pod)))
		if en.Acks > 1 {
			row("acks", fmt.Sprintf("%d: acked more than once (a duplicate delivery, or the id published again); this is the last", en.Acks))
		}
		return b.String() // a done record keeps no payload
	}
	if en.Reason != "" && en.Location != queue.LocDead {
		row("note", queue.Printable(en.Reason))
	}
	if !en.PublishedAt.IsZero() {
		if en.Location == queue.LocPending {
			row("published at", stamp(en.PublishedAt)+", age "+age(max(e.now().Sub(en.PublishedAt), 0)))
		} else {
			row("published at", stamp(en.PublishedAt))
		}
	}
	row("size", fmt.Sprintf("%d bytes", en.Size))
	if s, ok := en.PayloadText(); ok {
		row("payload", queue.Printable(s))
	} else {
		row("payload", "(not UTF-8; base64) "+base64.StdEncoding.EncodeToString(en.Payload))
	}
	return b.String()
}

func redriveCommand() command {
	return command{
		name:    "redrive",
		summary: "move dead letters back to pending: attempts reset, payload byte for byte",
		usage: `Usage: redis-keda redrive ID|@REF... [--id ID]... [--dry-run] [--json]
       redis-keda redrive --all [--dry-run] [--json]
       redis-keda redrive --scheduled ID|@REF...|--all [--json]

Moves dead letters back to the pending list, oldest first, to its back (they
are claimed after the events already waiting). Each move is atomic: the dead
letter is removed and its payload pushed exactly as the producer sent it (the
decoded "payload" or "payload_base64"), so its attempts start again at 1; an
event whose id the queue assigned (its payload has none) keeps that id, in an
envelope beside the payload. The counter "redriven" grows. An ID redrives
every dead letter of that event id.

By id, nothing changes unless every ID and @REF matches a dead letter (exit
3) that can be redriven (exit 4: a payload above MAX_PAYLOAD_BYTES, which a
job would dead-letter again, or an unreadable record).
With --all, every dead letter there was when it started; one that cannot be
redriven is left in place and reported (exit 4).

An argument that starts with @ is a reference; an event id that starts
with @ is given with --id (repeatable).

Flags:
  --all      every dead letter
  --scheduled  make scheduled events (retries, delayed events: peek scheduled
             lists them) due now instead: the mover moves them to the back of
             pending at its next run, their attempts unchanged
  --id ID    the event id ID, taken literally (e.g. --id @home)
  --dry-run  show what would move; change nothing
  --json     one JSON object: redriven, skipped, gone

Examples:
  redis-keda redrive evt-42 @3f2a9c1b7d0e
  redis-keda redrive --id @home
  redis-keda redrive --all --dry-run
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			all := fs.Bool("all", false, "")
			dry := fs.Bool("dry-run", false, "")
			sched := fs.Bool("scheduled", false, "")
			var ids []string
			fs.Func("id", "", func(v string) error { ids = append(ids, v); return nil })
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			named := append(slices.Clone(ops), ids...)
			switch {
			case *all && len(named) > 0:
				return nil, fmt.Errorf("give ids or --all, not both (got --all and %q)", named)
			case !*all && len(named) == 0:
				return nil, errors.New("which dead letters? give ids or @references (peek dead lists them), or --all")
			}
			sels, err := selectors(ops, ids)
			if err != nil {
				return nil, err
			}
			if *sched {
				if *dry {
					return nil, errors.New("--dry-run is for dead letters; peek scheduled shows what --scheduled would make due")
				}
				return func(ctx context.Context, e *env) int { return redriveScheduled(ctx, e, sels, *all) }, nil
			}
			return func(ctx context.Context, e *env) int { return redrive(ctx, e, sels, *all, *dry) }, nil
		},
	}
}

type redriveJSON struct {
	DryRun   bool          `json:"dry_run"`
	Redriven []summaryJSON `json:"redriven"`
	Skipped  []summaryJSON `json:"skipped"`
	Gone     []summaryJSON `json:"gone"`
}

type summaryJSON struct {
	ID     string `json:"id,omitempty"`
	Ref    string `json:"ref"`
	Size   int    `json:"size"`
	Reason string `json:"reason,omitempty"`
}

func redrive(ctx context.Context, e *env, sels []queue.Selector, all, dry bool) int {
	var res queue.RedriveResult
	var err error
	if all {
		res, err = e.q.RedriveAll(ctx, dry)
	} else {
		res, err = e.q.Redrive(ctx, sels, dry)
	}
	if err != nil {
		return e.fail(err)
	}
	code := ExitOK
	if len(res.Skipped) > 0 {
		code = ExitRefused
	}
	if e.json {
		out := redriveJSON{DryRun: dry, Redriven: []summaryJSON{}, Skipped: []summaryJSON{}, Gone: []summaryJSON{}}
		for _, en := range res.Moved {
			out.Redriven = append(out.Redriven, summaryJSON{ID: en.ID, Ref: en.Ref, Size: en.Size})
		}
		for _, s := range res.Skipped {
			out.Skipped = append(out.Skipped, summaryJSON{ID: s.Entry.ID, Ref: s.Entry.Ref, Size: s.Entry.Size, Reason: s.Reason})
		}
		for _, en := range res.Gone {
			out.Gone = append(out.Gone, summaryJSON{ID: en.ID, Ref: en.Ref, Size: en.Size})
		}
		if c := e.writeJSON(out); c != ExitOK {
			return c
		}
		return code
	}
	verb := "redriven"
	if dry {
		verb = "would redrive"
	}
	const show = 20
	for i, en := range res.Moved {
		if i == show {
			fmt.Fprintf(e.stdout, "... and %d more\n", len(res.Moved)-show)
			break
		}
		fmt.Fprintf(e.stdout, "%s %s\n", verb, name(en))
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(e.stdout, "left in dead %s: %s\n", name(s.Entry), queue.Printable(s.Reason))
	}
	for _, en := range res.Gone {
		fmt.Fprintf(e.stdout, "already gone %s (another redrive or purge took it)\n", name(en))
	}
	if dry {
		fmt.Fprintf(e.stdout, "dry run: %d dead letters would be redriven to %s; nothing changed\n", len(res.Moved), e.cfg.Queue.Name)
	} else {
		fmt.Fprintf(e.stdout, "%d dead letters redriven to %s; their attempts start again at 1\n", len(res.Moved), e.cfg.Queue.Name)
	}
	return code
}

func purgeCommand() command {
	return command{
		name:    "purge",
		summary: "delete every dead letter, or every pending event (--yes required)",
		usage: `Usage: redis-keda purge dead|pending|scheduled --yes [--json]

Deletes every entry of the dead list, of the pending list, or of the
scheduled set (retries and delayed events waiting for their time), in one
atomic script, and adds their number to the counter purged_dead,
purged_pending or purged_scheduled.
Events in flight are not touched. Without --yes it only says how many
entries it would delete, and exits 2.

Flags:
  --yes   really delete
  --json  one JSON object: list, purged

Example:
  redis-keda purge dead --yes
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			yes := fs.Bool("yes", false, "")
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			if len(ops) != 1 || (ops[0] != "dead" && ops[0] != "pending" && ops[0] != "scheduled") {
				return nil, fmt.Errorf("purge takes dead, pending or scheduled, got %q", ops)
			}
			loc := queue.Location(ops[0])
			return func(ctx context.Context, e *env) int { return purge(ctx, e, loc, *yes) }, nil
		},
	}
}

func purge(ctx context.Context, e *env, loc queue.Location, yes bool) int {
	what := map[queue.Location]string{queue.LocDead: "dead letters", queue.LocPending: "pending events", queue.LocScheduled: "scheduled events"}[loc]
	if !yes {
		s, err := e.q.Snapshot(ctx, queue.SnapshotOptions{})
		if err != nil {
			return e.fail(err)
		}
		n := map[queue.Location]int64{queue.LocPending: s.Pending, queue.LocDead: s.Dead, queue.LocScheduled: s.Scheduled}[loc]
		fmt.Fprintf(e.stderr, "redis-keda purge: refusing to delete the %d %s of queue %s for good without --yes; nothing was deleted\n", n, what, e.cfg.Queue.Name)
		return ExitUsage
	}
	n, err := e.q.Purge(ctx, loc)
	if err != nil {
		return e.fail(err)
	}
	if e.json {
		return e.writeJSON(map[string]any{"list": string(loc), "purged": n})
	}
	fmt.Fprintf(e.stdout, "purged %d %s of queue %s\n", n, what, e.cfg.Queue.Name)
	return ExitOK
}

// entryJSON is an entry in --json output.
type entryJSON struct {
	Where         string   `json:"where"`
	Position      int64    `json:"position,omitempty"`
	ID            string   `json:"id,omitempty"`
	IDAssigned    bool     `json:"id_assigned,omitempty"`
	Ref           string   `json:"ref,omitempty"`
	Attempts      int      `json:"attempts"`
	Size          int      `json:"size"`
	Payload       *string  `json:"payload,omitempty"`
	PayloadBase64 *string  `json:"payload_base64,omitempty"`
	Truncated     bool     `json:"truncated,omitempty"`
	PublishedAt   string   `json:"published_at,omitempty"`
	Token         string   `json:"token,omitempty"`
	ClaimedAt     string   `json:"claimed_at,omitempty"`
	LeaseUntil    string   `json:"lease_until,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	DeadAt        string   `json:"dead_at,omitempty"`
	Pod           string   `json:"pod,omitempty"`
	AckedAt       string   `json:"acked_at,omitempty"`
	DurationSecs  *float64 `json:"duration_seconds,omitempty"`
	Acks          int      `json:"acks,omitempty"`
	DueAt         string   `json:"due_at,omitempty"`
}

func toJSON(en queue.Entry) entryJSON {
	opt := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	j := entryJSON{
		Where: string(en.Location), Position: en.Position, ID: en.ID, IDAssigned: en.IDAssigned, Ref: en.Ref,
		Attempts: en.Attempts, Size: en.Size, Truncated: en.Truncated, PublishedAt: opt(en.PublishedAt),
		Token: en.Token, ClaimedAt: opt(en.ClaimedAt), LeaseUntil: opt(en.LeaseDeadline), Reason: en.Reason, DeadAt: opt(en.DeadAt),
		Pod: en.Pod, AckedAt: opt(en.AckedAt), Acks: en.Acks, DueAt: opt(en.DueAt),
	}
	if en.Location == queue.LocDone {
		d := en.AckedAt.Sub(en.ClaimedAt).Seconds()
		j.DurationSecs = &d
		return j // a done record keeps no payload
	}
	if s, ok := en.PayloadText(); ok {
		j.Payload = &s
	} else {
		b := base64.StdEncoding.EncodeToString(en.Payload)
		j.PayloadBase64 = &b
	}
	return j
}

// cell is a payload for a table: non-printables quoted (queue.Printable),
// cut to n characters.
func cell(en queue.Entry, n int) string {
	s, ok := en.PayloadText()
	if !ok {
		return short("base64:"+base64.StdEncoding.EncodeToString(en.Payload), n)
	}
	s = queue.Printable(s)
	if en.Truncated && utf8.RuneCountInString(s) <= n {
		s += "…"
	}
	return short(s, n)
}

// short cuts s to n characters, marking the cut.
func short(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// name is an entry in a message: id (quoted: queue.Printable) and
// reference.
func name(en queue.Entry) string {
	if en.ID == "" {
		return en.Ref
	}
	return queue.Printable(en.ID) + " " + en.Ref
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// scheduledNote is the stats line's note for the scheduled set.
func scheduledNote(s queue.Snapshot) string {
	if s.Overdue == 0 {
		return ""
	}
	d, _ := s.Age(s.OldestOverdue)
	return fmt.Sprintf("%d overdue, the earliest due %s ago (not moved yet: is a publisher running?)", s.Overdue, age(d))
}

// scheduledTable is peek scheduled's table.
func scheduledTable(tw io.Writer, es []queue.Entry) {
	fmt.Fprintln(tw, "POS\tID\tREF\tATTEMPTS\tDUE AT\tSIZE\tPAYLOAD")
	for _, en := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%s\n", en.Position, dash(queue.Printable(en.ID)), en.Ref, en.Attempts, stamp(en.DueAt), en.Size, cell(en, 60))
	}
}

// redriveScheduled is redrive --scheduled: make scheduled events due now.
func redriveScheduled(ctx context.Context, e *env, sels []queue.Selector, all bool) int {
	if all {
		n, err := e.q.RedriveScheduledAll(ctx)
		if err != nil {
			return e.fail(err)
		}
		if e.json {
			return e.writeJSON(map[string]any{"made_due": n})
		}
		fmt.Fprintf(e.stdout, "%d scheduled events made due now; the mover moves them to %s at its next run\n", n, e.cfg.Queue.Name)
		return ExitOK
	}
	moved, err := e.q.RedriveScheduled(ctx, sels)
	if err != nil {
		return e.fail(err)
	}
	if e.json {
		out := []summaryJSON{}
		for _, en := range moved {
			out = append(out, summaryJSON{ID: en.ID, Ref: en.Ref, Size: en.Size})
		}
		if c := e.writeJSON(map[string]any{"made_due": out}); c != ExitOK {
			return c
		}
	} else {
		for _, en := range moved {
			fmt.Fprintf(e.stdout, "made due %s\n", name(en))
		}
		fmt.Fprintf(e.stdout, "%d scheduled events made due now; the mover moves them to %s at its next run\n", len(moved), e.cfg.Queue.Name)
	}
	if len(moved) == 0 {
		fmt.Fprintf(e.stderr, "redis-keda redrive --scheduled: no scheduled event matched (peek scheduled lists them)\n")
		return ExitNotFound
	}
	return ExitOK
}
