package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/queue"
)

// runIn runs the CLI with stdin.
func (f *fixture) runIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := RunIO(context.Background(), args, f.env, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// claimAll claims every pending event (the next first) and returns its id
// and payload, "id=payload".
func (f *fixture) claimAll(t *testing.T) []string {
	t.Helper()
	var out []string
	for f.rdb.LLen(context.Background(), "events").Val() > 0 {
		d, err := f.q.ClaimWith(context.Background(), queue.ClaimOptions{Timeout: 10 * time.Second, AnyPayload: true})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.Event.ID+"="+string(d.Payload()))
	}
	return out
}

var printedID = regexp.MustCompile(`(?m)^(line|arg|stdin) (\d+): (.*)$`)

// printedIDs is the ids publish printed, in order.
func printedIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, m := range printedID.FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[3])
	}
	if strings.Count(out, "\n") != len(ids) {
		t.Fatalf("publish output has lines that are not \"line N: ID\":\n%s", out)
	}
	return ids
}

// Events as arguments: an event with its own id is published byte for byte
// under it; one without gets a new id, beside its bytes; the printed ids are
// the ids the jobs get, in the order they are claimed.
func TestPublishArguments(t *testing.T) {
	f := newFixture(t)
	odd := `{"text":"tab\t\u0000 é 😀 <b>&amp;","n":1e400}`
	code, out, errOut := f.run(t, "publish", `{"id":"evt-1","wait":1}`, `[1,2]`, odd, `{"id":42}`, `{"\u0069d":"escaped-key"}`, `"just a string"`)
	if code != ExitOK || errOut != "redis-keda publish: published 6 events to the pending list of events\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	ids := printedIDs(t, out)
	if len(ids) != 6 || ids[0] != "evt-1" || ids[3] != "42" || ids[4] != "escaped-key" || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(ids[1]) {
		t.Fatalf("printed ids %q", ids)
	}
	wantOut := fmt.Sprintf("arg 1: evt-1\narg 2: %s\narg 3: %s\narg 4: 42\narg 5: escaped-key\narg 6: %s\n", ids[1], ids[2], ids[5])
	if out != wantOut {
		t.Errorf("stdout\n%s\nwant\n%s", out, wantOut)
	}
	// The stored entries: own ids byte for byte, the others in the
	// queue's envelope with the printed id.
	stored := f.rdb.LRange(context.Background(), "events", 0, -1).Val()
	slices.Reverse(stored) // the next to be claimed first
	want := []string{`{"id":"evt-1","wait":1}`, `rkq1 {"id":"` + ids[1] + `","assigned":true,"attempts":0}` + "\n[1,2]",
		`rkq1 {"id":"` + ids[2] + `","assigned":true,"attempts":0}` + "\n" + odd, `{"id":42}`, `{"\u0069d":"escaped-key"}`,
		`rkq1 {"id":"` + ids[5] + `","assigned":true,"attempts":0}` + "\n" + `"just a string"`}
	if !slices.Equal(stored, want) {
		t.Errorf("pending entries\n%q\nwant\n%q", stored, want)
	}
	got := f.claimAll(t)
	wantClaims := []string{"evt-1=" + `{"id":"evt-1","wait":1}`, ids[1] + "=[1,2]", ids[2] + "=" + odd, `42={"id":42}`,
		`escaped-key={"\u0069d":"escaped-key"}`, ids[5] + `="just a string"`}
	if !slices.Equal(got, wantClaims) {
		t.Errorf("claimed\n%q\nwant\n%q", got, wantClaims)
	}
}

// JSON lines on stdin: blank lines skipped (still counted), CRLF read as
// LF; --json prints one object per event with its line number.
func TestPublishStdinJSONLines(t *testing.T) {
	f := newFixture(t)
	in := "{\"id\":\"a\"}\r\n\n   \n{\"id\":\"b\",\"s\":\"\\u2028\\\"\"}\n{\"id\":\"c\"}"
	code, out, errOut := f.runIn(t, in, "publish", "--json")
	if code != ExitOK || errOut != "redis-keda publish: published 3 events to the pending list of events\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := `{"line":1,"id":"a","size":10}` + "\n" + `{"line":4,"id":"b","size":25}` + "\n" + `{"line":5,"id":"c","size":10}` + "\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}
	got := f.claimAll(t)
	wantClaims := []string{`a={"id":"a"}`, `b={"id":"b","s":"\u2028\""}`, `c={"id":"c"}`}
	if !slices.Equal(got, wantClaims) {
		t.Errorf("claimed\n%q\nwant\n%q", got, wantClaims)
	}
}

// A refused event refuses the batch: every refused line is named with its
// number and reason, and nothing at all is published.
func TestPublishRefusedBatchPublishesNothing(t *testing.T) {
	f := newFixture(t)
	big := `{"pad":"` + strings.Repeat("x", 200) + `"}`
	in := strings.Join([]string{`{"id":"ok-1"}`, `{"id":`, `{"id":"ok-2"}`, big, `not json`, `{"id":"ok-3"}`}, "\n")
	before := f.keyspace(t)
	code, out, errOut := f.runIn(t, in, "publish")
	want := `redis-keda publish: line 2: not valid JSON (unexpected end of JSON input); give one JSON value per line, or use --raw for other bytes
redis-keda publish: line 4: payload too large: 210 bytes, above MAX_PAYLOAD_BYTES (200); store large data elsewhere and publish a reference
redis-keda publish: line 5: not valid JSON (invalid character 'o' in literal null (expecting 'u')); give one JSON value per line, or use --raw for other bytes
redis-keda publish: 3 of 6 events refused; nothing published (the whole batch is checked before anything is sent)
`
	if code != ExitUsage || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr\n%s\nwant\n%s", code, out, errOut, want)
	}
	if after := f.keyspace(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("keyspace changed: %v -> %v", before, after)
	}

	// --id: one event, and an event with its own id must have that one.
	for _, tc := range []struct {
		in   string
		args []string
		code int
		err  string
	}{
		{"", []string{"publish", "--id", "x", `{"id":"y"}`}, ExitUsage, "redis-keda publish: arg 1: invalid event: the payload's own \"id\" is \"y\", not \"x\"; drop --id or make them equal\nredis-keda publish: 1 of 1 events refused; nothing published (the whole batch is checked before anything is sent)\n"},
		{"{}\n{}\n", []string{"publish", "--id", "x"}, ExitUsage, "redis-keda publish: --id names one event, got 2 lines; nothing published\n"},
		{"\n\n", []string{"publish"}, ExitUsage, "redis-keda publish: no events (give them as arguments or as JSON lines on stdin); nothing published\n"},
		{"", []string{"publish", "--in", "1s", "--at", "2030-01-01T00:00:00Z", "{}"}, ExitUsage, "redis-keda publish: give --in or --at, not both\nRun 'redis-keda publish --help' for usage.\n"},
		{"", []string{"publish", "--at", "tomorrow", "{}"}, ExitUsage, "redis-keda publish: --at \"tomorrow\" is not an RFC 3339 time such as 2026-12-24T18:00:00Z\nRun 'redis-keda publish --help' for usage.\n"},
	} {
		code, out, errOut := f.runIn(t, tc.in, tc.args...)
		if code != tc.code || out != "" || errOut != tc.err {
			t.Errorf("%q: exit %d, stdout %q, stderr\n%s\nwant\n%s", tc.args, code, out, errOut, tc.err)
		}
	}
	if after := f.keyspace(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("keyspace changed: %v -> %v", before, after)
	}
}

// --raw: arguments are any bytes; stdin as a whole is one payload (a binary
// file), with --id.
func TestPublishRawBinary(t *testing.T) {
	f := newFixture(t)
	bin := "\x00\xff\xfe\n\r\nrkq1 \x1b[2J"
	code, out, errOut := f.runIn(t, bin, "publish", "--raw", "--id", "img-7")
	if code != ExitOK || out != "stdin 1: img-7\n" || errOut != "redis-keda publish: published 1 events to the pending list of events\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = f.run(t, "publish", "--raw", "\xc3\x28 not utf-8", `{"id":"own"}`)
	ids := printedIDs(t, out)
	if code != ExitOK || len(ids) != 2 || ids[1] != "own" {
		t.Fatalf("exit %d, ids %q", code, ids)
	}
	got := f.claimAll(t)
	want := []string{"img-7=" + bin, ids[0] + "=\xc3\x28 not utf-8", `own={"id":"own"}`}
	if !slices.Equal(got, want) {
		t.Errorf("claimed\n%q\nwant\n%q", got, want)
	}
}

// --in: the batch goes to the scheduled set, one due time (Redis clock +
// the delay), each member "<nonce> <entry>" with the printed id.
func TestPublishIn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := f.rdb.Time(ctx).Val().UnixMilli()
	code, out, errOut := f.runIn(t, "{\"id\":\"later-1\"}\n{\"x\":1}\n", "publish", "--in", "1h")
	after := f.rdb.Time(ctx).Val().UnixMilli()
	ids := printedIDs(t, out)
	if code != ExitOK || len(ids) != 2 || ids[0] != "later-1" || errOut != "redis-keda publish: published 2 events to the scheduled set of events, due in 1h0m0s\n" {
		t.Fatalf("exit %d, ids %q, stderr %q", code, ids, errOut)
	}
	zs := f.rdb.ZRangeWithScores(ctx, "{events}:scheduled", 0, -1).Val()
	if len(zs) != 2 || f.rdb.LLen(ctx, "events").Val() != 0 {
		t.Fatalf("scheduled %v, pending %d", zs, f.rdb.LLen(ctx, "events").Val())
	}
	var entries []string
	for _, z := range zs {
		due := int64(z.Score)
		if due < before+3600_000 || due > after+3600_000 || due != int64(zs[0].Score) {
			t.Errorf("due %d, want one due time in [%d, %d]", due, before+3600_000, after+3600_000)
		}
		_, entry, _ := strings.Cut(z.Member.(string), " ")
		entries = append(entries, entry)
	}
	slices.Sort(entries)
	want := []string{`rkq1 {"id":"` + ids[1] + `","assigned":true,"attempts":0}` + "\n" + `{"x":1}`, `{"id":"later-1"}`}
	slices.Sort(want)
	if !slices.Equal(entries, want) {
		t.Errorf("scheduled entries %q, want %q", entries, want)
	}
}

// Redis refusing part-way (maxmemory reached): the events Redis confirmed
// stay published and are exactly the ones printed; stderr says how many were
// not, and the exit code is 1.
func TestPublishRedisFailsPartWay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.env["MAX_PAYLOAD_BYTES"] = "100000"
	var in strings.Builder
	const n = 20000
	for i := range n {
		fmt.Fprintf(&in, `{"id":"e%05d","pad":"%s"}`+"\n", i, strings.Repeat("p", 180))
	}
	info := f.rdb.Info(ctx, "memory").Val()
	used := regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(info)
	if used == nil {
		t.Fatalf("no used_memory in INFO memory:\n%s", info)
	}
	if err := f.rdb.ConfigSet(ctx, "maxmemory", fmt.Sprint(mustInt(t, used[1])+1<<20)).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := f.runIn(t, in.String(), "publish")
	ids := printedIDs(t, out)
	if code != ExitFailure || len(ids) == 0 || len(ids) == n {
		t.Fatalf("exit %d, %d of %d printed (want some, not all); stderr:\n%s", code, len(ids), n, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("redis-keda publish: %d events published (listed on stdout), %d not published, 0 unknown", len(ids), n-len(ids))) ||
		!strings.Contains(errOut, "OOM command not allowed") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if err := f.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	stored := f.rdb.LRange(ctx, "events", 0, -1).Val()
	var storedIDs []string
	for _, s := range stored {
		var v struct{ ID string }
		_ = json.Unmarshal([]byte(s), &v)
		storedIDs = append(storedIDs, v.ID)
	}
	slices.Sort(storedIDs)
	sorted := slices.Sorted(slices.Values(ids))
	if !slices.Equal(storedIDs, sorted) {
		t.Errorf("%d ids in Redis, %d printed: they differ", len(storedIDs), len(ids))
	}
}

func mustInt(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
