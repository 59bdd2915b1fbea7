package cli

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

type fixture struct {
	srv *redistest.Server
	rdb *redis.Client
	q   *queue.Queue
	env map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	env := map[string]string{"REDIS_ADDR": srv.Addr, "QUEUE": "events", "LEASE_DURATION": "30s", "MAX_ATTEMPTS": "3", "MAX_PAYLOAD_BYTES": "200"}
	rdb := srv.Client()
	q, err := queue.New(rdb, queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, rdb: rdb, q: q, env: env}
}

// run runs the CLI in-process, as main does.
func (f *fixture) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, f.env, &out, &errOut)
	return code, out.String(), errOut.String()
}

// keyspace is every key with its full contents: what "changes nothing" is
// checked against.
func (f *fixture) keyspace(t *testing.T) map[string]any {
	t.Helper()
	ctx := context.Background()
	keys, err := f.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		typ := f.rdb.Type(ctx, k).Val()
		switch typ {
		case "list":
			out[k] = f.rdb.LRange(ctx, k, 0, -1).Val()
		case "zset":
			out[k] = f.rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "hash":
			out[k] = f.rdb.HGetAll(ctx, k).Val()
		default:
			t.Fatalf("unexpected key %s of type %s", k, typ)
		}
	}
	return out
}

// deadLetter dead-letters payload the way a job does.
func (f *fixture) deadLetter(t *testing.T, payload string) {
	t.Helper()
	if err := f.q.PublishRaw(context.Background(), []byte(payload)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Claim(context.Background(), time.Second); !errors.Is(err, queue.ErrInvalidEvent) {
		t.Fatalf("claim of %q: %v, want invalid", payload, err)
	}
}

func (f *fixture) publish(t *testing.T, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := f.q.PublishRaw(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

func ref(entry string) string {
	return "@" + fmt.Sprintf("%x", sha1sum(entry))[:12]
}

func TestStats(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := f.run(t, "stats")
	want := `queue events
  pending               0
  processing            0
  claiming              0
  scheduled             0
  dead                  0
leases
  expired               0   (the reaper takes them back at its next run)
  expiring              0   (within 15s: a heartbeat is overdue)
totals
  acked                 0
  retried               0
  dead                  0
  released              0
  reaped_requeued       0
  reaped_rescued        0
  reaped_dead           0
  reaped_stale          0
  redriven              0
  purged_dead           0
  purged_pending        0
  snoozed               0
  scheduled_moved       0
  scheduled_dead        0
  scheduled_redriven      0
  purged_scheduled      0
`
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("stats on an empty queue: exit %d\n%s\nwant\n%s\nstderr %q", code, out, want, errOut)
	}

	ctx := context.Background()
	f.deadLetter(t, "not json")
	now := f.rdb.Time(ctx).Val()
	f.publish(t, fmt.Sprintf(`{"id":"a","published_at":%q,"wait":1}`, now.Add(-90*time.Second).UTC().Format(time.RFC3339Nano)), `{"id":"b","wait":1}`)
	if _, err := f.q.Claim(ctx, time.Second); err != nil { // a
		t.Fatal(err)
	}
	// The in-flight delivery was leased 45 s ago and its lease ends in 5 s
	// (a heartbeat is overdue); the dead letter died 2 minutes ago.
	tok := f.rdb.ZRange(ctx, "{events}:claimed", 0, 0).Val()[0]
	f.rdb.ZAdd(ctx, "{events}:claimed", redis.Z{Score: float64(now.Add(-45 * time.Second).UnixMilli()), Member: tok})
	f.rdb.ZAdd(ctx, "{events}:leases", redis.Z{Score: float64(now.Add(5500 * time.Millisecond).UnixMilli()), Member: tok})
	rec := f.rdb.LIndex(ctx, "{events}:dead", 0).Val()
	old := strings.Replace(rec, `"dead_at":"`, `"dead_at":"`+now.Add(-2*time.Minute).UTC().Format(time.RFC3339Nano)+`","x":"`, 1)
	f.rdb.LSet(ctx, "{events}:dead", 0, old)
	f.rdb.HIncrBy(ctx, "{events}:counters", "acked", 12)

	code, out, _ = f.run(t, "stats", "--expiring", "10s")
	want = `queue events
  pending               1   oldest unknown (the next event has no published_at)
  processing            1   oldest 45s
  claiming              0
  scheduled             0
  dead                  1   oldest 2m0s
leases
  expired               0   (the reaper takes them back at its next run)
  expiring              1   (within 10s: a heartbeat is overdue)
totals
  acked                12
  retried               0
  dead                  1
  released              0
  reaped_requeued       0
  reaped_rescued        0
  reaped_dead           0
  reaped_stale          0
  redriven              0
  purged_dead           0
  purged_pending        0
  snoozed               0
  scheduled_moved       0
  scheduled_dead        0
  scheduled_redriven      0
  purged_scheduled      0
`
	if code != 0 || out != want {
		t.Errorf("stats: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "stats", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("stats --json: exit %d, %v\n%s", code, err, out)
	}
	if got["pending"] != 1.0 || got["processing"] != 1.0 || got["dead"] != 1.0 || got["oldest_pending_seconds"] != nil ||
		got["oldest_pending_unknown"] != true || got["leases_expiring"] != 1.0 || got["expiring_within_seconds"] != 15.0 {
		t.Errorf("stats --json = %s", out)
	}
	if s := got["oldest_processing_seconds"].(float64); s < 45 || s > 46 {
		t.Errorf("oldest_processing_seconds = %v, want 45..46", s)
	}
	if c := got["counters"].(map[string]any); c["acked"] != 12.0 || c["dead"] != 1.0 || len(c) != len(queue.CounterNames()) {
		t.Errorf("counters = %v", c)
	}
}

func TestPeek(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.deadLetter(t, `{"id":"p1","wait":"soon"}`)
	f.deadLetter(t, "\xff\xfebinary")
	f.publish(t, `{"id":"e1","wait":1}`, "{\"wait\":2,\"note\":\"tab\\there\"}", `{"wait":3,"pad":"`+strings.Repeat("z", 80)+`"}`)
	d, err := f.q.Claim(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := f.keyspace(t)

	code, out, _ := f.run(t, "peek", "pending")
	p2, p3 := "{\"wait\":2,\"note\":\"tab\\there\"}", `{"wait":3,"pad":"`+strings.Repeat("z", 80)+`"}`
	want := fmt.Sprintf(`POS  ID  REF            ATTEMPTS  SIZE  PAYLOAD
1    -   %s  0         %d    %s
2    -   %s  0         %d    %s
`, ref(p2), len(p2), p2, ref(p3), len(p3), `{"wait":3,"pad":"`+strings.Repeat("z", 42)+"…")
	if code != 0 || out != want {
		t.Errorf("peek pending: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "peek", "processing", "--json")
	var proc []map[string]any
	if err := json.Unmarshal([]byte(out), &proc); err != nil || code != 0 || len(proc) != 1 {
		t.Fatalf("peek processing --json: exit %d %v\n%s", code, err, out)
	}
	deadline := f.rdb.ZScore(ctx, "{events}:leases", d.Token).Val()
	leased := f.rdb.ZScore(ctx, "{events}:claimed", d.Token).Val()
	wantProc := map[string]any{"where": "processing", "id": "e1", "ref": ref(`{"id":"e1","wait":1}`), "attempts": 1.0, "size": 20.0,
		"payload": `{"id":"e1","wait":1}`, "token": d.Token,
		"claimed_at":  time.UnixMilli(int64(leased)).UTC().Format(time.RFC3339Nano),
		"lease_until": time.UnixMilli(int64(deadline)).UTC().Format(time.RFC3339Nano)}
	if !reflect.DeepEqual(proc[0], wantProc) {
		t.Errorf("peek processing --json:\n%v\nwant\n%v", proc[0], wantProc)
	}

	code, out, _ = f.run(t, "peek", "-n", "1", "dead")
	rec0 := f.rdb.LIndex(ctx, "{events}:dead", 0).Val()
	var dl struct {
		DeadAt string `json:"dead_at"`
	}
	_ = json.Unmarshal([]byte(rec0), &dl)
	at, _ := time.Parse(time.RFC3339Nano, dl.DeadAt)
	want = fmt.Sprintf(`POS  ID  REF            ATTEMPTS  DEAD AT                   REASON                                                        PAYLOAD
1    -   %s  1         %s  payload is not a JSON object; expected a JSON object such a…  base64://5iaW5hcnk=
`, ref(rec0), at.UTC().Format("2006-01-02T15:04:05.000Z"))
	if code != 0 || out != want {
		t.Errorf("peek -n 1 dead: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "peek", "dead", "--json")
	var dead []map[string]any
	if err := json.Unmarshal([]byte(out), &dead); err != nil || code != 0 || len(dead) != 2 {
		t.Fatalf("peek dead --json: exit %d %v\n%s", code, err, out)
	}
	if dead[0]["payload_base64"] != "//5iaW5hcnk=" || dead[0]["payload"] != nil || dead[1]["id"] != "p1" || dead[1]["payload"] != `{"id":"p1","wait":"soon"}` {
		t.Errorf("peek dead --json = %v", dead)
	}

	// Nothing changed, and bad arguments are refused before connecting.
	for _, args := range [][]string{{"peek"}, {"peek", "everything"}, {"peek", "dead", "-n", "0"}, {"peek", "dead", "-n", "1001"},
		{"peek", "dead", "pending"}, {"peek", "dead", "--bogus"}} {
		code, out, errOut := f.run(t, args...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, "Run 'redis-keda peek --help' for usage.") {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, code, out, errOut)
		}
	}
	if !reflect.DeepEqual(before, f.keyspace(t)) {
		t.Error("peek changed the queue")
	}
	f.rdb.Del(ctx, "events")
	if code, out, _ := f.run(t, "peek", "pending"); code != 0 || out != "no pending entries in queue events\n" {
		t.Errorf("peek of an empty list: %d %q", code, out)
	}
}

func TestInspect(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.deadLetter(t, `{"id":"gone-bad","wait":-1}`)
	f.publish(t, `{"id":"e1","wait":1}`, `{"id":"e2","published_at":"2026-01-02T03:04:05Z","wait":2}`)
	d, err := f.q.Claim(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := f.keyspace(t)

	code, out, _ := f.run(t, "inspect", "e2")
	// A pending event's age is since its published_at, by the local clock.
	ageRe := regexp.MustCompile(`, age ([0-9hms.]+)\n`)
	if m := ageRe.FindStringSubmatch(out); m == nil {
		t.Errorf("inspect e2: no age in\n%s", out)
	} else if d, err := time.ParseDuration(m[1]); err != nil || d < time.Since(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))-time.Hour {
		t.Errorf("inspect e2: age %s (%v), want the time since 2026-01-02T03:04:05Z", m[1], err)
	}
	out = ageRe.ReplaceAllString(out, ", age A\n")
	e2 := `{"id":"e2","published_at":"2026-01-02T03:04:05Z","wait":2}`
	want := fmt.Sprintf(`event e2 %s
  where         pending, position 1 (1 = the next to be claimed)
  attempts      0 so far; the next claim is delivery 1 of MAX_ATTEMPTS 3
  published at  2026-01-02T03:04:05.000Z, age A
  size          %d bytes
  payload       %s
`, ref(e2), len(e2), e2)
	if code != 0 || out != want {
		t.Errorf("inspect e2: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "inspect", "e1")
	leased := time.UnixMilli(int64(f.rdb.ZScore(ctx, "{events}:claimed", d.Token).Val()))
	until := time.UnixMilli(int64(f.rdb.ZScore(ctx, "{events}:leases", d.Token).Val()))
	want = fmt.Sprintf(`event e1 %s
  where         in flight, claim token %s
  pod           -
  attempts      this is delivery 1 of MAX_ATTEMPTS 3
  claimed at    %s
  lease until   %s (moved forward by every heartbeat)
  size          20 bytes
  payload       {"id":"e1","wait":1}
`, ref(`{"id":"e1","wait":1}`), d.Token, stamp(leased), stamp(until))
	if code != 0 || out != want {
		t.Errorf("inspect e1: exit %d\n%s\nwant\n%s", code, out, want)
	}

	rec := f.rdb.LIndex(ctx, "{events}:dead", 0).Val()
	code, out, _ = f.run(t, "inspect", ref(rec)[:9], "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || len(got) != 1 {
		t.Fatalf("inspect dead --json: exit %d %v\n%s", code, err, out)
	}
	if got[0]["where"] != "dead" || got[0]["id"] != "gone-bad" || got[0]["payload"] != `{"id":"gone-bad","wait":-1}` ||
		!strings.HasPrefix(got[0]["reason"].(string), `field "wait" is -1: negative`) || got[0]["position"] != 1.0 {
		t.Errorf("inspect dead --json = %v", got[0])
	}

	var dl struct {
		DeadAt string `json:"dead_at"`
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal([]byte(rec), &dl)
	at, _ := time.Parse(time.RFC3339Nano, dl.DeadAt)
	code, out, _ = f.run(t, "inspect", "gone-bad")
	want = fmt.Sprintf(`event gone-bad %s
  where         dead, position 1 (1 = the newest dead letter)
  attempts      1 delivery
  dead at       %s
  reason        %s
  size          27 bytes
  payload       {"id":"gone-bad","wait":-1}
`, ref(rec), stamp(at), dl.Reason)
	if code != 0 || out != want {
		t.Errorf("inspect gone-bad: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, errOut := f.run(t, "inspect", "nope")
	if code != ExitNotFound || out != "" || errOut != "redis-keda inspect: not found: no event has id or reference nope in queue events (scheduled, pending, in flight, dead or done); an event acked more than DONE_MAX_AGE (168h0m0s) ago, or before the last DONE_MAX_RECORDS (100000) acks, has no record left\n" {
		t.Errorf("inspect nope: exit %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{{"inspect"}, {"inspect", "a", "b"}, {"inspect", "@12"}, {"inspect", "@nothex"}} {
		if code, _, errOut := f.run(t, args...); code != ExitUsage || !strings.Contains(errOut, "redis-keda inspect --help") {
			t.Errorf("%q: exit %d %q", args, code, errOut)
		}
	}
	if !reflect.DeepEqual(before, f.keyspace(t)) {
		t.Error("inspect changed the queue")
	}
}

func TestRedrive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	binary := "\x00\xff{\"wait\":1}\xc3"
	f.deadLetter(t, `{"id":"x1","wait":"soon"}`)
	f.deadLetter(t, binary)
	f.deadLetter(t, `{"id":"x3","wait":-2}`)
	big := `{"id":"big","wait":1,"pad":"` + strings.Repeat("b", 300) + `"}`
	f.rdb.LPush(ctx, "{events}:dead", `{"id":"big","reason":"r","attempts":1,"dead_at":"2026-01-01T00:00:00Z","size":`+fmt.Sprint(len(big))+`,"payload":`+mustJSON(big)+`}`)
	recs := f.rdb.LRange(ctx, "{events}:dead", 0, -1).Val() // newest first: big, x3, binary, x1
	binRef := ref(recs[2])

	before := f.keyspace(t)
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"redrive"}, ExitUsage, "redis-keda redrive: which dead letters? give ids or @references (peek dead lists them), or --all\nRun 'redis-keda redrive --help' for usage.\n"},
		{[]string{"redrive", "x1", "--all"}, ExitUsage, "redis-keda redrive: give ids or --all, not both (got --all and [\"x1\"])\nRun 'redis-keda redrive --help' for usage.\n"},
		{[]string{"redrive", "@xyz"}, ExitUsage, "redis-keda redrive: \"@xyz\" is not a reference: use @ and 6 to 40 hex digits, as peek shows them; for an event id that starts with @, use --id @xyz\nRun 'redis-keda redrive --help' for usage.\n"},
		{[]string{"redrive", "x1", "nope", "@abcdef"}, ExitNotFound, "redis-keda redrive: not found: no dead letter has id or reference nope, @abcdef; nothing was redriven (peek dead lists them)\n"},
		{[]string{"redrive", "x1", "big"}, ExitRefused, "redis-keda redrive: redrive refused: dead letter big (" + ref(recs[0]) + "): its payload is 330 bytes, above MAX_PAYLOAD_BYTES (200): a job would dead-letter it again; raise MAX_PAYLOAD_BYTES (and the jobs' memory) to redrive it; nothing was redriven\n"},
	} {
		code, out, errOut := f.run(t, tc.args...)
		if code != tc.code || out != "" || errOut != tc.err {
			t.Errorf("%q: exit %d stdout %q stderr\n%s\nwant exit %d\n%s", tc.args, code, out, errOut, tc.code, tc.err)
		}
		if !reflect.DeepEqual(before, f.keyspace(t)) {
			t.Fatalf("%q changed the queue", tc.args)
		}
	}

	code, out, _ := f.run(t, "redrive", "--dry-run", "x1", binRef)
	want := fmt.Sprintf("would redrive x1 %s\nwould redrive %s\ndry run: 2 dead letters would be redriven to events; nothing changed\n", ref(recs[3]), binRef)
	if code != 0 || out != want {
		t.Errorf("dry run: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if !reflect.DeepEqual(before, f.keyspace(t)) {
		t.Fatal("a dry run changed the queue")
	}

	code, out, _ = f.run(t, "redrive", binRef, "x1")
	want = fmt.Sprintf("redriven x1 %s\nredriven %s\n2 dead letters redriven to events; their attempts start again at 1\n", ref(recs[3]), binRef)
	if code != 0 || out != want {
		t.Errorf("redrive: exit %d\n%s\nwant\n%s", code, out, want)
	}
	// Byte for byte, no envelope; the dead letters are gone; counted.
	if got := f.rdb.LRange(ctx, "events", 0, -1).Val(); !reflect.DeepEqual(got, []string{binary, `{"id":"x1","wait":"soon"}`}) {
		t.Errorf("pending = %q", got)
	}
	if got := f.rdb.LRange(ctx, "{events}:dead", 0, -1).Val(); !reflect.DeepEqual(got, recs[:2]) {
		t.Errorf("dead = %q", got)
	}
	if n := f.rdb.HGet(ctx, "{events}:counters", "redriven").Val(); n != "2" {
		t.Errorf("redriven counter %q", n)
	}

	code, out, _ = f.run(t, "redrive", "--all", "--json")
	var res redriveJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitRefused {
		t.Fatalf("redrive --all --json: exit %d %v\n%s", code, err, out)
	}
	wantRes := redriveJSON{
		Redriven: []summaryJSON{{ID: "x3", Ref: ref(recs[1]), Size: 21}},
		Skipped:  []summaryJSON{{ID: "big", Ref: ref(recs[0]), Size: 330, Reason: "its payload is 330 bytes, above MAX_PAYLOAD_BYTES (200): a job would dead-letter it again; raise MAX_PAYLOAD_BYTES (and the jobs' memory) to redrive it"}},
		Gone:     []summaryJSON{},
	}
	if !reflect.DeepEqual(res, wantRes) {
		t.Errorf("redrive --all --json = %+v\nwant %+v", res, wantRes)
	}
	if got := f.rdb.LRange(ctx, "{events}:dead", 0, -1).Val(); !reflect.DeepEqual(got, recs[:1]) {
		t.Errorf("dead after --all = %q", got)
	}
}

func TestPurge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.deadLetter(t, "a")
	f.deadLetter(t, "b")
	f.publish(t, `{"wait":1}`)
	before := f.keyspace(t)
	code, out, errOut := f.run(t, "purge", "dead")
	if code != ExitUsage || out != "" || errOut != "redis-keda purge: refusing to delete the 2 dead letters of queue events for good without --yes; nothing was deleted\n" {
		t.Errorf("purge without --yes: exit %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{{"purge"}, {"purge", "processing", "--yes"}, {"purge", "dead", "pending", "--yes"}, {"purge", "--yes=maybe", "dead"}} {
		if code, _, errOut := f.run(t, args...); code != ExitUsage || !strings.Contains(errOut, "redis-keda purge --help") {
			t.Errorf("%q: exit %d %q", args, code, errOut)
		}
	}
	if !reflect.DeepEqual(before, f.keyspace(t)) {
		t.Fatal("a refused purge changed the queue")
	}
	if code, out, _ := f.run(t, "purge", "--yes", "dead"); code != 0 || out != "purged 2 dead letters of queue events\n" {
		t.Errorf("purge dead --yes: %d %q", code, out)
	}
	if code, out, _ := f.run(t, "purge", "pending", "--yes", "--json"); code != 0 || out != "{\n  \"list\": \"pending\",\n  \"purged\": 1\n}\n" {
		t.Errorf("purge pending --json: %d %q", code, out)
	}
	c := f.rdb.HGetAll(ctx, "{events}:counters").Val()
	if c["purged_dead"] != "2" || c["purged_pending"] != "1" || f.rdb.Exists(ctx, "events", "{events}:dead").Val() != 0 {
		t.Errorf("after purges: counters %v", c)
	}
}

func TestHelpAndErrors(t *testing.T) {
	f := newFixture(t)
	for _, c := range commands() {
		code, out, _ := f.run(t, c.name, "--help")
		if code != 0 || !strings.HasPrefix(out, "Usage: redis-keda "+c.name) || !strings.Contains(out, "Example") || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
		if _, out2, _ := f.run(t, "help", c.name); out2 != out {
			t.Errorf("help %s differs from %s --help", c.name, c.name)
		}
	}
	if code, out, _ := f.run(t, "--help"); code != 0 || out != Usage() {
		t.Errorf("--help: %d", code)
	}
	if code, _, errOut := f.run(t, "frobnicate"); code != ExitUsage || errOut != "redis-keda: unknown command \"frobnicate\"\nRun 'redis-keda --help' for the list.\n" {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	// Configuration errors name the variable; Redis errors name REDIS_ADDR.
	f.env["LEASE_DURATION"] = "soon"
	if code, _, errOut := f.run(t, "stats"); code != ExitFailure || !strings.Contains(errOut, `LEASE_DURATION="soon" is not a duration such as 30s, 1m30s or 1h`) {
		t.Errorf("bad config: %d %q", code, errOut)
	}
	f.env["LEASE_DURATION"] = "30s"
	f.env["REDIS_ADDR"] = "127.0.0.1:1"
	code, _, errOut := f.run(t, "stats")
	if code != ExitFailure || !regexp.MustCompile(`^redis-keda stats: read queue events: .*connection refused \(Redis at REDIS_ADDR=127\.0\.0\.1:1: is it running and reachable\?\)\n$`).MatchString(errOut) {
		t.Errorf("Redis down: %d %q", code, errOut)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sha1sum(s string) [20]byte { return sha1.Sum([]byte(s)) }
