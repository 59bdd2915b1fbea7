package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// splitEntryLua runs luaPrelude's split_entry on entry: the verdict and
// fields in the form TestEnvelopeGoAndLuaAgree compares.
var splitEntryLua = redis.NewScript(luaPrelude + `
local h, p = split_entry(ARGV[1])
if not h then return {0, '', '', 0, p} end
local a = 0
if h.assigned then a = 1 end
return {1, tostring(h.attempts + 0), h.id or '', a, p} -- + 0: -0 reads 0
`)

// Go's splitEntry and the scripts' split_entry (the reaper's) accept exactly
// the same envelopes and read the same fields from them.
func TestEnvelopeGoAndLuaAgree(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ok := func(h, payload string) string { return "rkq1 " + h + "\n" + payload }
	cases := []struct {
		entry string
		valid bool
	}{
		{`{"wait":1}`, false}, // a raw payload: no envelope
		{ok(`{"attempts":2}`, `{"wait":1}`), true},
		{ok(`{"id":"p1-2","assigned":true,"attempts":3}`, `x`), true},
		{ok(`{"assigned":false,"attempts":0,"id":"\u00e9\n\"x\\"}`, ``), true},
		{ok(`{"attempts":1e2}`, `x`), true},
		{ok(`{"attempts":3.0}`, `x`), true},
		{ok(`{"attempts":-0}`, `x`), true},
		{ok(` {"attempts":1} `, `x`), true},
		{ok(`{"attempts":"x","attempts":4}`, `x`), true}, // duplicates: the last counts
		{ok(`[7]`, `{"wait":1}`), false},
		{ok(`{"attempts":"3"}`, `{"wait":1}`), false},
		{"rkq1 {\"attempts\":1}", false},                                                            // no newline
		{ok(strings.Repeat(" ", maxHeaderLen-1-len(`{"attempts":1}`))+`{"attempts":1}`, `x`), true}, // the longest header
		{ok(strings.Repeat(" ", maxHeaderLen-len(`{"attempts":1}`))+`{"attempts":1}`, `x`), false},  // one byte more
		{ok(`{"attempts":1,"extra":true}`, `x`), false},
		{ok(`{"attempts":-1}`, `x`), false},
		{ok(`{"attempts":1.5}`, `x`), false},
		{ok(`{"attempts":2147483648}`, `x`), false},
		{ok(`{"attempts":1e400}`, `x`), false},
		{ok(`{"attempts":0x3}`, `x`), false},
		{ok(`{"attempts":+3}`, `x`), false},
		{ok(`{"attempts":03}`, `x`), false},
		{ok(`{"attempts":3.}`, `x`), false},
		{ok(`{"attempts":inf}`, `x`), false},
		{ok(`{"attempts":nan}`, `x`), false},
		{ok(`{"attempts":true}`, `x`), false},
		{ok(`{"attempts":null}`, `x`), false},
		{ok(`{}`, `x`), false},
		{ok(`[]`, `x`), false},
		{ok(`null`, `x`), false},
		{ok(`{"id":7,"attempts":1}`, `x`), false},
		{ok(`{"id":null,"attempts":1}`, `x`), false},
		{ok(`{"assigned":"yes","attempts":1}`, `x`), false},
		{ok(`{"id":"a`+"\t"+`b","attempts":1}`, `x`), false}, // a raw control byte
		{ok(`{"id":"\ud800","attempts":1}`, `x`), false},
		{ok(`{"id":"\q","attempts":1}`, `x`), false},
		{ok(`{"attempts":1,}`, `x`), false},
		{ok(`{"attempts":1} x`, `x`), false},
		{ok(`{"Attempts":1}`, `x`), false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%.60q", tc.entry), func(t *testing.T) {
			h, payload, _, err := splitEntry(tc.entry)
			isEnvelope := strings.HasPrefix(tc.entry, envelopeMagic)
			goValid := err == nil && isEnvelope
			if goValid != tc.valid {
				t.Fatalf("Go: valid = %t (%v), want %t", goValid, err, tc.valid)
			}
			assigned := 0
			if h.Assigned {
				assigned = 1
			}
			goView := []any{int64(0), "", "", int64(0), payload}
			if goValid {
				goView = []any{int64(1), fmt.Sprint(h.Attempts), h.ID, int64(assigned), payload}
			}
			luaView, err := splitEntryLua.Run(context.Background(), rdb, nil, tc.entry).Slice()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", goView) != fmt.Sprintf("%q", luaView) {
				t.Errorf("Go and Lua disagree:\n Go %q\nLua %q", goView, luaView)
			}
		})
	}
}

// PublishRaw refuses a payload that starts with the envelope marker: a job
// would read the rest as the queue's bookkeeping.
func TestPublishRawRefusesTheEnvelopeMarker(t *testing.T) {
	q, rdb := newTestQueue(t)
	err := q.PublishRaw(context.Background(), []byte(`{"wait":1}`), []byte("rkq1 [7]\n{\"wait\":1}"))
	want := `invalid event: payload 2 of 2 starts with "rkq1 ", the marker of the queue's own envelopes (a job would read the rest as the queue's bookkeeping); start the payload with anything else, e.g. send it as JSON`
	if !errors.Is(err, ErrInvalidEvent) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if n := rdb.LLen(context.Background(), "events").Val(); n != 0 {
		t.Errorf("%d entries published, want none", n)
	}
}
