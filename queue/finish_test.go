package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// viaCutProxy returns a queue whose client talks to srv through a cutProxy
// triggered by script's SHA (loaded first, so EVALSHA runs it at once), and a
// queue on a direct client to observe.
func viaCutProxy(t *testing.T, script *redis.Script) (q, direct *Queue, proxy *cutProxy) {
	t.Helper()
	srv := redistest.Start(t)
	if err := script.Load(context.Background(), srv.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	proxy = startCutProxy(t, srv.Addr, script.Hash())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	lease := func(c *Config) { c.LeaseDuration = 10 * time.Second }
	q, _ = newQueueOn(t, rdb, lease)
	direct, _ = newQueueOn(t, srv.Client(), lease)
	return q, direct, proxy
}

// A finishing command that ran but whose reply was lost is retried, and the
// retry reports what happened — acked, dead — not "lease lost".
func TestLostFinishReplyGivesTheTrueOutcome(t *testing.T) {
	cases := []struct {
		name    string
		script  *redis.Script
		fail    bool // the handler fails on the last attempt: dead-lettered
		want    Outcome
		counter string
		counts  [3]int
	}{
		{name: "ack", script: ackScript, want: Acked, counter: "acked", counts: [3]int{0, 0, 0}},
		{name: "nack to the dead list", script: requeueScript, fail: true, want: Dead, counter: "dead", counts: [3]int{0, 0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, direct, proxy := viaCutProxy(t, tc.script)
			ctx := context.Background()
			if _, err := direct.Publish(ctx, Event{ID: "once", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			if tc.fail {
				for range 2 { // attempts 1 and 2 of 3
					if _, err := direct.Nack(ctx, claim(t, direct), "earlier failure"); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := claim(t, q)
			var replyLost []Outcome
			var finishErrs int
			got, err := q.Work(ctx, d, func(context.Context, Event) error {
				proxy.armed.Store(true)
				if tc.fail {
					return errors.New("boom")
				}
				return nil
			}, WorkOptions{
				OnFinishError: func(error) { finishErrs++ },
				OnReplyLost:   func(o Outcome) { replyLost = append(replyLost, o) },
			})
			if got != tc.want || err != nil {
				t.Fatalf("Work = %s, %v; want %s, nil", got, err, tc.want)
			}
			if proxy.cuts.Load() != 1 || finishErrs != 1 {
				t.Fatalf("%d replies cut, %d failed finishes: the test did not lose exactly one reply", proxy.cuts.Load(), finishErrs)
			}
			if len(replyLost) != 1 || replyLost[0] != tc.want {
				t.Errorf("OnReplyLost saw %v, want [%s]", replyLost, tc.want)
			}
			s := snapshot(t, direct)
			s.clean(t)
			if s.counts() != tc.counts || s.counters[tc.counter] != "1" {
				t.Errorf("state %v counters %v; want %v and %s once", s.counts(), s.counters, tc.counts, tc.counter)
			}
		})
	}
}

// A claimed entry that must be dead-lettered, whose dead-letter reply is
// lost: the claim reports that invalid event (a MAX_EVENTS=1 job logs it
// and stops), it does not go on to claim the next one.
func TestLostDeadLetterReplyIsReportedAndClaimStops(t *testing.T) {
	q, direct, proxy := viaCutProxy(t, deadClaimScript)
	ctx := context.Background()
	if err := direct.PublishRaw(ctx, []byte(`{"wait":"soon"}`), []byte(`{"id":"next","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	proxy.armed.Store(true)
	d, err := q.ClaimWith(ctx, ClaimOptions{Timeout: 2 * time.Second, RetryTimeout: 10 * time.Second})
	var inv *InvalidEventError
	if !errors.As(err, &inv) || d != nil {
		t.Fatalf("ClaimWith = %+v, %v; want the invalid event", d, err)
	}
	if proxy.cuts.Load() != 1 {
		t.Fatalf("%d replies cut; the test did not lose the dead-letter reply", proxy.cuts.Load())
	}
	if inv.Reason != `field "wait" is "soon": not a number; expected a JSON object such as {"wait": 17} (wait = seconds to sleep, a number >= 0)` || inv.Payload != `{"wait":"soon"}` {
		t.Errorf("invalid event = %+v", inv)
	}
	s := snapshot(t, direct)
	s.clean(t)
	if s.counts() != [3]int{1, 0, 1} || s.pending[0] != `{"id":"next","wait":1}` || s.counters["dead"] != "1" {
		t.Fatalf("state %v pending %q counters %v; want the next event still pending and one dead letter", s.counts(), s.pending, s.counters)
	}
}
