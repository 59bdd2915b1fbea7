package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// A producer's terminal escapes never reach the operator's terminal: peek,
// inspect and redrive quote every non-printable character of ids, payloads
// and reasons in their text output; --json keeps the exact bytes.
func TestTextOutputQuotesNonPrintables(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A payload that is not JSON, with raw escapes: set the title, clear
	// the screen, a C1 control (NEL), a right-to-left override.
	evil := "\x1b]0;pwned\x07\x1b[2J hi\u0085\u202e\ttab\\n"
	f.deadLetter(t, evil)
	// An id with escapes (JSON-escaped in the payload, raw once decoded).
	evilID := `{"id":"id\u001b[31m\u009b","wait":"soon"}`
	f.deadLetter(t, evilID)
	recs := f.rdb.LRange(ctx, "{events}:dead", 0, -1).Val() // newest first
	var dl []struct {
		DeadAt time.Time `json:"dead_at"`
		Reason string    `json:"reason"`
	}
	for _, r := range recs {
		var d struct {
			DeadAt time.Time `json:"dead_at"`
			Reason string    `json:"reason"`
		}
		if err := json.Unmarshal([]byte(r), &d); err != nil {
			t.Fatal(err)
		}
		dl = append(dl, d)
	}

	code, out, _ := f.run(t, "peek", "dead")
	want := fmt.Sprintf("POS  ID                REF            ATTEMPTS  DEAD AT                   REASON                                                        PAYLOAD\n"+
		"1    id\\x1b[31m\\u009b  %s  1         %s  %s  {\"id\":\"id\\u001b[31m\\u009b\",\"wait\":\"soon\"}\n"+
		"2    -                 %s  1         %s  %s  \\x1b]0;pwned\\x07\\x1b[2J hi\\u0085\\u202e\\ttab\\n\n",
		ref(recs[0]), stamp(dl[0].DeadAt), short(dl[0].Reason, 60), ref(recs[1]), stamp(dl[1].DeadAt), short(dl[1].Reason, 60))
	if code != 0 || out != want {
		t.Errorf("peek dead: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "inspect", ref(recs[1]))
	want = fmt.Sprintf(`event - %s
  where         dead, position 2 (1 = the newest dead letter)
  attempts      1 delivery
  dead at       %s
  reason        %s
  size          %d bytes
  payload       \x1b]0;pwned\x07\x1b[2J hi\u0085\u202e\ttab\n
`, ref(recs[1]), stamp(dl[1].DeadAt), dl[1].Reason, len(evil))
	if code != 0 || out != want {
		t.Errorf("inspect: exit %d\n%s\nwant\n%s", code, out, want)
	}

	// --json: the exact bytes (JSON-escaped by the encoder).
	code, out, _ = f.run(t, "inspect", ref(recs[1]), "--json")
	var got []entryJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || len(got) != 1 || got[0].Payload == nil || *got[0].Payload != evil {
		t.Errorf("inspect --json: exit %d %v\n%s", code, err, out)
	}
	code, out, _ = f.run(t, "inspect", "id\x1b[31m\u009b", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || len(got) != 1 || got[0].ID != "id\x1b[31m\u009b" {
		t.Errorf("inspect id --json: exit %d %v\n%s", code, err, out)
	}

	code, out, _ = f.run(t, "redrive", "--all", "--dry-run")
	want = fmt.Sprintf("would redrive %s\nwould redrive id\\x1b[31m\\u009b %s\ndry run: 2 dead letters would be redriven to events; nothing changed\n", ref(recs[1]), ref(recs[0]))
	if code != 0 || out != want {
		t.Errorf("redrive --all --dry-run: exit %d\n%s\nwant\n%s", code, out, want)
	}
}
