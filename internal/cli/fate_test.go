package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/queue"
)

// inspect shows the pod that holds an event in flight, and an acked event's
// done record (acked at, attempt, duration, pod), as text and --json.
func TestInspectPodAndDone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	q, err := queue.New(f.rdb, queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 3, MaxWait: time.Hour, MaxPayloadBytes: 200,
		DoneMaxRecords: 10, DoneMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, `{"id":"done-1"}`, `{"id":"flight-1"}`)
	d, err := q.ClaimWith(ctx, queue.ClaimOptions{Timeout: 10 * time.Second, Pod: "jobs-abc12", AnyPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	leased := int64(f.rdb.ZScore(ctx, "{events}:claimed", d.Token).Val())
	if err := q.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	acked := int64(f.rdb.ZScore(ctx, "{events}:done:order", "done-1").Val())
	fl, err := q.ClaimWith(ctx, queue.ClaimOptions{Timeout: 10 * time.Second, Pod: "jobs-xyz89", AnyPayload: true})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := f.run(t, "inspect", "done-1")
	want := fmt.Sprintf(`event done-1
  where         done (acked)
  acked at      %s
  attempts      acked on delivery 1
  duration      %s (leased at %s, acked at, Redis clock)
  pod           jobs-abc12
`, stamp(time.UnixMilli(acked)), age(time.Duration(acked-leased)*time.Millisecond), stamp(time.UnixMilli(leased)))
	if code != ExitOK || out != want {
		t.Errorf("inspect done-1: exit %d %s\n%s\nwant\n%s", code, errOut, out, want)
	}
	code, out, _ = f.run(t, "inspect", "done-1", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != ExitOK || len(got) != 1 {
		t.Fatalf("inspect done-1 --json: exit %d %v\n%s", code, err, out)
	}
	wantJSON := map[string]any{"where": "done", "id": "done-1", "attempts": 1.0, "size": 0.0, "pod": "jobs-abc12", "acks": 1.0,
		"claimed_at": time.UnixMilli(leased).UTC().Format(time.RFC3339Nano), "acked_at": time.UnixMilli(acked).UTC().Format(time.RFC3339Nano),
		"duration_seconds": float64(acked-leased) / 1000}
	if fmt.Sprint(got[0]) != fmt.Sprint(wantJSON) {
		t.Errorf("inspect done-1 --json\n got %v\nwant %v", got[0], wantJSON)
	}

	code, out, _ = f.run(t, "inspect", "flight-1", "--json")
	got = nil
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != ExitOK || len(got) != 1 {
		t.Fatalf("inspect flight-1 --json: exit %d %v\n%s", code, err, out)
	}
	if got[0]["where"] != "processing" || got[0]["pod"] != "jobs-xyz89" || got[0]["token"] != fl.Token {
		t.Errorf("inspect flight-1 --json = %v, want processing by jobs-xyz89", got[0])
	}
}

// inspect of an event published for later: where, due at (Redis clock).
func TestInspectScheduled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	code, _, errOut := f.run(t, "publish", "--at", "2030-01-02T03:04:05.678Z", `{"id":"later-1"}`)
	if code != ExitOK {
		t.Fatalf("publish: exit %d %s", code, errOut)
	}
	code, out, errOut := f.run(t, "inspect", "later-1")
	entry := `{"id":"later-1"}`
	want := fmt.Sprintf(`event later-1 %s
  where         scheduled, due at 2030-01-02T03:04:05.678Z (Redis clock; then the mover puts it on the pending list)
  attempts      0 so far; the next claim is delivery 1 of MAX_ATTEMPTS 3
  size          16 bytes
  payload       {"id":"later-1"}
`, ref(entry))
	if code != ExitOK || out != want {
		t.Errorf("inspect later-1: exit %d %s\n%s\nwant\n%s", code, errOut, out, want)
	}
	if n := f.rdb.ZCard(ctx, "{events}:scheduled").Val(); n != 1 {
		t.Errorf("scheduled %d, want 1", n)
	}
}
