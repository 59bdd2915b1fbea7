package queue

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A dead letter of an event whose id the queue assigned (its payload has
// none) keeps that id through a redrive: inspect finds the redriven event
// by it, and the job that claims it gets it, as delivery 1, with the
// producer's bytes unchanged. Before, the payload was pushed bare and the
// next lease assigned a new id: inspect <old id> said "not found".
func TestRedriveKeepsAnAssignedID(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxAttempts = 1 })
	ctx := context.Background()
	const payload = `{"wait":1,"note":"no id"}`
	if err := q.PublishRaw(ctx, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	if !d.IDAssigned || d.Event.ID == "" {
		t.Fatalf("claimed %+v, want an assigned id", d)
	}
	id := d.Event.ID
	if dead, err := q.Nack(ctx, d, "handler failed"); err != nil || !dead {
		t.Fatalf("nack on the last attempt: dead=%v %v", dead, err)
	}
	found, err := q.Find(ctx, sel(t, id))
	if err != nil || len(found) != 1 || found[0].Location != LocDead {
		t.Fatalf("inspect %s before the redrive: %+v, %v", id, found, err)
	}

	res, err := q.Redrive(ctx, sels(t, id), false)
	if err != nil || len(res.Moved) != 1 {
		t.Fatalf("redrive %s: %+v, %v", id, res, err)
	}
	entry := rdb.LIndex(ctx, q.pending, 0).Val()
	if want := `rkq1 {"id":"` + id + `","assigned":true,"attempts":0}` + "\n" + payload; entry != want {
		t.Errorf("pending entry %q, want %q", entry, want)
	}
	found, err = q.Find(ctx, sel(t, id))
	if err != nil || len(found) != 1 || found[0].Location != LocPending || found[0].ID != id || !found[0].IDAssigned ||
		found[0].Attempts != 0 || string(found[0].Payload) != payload {
		t.Errorf("inspect %s after the redrive: %+v, %v", id, found, err)
	}
	again, err := q.Claim(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if again.Event.ID != id || !again.IDAssigned || again.Attempt != 1 || string(again.Payload()) != payload {
		t.Errorf("redriven event claimed as id %q assigned=%v attempt %d payload %q; want %q, true, 1, %q",
			again.Event.ID, again.IDAssigned, again.Attempt, again.Payload(), id, payload)
	}
}

// sel and sels parse operator arguments, failing the test on a bad one.
func sel(t testing.TB, arg string) Selector {
	t.Helper()
	s, err := ParseSelector(arg)
	if err != nil {
		t.Fatalf("selector %q: %v", arg, err)
	}
	return s
}

func sels(t testing.TB, args ...string) []Selector {
	t.Helper()
	out := make([]Selector, len(args))
	for i, a := range args {
		out[i] = sel(t, a)
	}
	return out
}

// An event id that starts with "@" is found and redriven when named as an
// id (IDSelector, the CLI's --id); as an argument it is refused as a bad
// reference, never taken for one. Before, such ids could not be named at all.
func TestIDsThatStartWithAt(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	deadLetters(t, q, `{"id":"@x","wait":"soon"}`, `{"id":"@abcdef","wait":"soon"}`)
	if _, err := ParseSelector("@x"); err == nil || err.Error() != `"@x" is not a reference: use @ and 6 to 40 hex digits, as peek shows them` {
		t.Errorf("ParseSelector(@x): %v", err)
	}
	// "@abcdef" parses as a reference; as an id it is the event.
	if s, err := ParseSelector("@abcdef"); err != nil || s.String() != "@abcdef" || s.ref != "abcdef" {
		t.Errorf("ParseSelector(@abcdef) = %+v, %v; want the reference abcdef", s, err)
	}
	for _, id := range []string{"@x", "@abcdef"} {
		s, err := IDSelector(id)
		if err != nil {
			t.Fatal(err)
		}
		found, err := q.Find(ctx, s)
		if err != nil || len(found) != 1 || found[0].ID != id || found[0].Location != LocDead {
			t.Fatalf("find id %s: %+v, %v", id, found, err)
		}
	}
	s, _ := IDSelector("@x")
	res, err := q.Redrive(ctx, []Selector{s}, false)
	if err != nil || len(res.Moved) != 1 || res.Moved[0].ID != "@x" {
		t.Fatalf("redrive id @x: %+v, %v", res, err)
	}
	if got := rdb.LRange(ctx, q.pending, 0, -1).Val(); len(got) != 1 || got[0] != `{"id":"@x","wait":"soon"}` {
		t.Errorf("pending %q, want the @x event", got)
	}
	if _, err := IDSelector(""); err == nil {
		t.Error("IDSelector(\"\"): no error")
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":"e1","wait":1}`, `{"id":"e1","wait":1}`},
		{"title\x1b]0;pwned\x07clear\x1b[2J", `title\x1b]0;pwned\x07clear\x1b[2J`},
		{"a\nb\rc\td\x00e\x7f", `a\nb\rc\td\x00e\x7f`},
		{"c1 \u0085 \u009b bidi \u202e zero-width \u200b", `c1 \u0085 \u009b bidi \u202e zero-width \u200b`},
		{"bad \xff\xfe utf8 \xc3", `bad \xff\xfe utf8 \xc3`},
		{"é ü 日本 😀 back\\slash", "é ü 日本 😀 back\\slash"},
		{"tag \U000E0001", `tag \U000e0001`},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Dead letters above redriveBatchBytes go by transaction (redriveAlone);
// two operators redriving all of them at once move each exactly once, the
// payload byte for byte, and leave no tombstone.
func TestConcurrentLargeRedrivesMoveEachOnce(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxPayloadBytes = 4 << 20 })
	ctx := context.Background()
	want := map[string]int{}
	for i := range 4 {
		p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("z", 1<<20))
		want[p]++
		if err := rdb.LPush(ctx, q.dead, deadRecord("", "r", 1, []byte(p))).Err(); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		res RedriveResult
		err error
	}
	done := make(chan result, 2)
	for range 2 {
		go func() {
			res, err := q.RedriveAll(ctx, false)
			done <- result{res, err}
		}()
	}
	moved := 0
	for range 2 {
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		moved += len(r.res.Moved)
	}
	got := map[string]int{}
	for _, p := range rdb.LRange(ctx, q.pending, 0, -1).Val() {
		got[p]++
	}
	if !reflect.DeepEqual(got, want) || moved != 4 || rdb.LLen(ctx, q.dead).Val() != 0 || rdb.HGet(ctx, q.counters, "redriven").Val() != "4" {
		t.Errorf("pending holds %d distinct payloads (want 4 once each), moved %d, dead %d, redriven %s",
			len(got), moved, rdb.LLen(ctx, q.dead).Val(), rdb.HGet(ctx, q.counters, "redriven").Val())
	}
}
