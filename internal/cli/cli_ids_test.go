package cli

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// An event id that starts with @ is named with --id: inspect and redrive
// find it; as an operand it is refused as a bad reference, with the hint.
func TestIDsThatStartWithAt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.deadLetter(t, `{"id":"@x","wait":"soon"}`)
	rec := f.rdb.LIndex(ctx, "{events}:dead", 0).Val()
	before := f.keyspace(t)

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"inspect", "@x"}, "redis-keda inspect: \"@x\" is not a reference: use @ and 6 to 40 hex digits, as peek shows them; for an event id that starts with @, use --id @x\nRun 'redis-keda inspect --help' for usage.\n"},
		{[]string{"redrive", "@x"}, "redis-keda redrive: \"@x\" is not a reference: use @ and 6 to 40 hex digits, as peek shows them; for an event id that starts with @, use --id @x\nRun 'redis-keda redrive --help' for usage.\n"},
		{[]string{"inspect", "--id", ""}, "redis-keda inspect: --id: an empty id\nRun 'redis-keda inspect --help' for usage.\n"},
		{[]string{"inspect", "--id", "@x", "other"}, "redis-keda inspect: inspect takes one id or @reference (or --id ID), got [\"other\" \"@x\"]\nRun 'redis-keda inspect --help' for usage.\n"},
		{[]string{"redrive", "--all", "--id", "@x"}, "redis-keda redrive: give ids or --all, not both (got --all and [\"@x\"])\nRun 'redis-keda redrive --help' for usage.\n"},
	} {
		code, out, errOut := f.run(t, tc.args...)
		if code != ExitUsage || out != "" || errOut != tc.err {
			t.Errorf("%q: exit %d %q stderr\n%s\nwant\n%s", tc.args, code, out, errOut, tc.err)
		}
	}
	if !reflect.DeepEqual(before, f.keyspace(t)) {
		t.Fatal("a refused command changed the queue")
	}

	code, out, _ := f.run(t, "inspect", "--id", "@x")
	if code != 0 || !strings.HasPrefix(out, "event @x "+ref(rec)+"\n") {
		t.Errorf("inspect --id @x: exit %d\n%s", code, out)
	}
	code, out, _ = f.run(t, "redrive", "--id", "@x")
	if want := fmt.Sprintf("redriven @x %s\n1 dead letters redriven to events; their attempts start again at 1\n", ref(rec)); code != 0 || out != want {
		t.Errorf("redrive --id @x: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if got := f.rdb.LRange(ctx, "events", 0, -1).Val(); !reflect.DeepEqual(got, []string{`{"id":"@x","wait":"soon"}`}) {
		t.Errorf("pending = %q", got)
	}
}
