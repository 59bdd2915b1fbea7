package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis-keda/redis-keda/queue"
)

func publishCommand() command {
	return command{
		name:    "publish",
		summary: "publish events given as arguments or as JSON lines on stdin, now or later",
		usage: `Usage: redis-keda publish [--id ID] [--in DURATION | --at TIME] [--json] [EVENT...]
       redis-keda publish --raw [--id ID] [--in DURATION | --at TIME] [--json] [PAYLOAD...]

Publishes events to the queue's pending list (the list KEDA counts), or with
--in/--at to its scheduled set, due then by Redis's clock.

Input:
  EVENT...  each argument is one event: a JSON value (usually an object),
            published byte for byte.
  stdin     without arguments: JSON Lines, one event per line; blank lines
            are skipped (they still count in line numbers) and a line's
            trailing \r is dropped.
  --raw     any bytes, not only JSON: each argument is one payload, or,
            without arguments, all of stdin is ONE payload (a binary file).
Every event is at most MAX_PAYLOAD_BYTES.

Ids: an event that is a JSON object with its own "id" (a non-empty string or
a number) is published byte for byte under that id. Any other event is
published byte for byte beside an id — --id ID, or a new random one — in the
queue's envelope, as the queue does for a payload without an id: the job
gets exactly the bytes and that id, and inspect finds it by that id at once.
--id needs exactly one event, and an event with an id of its own must have
that one.

The batch rule: every event is read and checked before anything is sent.
If any is refused, each refused one is reported with its line (or argument)
number and the reason, and NOTHING is published (exit 2). Then the events go
in their order (the first is claimed first), 1000 per LPUSH and 16 LPUSHes
per round trip, each LPUSH atomic (with --in/--at: 1000 per scheduling
script). If Redis fails part-way, the events Redis confirmed stay
published and are listed on stdout as always; stderr names the ones not
published and the ones whose reply was lost (they may be in Redis: check
with inspect before publishing them again), and the exit code is 1.

The whole input is held in memory while it is checked.

Output: one line per published event, in input order, "line N: ID" (stdin)
or "arg N: ID" (arguments); --json: one JSON object per line,
{"line":N,"id":"…","size":BYTES} (or "arg"). A summary goes to stderr.

Flags:
  --id ID        the id of the (single) event
  --in DURATION  publish for later: due after DURATION (e.g. 90s, 2h)
  --at TIME      publish for later: due at TIME (RFC 3339, e.g.
                 2026-12-24T18:00:00Z)
  --raw          payloads are any bytes (see Input)
  --json         JSON Lines output

Examples:
  redis-keda publish '{"wait": 3}' '{"id": "evt-42", "wait": 1}'
  redis-keda publish < events.jsonl
  redis-keda publish --in 10m --id report-2026-12 '{"month": "2026-12"}'
  redis-keda publish --raw --id img-7 < image.png
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			id := fs.String("id", "", "")
			in := fs.Duration("in", 0, "")
			at := fs.String("at", "", "")
			raw := fs.Bool("raw", false, "")
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			var p publishSpec
			p.id, p.raw, p.args = *id, *raw, ops
			seen := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
			switch {
			case seen["id"] && *id == "":
				return nil, errors.New("--id is empty; give the event's id, or leave --id out for a new one")
			case seen["in"] && seen["at"]:
				return nil, errors.New("give --in or --at, not both")
			case seen["in"] && *in < 0:
				return nil, fmt.Errorf("--in %s is negative; use a delay such as 90s", *in)
			case seen["id"] && len(ops) > 1:
				return nil, fmt.Errorf("--id names one event, got %d arguments", len(ops))
			}
			if seen["in"] {
				p.later, p.in = true, *in
			}
			if seen["at"] {
				t, err := time.Parse(time.RFC3339Nano, *at)
				if err != nil {
					return nil, fmt.Errorf("--at %q is not an RFC 3339 time such as 2026-12-24T18:00:00Z", *at)
				}
				p.later, p.at = true, t
			}
			return func(ctx context.Context, e *env) int { return publish(ctx, e, p) }, nil
		},
	}
}

type publishSpec struct {
	id    string
	raw   bool
	args  []string
	later bool
	in    time.Duration
	at    time.Time // with later: due at at when not zero, else after in
}

// pubEvent is one event of the input.
type pubEvent struct {
	num   int // line or argument number, from 1
	id    string
	entry []byte
	size  int
}

func publish(ctx context.Context, e *env, p publishSpec) int {
	what := "line"
	var inputs [][]byte
	var nums []int
	switch {
	case len(p.args) > 0:
		what = "arg"
		for i, a := range p.args {
			inputs, nums = append(inputs, []byte(a)), append(nums, i+1)
		}
	default:
		data, err := io.ReadAll(bufio.NewReaderSize(e.stdin, 1<<20))
		if err != nil {
			return e.fail(fmt.Errorf("read stdin: %w", err))
		}
		if p.raw {
			what = "stdin"
			inputs, nums = [][]byte{data}, []int{1}
			break
		}
		for n := 1; len(data) > 0; n++ {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			inputs, nums = append(inputs, line), append(nums, n)
		}
	}
	if len(inputs) == 0 {
		fmt.Fprintf(e.stderr, "redis-keda publish: no events (give them as arguments or as JSON lines on stdin); nothing published\n")
		return ExitUsage
	}
	if p.id != "" && len(inputs) > 1 {
		fmt.Fprintf(e.stderr, "redis-keda publish: --id names one event, got %d lines; nothing published\n", len(inputs))
		return ExitUsage
	}

	// Check everything first: a refused event refuses the batch.
	events := make([]pubEvent, 0, len(inputs))
	var refused []string
	for i, in := range inputs {
		if !p.raw && !json.Valid(in) {
			refused = append(refused, fmt.Sprintf("%s %d: not valid JSON (%s); give one JSON value per line, or use --raw for other bytes", what, nums[i], jsonError(in)))
			continue
		}
		entry, id, err := e.q.BatchEntry(in, p.id)
		if err != nil {
			refused = append(refused, fmt.Sprintf("%s %d: %v", what, nums[i], err))
			continue
		}
		events = append(events, pubEvent{num: nums[i], id: id, entry: entry, size: len(in)})
	}
	if len(refused) > 0 {
		const show = 20
		for i, r := range refused {
			if i == show {
				fmt.Fprintf(e.stderr, "redis-keda publish: ... and %d more refused\n", len(refused)-show)
				break
			}
			fmt.Fprintf(e.stderr, "redis-keda publish: %s\n", r)
		}
		fmt.Fprintf(e.stderr, "redis-keda publish: %d of %d events refused; nothing published (the whole batch is checked before anything is sent)\n", len(refused), len(inputs))
		return ExitUsage
	}

	out := bufio.NewWriterSize(e.stdout, 1<<16)
	var line []byte
	printed := func(from, to int) {
		for _, ev := range events[from:to] {
			line = line[:0]
			if e.json {
				line = append(line, `{"`...)
				line = append(line, what...)
				line = append(line, `":`...)
				line = strconv.AppendInt(line, int64(ev.num), 10)
				line = append(line, `,"id":`...)
				line = appendJSONString(line, ev.id)
				line = append(line, `,"size":`...)
				line = strconv.AppendInt(line, int64(ev.size), 10)
				line = append(line, "}\n"...)
			} else {
				line = append(line, what...)
				line = append(line, ' ')
				line = strconv.AppendInt(line, int64(ev.num), 10)
				line = append(line, ": "...)
				line = append(line, queue.Printable(ev.id)...)
				line = append(line, '\n')
			}
			_, _ = out.Write(line)
		}
	}
	entries := make([][]byte, len(events))
	for i, ev := range events {
		entries[i] = ev.entry
	}
	var res queue.BatchResult
	var err error
	where := "the pending list of " + e.cfg.Queue.Name
	switch {
	case p.later && !p.at.IsZero():
		res, err = e.q.ScheduleEntries(ctx, p.at, 0, entries, printed)
		where = fmt.Sprintf("the scheduled set of %s, due at %s", e.cfg.Queue.Name, stamp(p.at))
	case p.later:
		res, err = e.q.ScheduleEntries(ctx, time.Time{}, p.in, entries, printed)
		where = fmt.Sprintf("the scheduled set of %s, due in %s", e.cfg.Queue.Name, p.in)
	default:
		res, err = e.q.PublishEntries(ctx, entries, printed)
	}
	if ferr := out.Flush(); ferr != nil && err == nil {
		return e.fail(fmt.Errorf("write output: %w", ferr))
	}
	if err == nil {
		fmt.Fprintf(e.stderr, "redis-keda publish: published %d events to %s\n", len(events), where)
		return ExitOK
	}
	var ok, unknown, not []string
	for i, ev := range events {
		label := fmt.Sprintf("%s %d (%s)", what, ev.num, queue.Printable(ev.id))
		switch {
		case res.Confirmed[i]:
			ok = append(ok, label)
		case res.Unknown[i]:
			unknown = append(unknown, label)
		default:
			not = append(not, label)
		}
	}
	fmt.Fprintf(e.stderr, "redis-keda publish: Redis failed part-way: %v\n", err)
	fmt.Fprintf(e.stderr, "redis-keda publish: %d events published (listed on stdout), %d not published, %d unknown (sent, reply lost: check with redis-keda inspect ID before publishing them again)\n",
		len(ok), len(not), len(unknown))
	list := func(kind string, labels []string) {
		const show = 20
		for i, l := range labels {
			if i == show {
				fmt.Fprintf(e.stderr, "redis-keda publish: ... and %d more %s\n", len(labels)-show, kind)
				return
			}
			fmt.Fprintf(e.stderr, "redis-keda publish: %s: %s\n", kind, l)
		}
	}
	list("unknown", unknown)
	list("not published", not)
	return ExitFailure
}

// jsonError says where a line stops being JSON.
func jsonError(b []byte) string {
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// appendJSONString appends s as a JSON string (no HTML escaping).
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
