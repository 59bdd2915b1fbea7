package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An operator's Cancel reaches the job through its heartbeat: the handler's
// context ends with cause ErrCancelled, the event is dead-lettered with
// reason CancelReason, byte for byte, the request key is gone, and a
// redrive brings the payload back to pending unchanged.
func TestCancelInFlight(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	payload := `{"id":"c1","wait":1,"note":"<b>x</b>"}`
	if err := q.PublishRaw(ctx, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	started := make(chan struct{})
	var cause error
	type result struct {
		o   Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := q.Work(ctx, d, func(hctx context.Context, _ Event) error {
			close(started)
			<-hctx.Done()
			cause = context.Cause(hctx)
			return hctx.Err()
		}, WorkOptions{})
		done <- result{o, err}
	}()
	<-started
	got, err := q.Cancel(ctx, mustSel(t, "c1"))
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if len(got) != 1 || got[0].ID != "c1" || got[0].Token != d.Token {
		t.Fatalf("Cancel asked %+v, want the delivery of c1 (token %s)", got, d.Token)
	}
	r := <-done
	if r.o != Cancelled || r.err != nil {
		t.Fatalf("Work = %s, %v; want cancelled, nil", r.o, r.err)
	}
	if !errors.Is(cause, ErrCancelled) {
		t.Errorf("handler's context cause = %v, want ErrCancelled", cause)
	}
	dls, err := q.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Reason != CancelReason || string(dls[0].Payload) != payload || dls[0].ID != "c1" || dls[0].Attempts != 1 {
		t.Fatalf("dead letters = %+v, want one of c1 with reason %q and the payload byte for byte", dls, CancelReason)
	}
	if err := rdb.ZScore(ctx, cancelKey("events"), d.Token).Err(); err == nil {
		t.Errorf("cancel request still in %s after the dead-letter", cancelKey("events"))
	}
	s := snapshot(t, q) // no stray key left
	if len(s.pending) != 0 || len(s.dead) != 1 || s.counters["dead"] != "1" {
		t.Errorf("state = pending %q, dead %d, counters %v", s.pending, len(s.dead), s.counters)
	}
	res, err := q.Redrive(ctx, []Selector{mustSel(t, "c1")}, false)
	if err != nil || len(res.Moved) != 1 {
		t.Fatalf("redrive: %+v, %v", res, err)
	}
	if p := rdb.LRange(ctx, "events", 0, -1).Val(); len(p) != 1 || p[0] != payload {
		t.Errorf("pending after redrive = %q, want the payload byte for byte", p)
	}
}

func TestCancelRefused(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	if _, err := q.Publish(ctx, Event{ID: "p", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, sel string }{
		{"pending is not in flight", "p"},
		{"unknown id", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := q.Cancel(ctx, mustSel(t, tc.sel))
			want := "not found: no event in flight has id or reference " + tc.sel + "; nothing was cancelled"
			if !errors.Is(err, ErrNotFound) || err.Error() != want {
				t.Errorf("Cancel(%s) = %v, want %q", tc.sel, err, want)
			}
		})
	}
	// A heartbeat with no request extends the lease and says nothing.
	d := claim(t, q)
	if err := q.Heartbeat(ctx, d); err != nil {
		t.Errorf("Heartbeat without a cancel request = %v, want nil", err)
	}
	if _, err := q.Cancel(ctx, mustSel(t, "p")); err != nil {
		t.Fatal(err)
	}
	if err := q.Heartbeat(ctx, d); !errors.Is(err, ErrCancelled) {
		t.Errorf("Heartbeat after Cancel = %v, want ErrCancelled", err)
	}
}

func mustSel(t *testing.T, s string) Selector {
	t.Helper()
	sel, err := ParseSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
