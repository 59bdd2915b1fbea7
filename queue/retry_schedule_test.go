package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis/go-redis/v9"
)

// The schedule's delays, exactly, without jitter; with jitter every delay
// lies in (d·(1−j), d].
func TestBackoff(t *testing.T) {
	c := Config{RetryBase: 15 * time.Second, RetryFactor: 4, RetryMax: time.Hour}
	for attempt, want := range map[int]time.Duration{
		0: 15 * time.Second, 1: 15 * time.Second, 2: time.Minute, 3: 4 * time.Minute, 4: 16 * time.Minute,
		5: time.Hour, 6: time.Hour, 1000: time.Hour,
	} {
		if got := c.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", attempt, got, want)
		}
	}
	fixed := Config{RetryBase: 5 * time.Second, RetryMax: time.Minute} // RETRY_FACTOR 0 counts as 1
	if got := fixed.Backoff(7); got != 5*time.Second {
		t.Errorf("factor 0: Backoff(7) = %s, want 5s", got)
	}
	c.RetryJitter = 0.25
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := c.Backoff(2)
		if d <= 45*time.Second || d > time.Minute {
			t.Fatalf("jittered Backoff(2) = %s, want in (45s, 1m]", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 10*time.Second { // control: the jitter does spread them
		t.Fatalf("2000 jittered delays span only %s..%s", lo, hi)
	}
}

// The documented defaults and the refusals, with the exact messages.
func TestRetryConfig(t *testing.T) {
	var c Config
	if err := config.ParseFrom(&c, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if c.RetryBase != 15*time.Second || c.RetryFactor != 4 || c.RetryMax != time.Hour || c.RetryJitter != 0.25 || c.MaxAttempts != 5 {
		t.Fatalf("defaults %+v", c)
	}
	for _, tc := range []struct{ env, want string }{
		{"RETRY_BASE=-1s", "invalid configuration: invalid queue configuration: RETRY_BASE=-1s must be 0 (retry at once) or more, such as 15s"},
		{"RETRY_FACTOR=0.5", "invalid configuration: invalid queue configuration: RETRY_FACTOR=0.5 must be from 1 (a fixed delay) to 100, such as 4"},
		{"RETRY_FACTOR=x", `invalid configuration: RETRY_FACTOR="x" is not a number`},
		{"RETRY_MAX=10s", "invalid configuration: invalid queue configuration: RETRY_MAX=10s is below RETRY_BASE=15s; use a bound such as 1h"},
		{"RETRY_JITTER=1.5", "invalid configuration: invalid queue configuration: RETRY_JITTER=1.5 must be from 0 (no jitter) to 1, such as 0.25"},
		{"RETRY_BASE=0", ""},
	} {
		k, v, _ := strings.Cut(tc.env, "=")
		var c Config
		err := config.ParseFrom(&c, map[string]string{k: v})
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && !strings.HasPrefix(got, tc.want)) {
			t.Errorf("%s: err = %v\nwant %s", tc.env, err, tc.want)
		}
	}
}

// A nack puts the event in the scheduled set at server time + the
// schedule's delay, as an envelope counting the attempt (the claim token is
// the member's nonce); the mover brings it back and the next delivery is
// attempt 2; the last attempt dead-letters with its own reason.
func TestNackWaitsForTheSchedule(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) {
		c.RetryBase, c.RetryFactor, c.RetryMax = time.Hour, 2, 24*time.Hour
		c.MaxAttempts = 2
	})
	ctx := context.Background()
	pub, err := q.Publish(ctx, Event{ID: "n", Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	before := serverMs(t, rdb)
	if dead, err := q.Nack(ctx, d, "down"); err != nil || dead {
		t.Fatalf("nack: dead=%v, %v", dead, err)
	}
	after := serverMs(t, rdb)
	z := scheduledMembers(t, q)
	want := d.Token + " " + string(envelope(envelopeHeader{Attempts: 1}, pub[0].Marshal()))
	if len(z) != 1 || z[0].Member != want {
		t.Fatalf("scheduled %v, want member %q", z, want)
	}
	if s := int64(z[0].Score); s < before+3_600_000 || s > after+3_600_000 {
		t.Fatalf("due %d, want server time + 1h in [%d, %d]", s, before+3_600_000, after+3_600_000)
	}
	if s := snapshot(t, q); s.counts() != [3]int{0, 0, 0} || s.counters["retried"] != "1" {
		t.Fatalf("state %+v: want nothing pending (no Job starts) while it waits", s)
	}
	if res, _ := q.MoveDue(ctx); res.Moved != 0 {
		t.Fatalf("moved %d before the due time", res.Moved)
	}
	rdb.ZAdd(ctx, q.scheduled, redis.Z{Score: 0, Member: z[0].Member}) // make it due (as redrive does)
	if res, err := q.MoveDue(ctx); err != nil || res.Moved != 1 {
		t.Fatalf("MoveDue = %+v, %v", res, err)
	}
	d2 := claim(t, q)
	if d2.Attempt != 2 || d2.Event.ID != "n" {
		t.Fatalf("redelivery %s attempt %d, want n attempt 2", d2.Event.ID, d2.Attempt)
	}
	if dead, err := q.NackAfter(ctx, d2, "still down", time.Minute); err != nil || !dead {
		t.Fatalf("last nack: dead=%v, %v", dead, err)
	}
	dls, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dls) != 1 || dls[0].Reason != "failed on attempt 2 of 2 (MAX_ATTEMPTS): still down" || dls[0].Attempts != 2 {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
	if z := scheduledMembers(t, q); len(z) != 0 {
		t.Fatalf("scheduled %v after the last attempt", z)
	}
}

// Work's verdicts: RetryAfter schedules at its own delay and counts the
// attempt; Snooze schedules at its delay and does not count (the first
// delivery's raw entry goes back as it came); on the last attempt
// RetryAfter dead-letters like any failure.
func TestWorkRetryAfterAndSnooze(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		attempts int // earlier deliveries (MaxAttempts 3)
		want     Outcome
		delay    time.Duration
		member   func(d *Delivery, p []byte) string
		counter  string
		reason   string
	}{
		{name: "retry after", err: fmt.Errorf("rate limited: %w", RetryAfter(2*time.Hour, errors.New("429"))), want: Retried, delay: 2 * time.Hour,
			member: func(d *Delivery, p []byte) string {
				return d.Token + " " + string(envelope(envelopeHeader{Attempts: 1}, p))
			}, counter: "retried"},
		{name: "snooze", err: Snooze(10 * time.Minute), want: Snoozed, delay: 10 * time.Minute,
			member: func(d *Delivery, p []byte) string { return d.Token + " " + string(p) }, counter: "snoozed"},
		{name: "snooze after a retry keeps the count", err: Snooze(time.Minute), attempts: 1, want: Snoozed, delay: time.Minute,
			member: func(d *Delivery, p []byte) string {
				return d.Token + " " + string(envelope(envelopeHeader{Attempts: 1}, p))
			}, counter: "snoozed"},
		{name: "retry after on the last attempt", err: RetryAfter(time.Hour, errors.New("429")), attempts: 2, want: Dead,
			counter: "dead", reason: "failed on attempt 3 of 3 (MAX_ATTEMPTS): retry after 1h0m0s: 429"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, rdb := newTestQueue(t)
			ctx := context.Background()
			pub, err := q.Publish(ctx, Event{ID: "v", Wait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for range tc.attempts {
				if _, err := q.Nack(ctx, claim(t, q), "earlier"); err != nil { // RetryBase 0: straight back
					t.Fatal(err)
				}
			}
			d := claim(t, q)
			before := serverMs(t, rdb)
			o, err := q.Work(ctx, d, func(context.Context, Event) error { return tc.err }, WorkOptions{})
			after := serverMs(t, rdb)
			if err != nil || o != tc.want {
				t.Fatalf("Work = %s, %v; want %s", o, err, tc.want)
			}
			s := snapshot(t, q)
			if s.counters[tc.counter] != "1" {
				t.Fatalf("counters %v, want %s 1", s.counters, tc.counter)
			}
			z := scheduledMembers(t, q)
			if tc.want == Dead {
				dls, _ := q.DeadLetters(ctx, 1)
				if len(z) != 0 || len(dls) != 1 || dls[0].Reason != tc.reason || dls[0].Attempts != 3 {
					t.Fatalf("scheduled %v, dead %+v; want dead with %q", z, dls, tc.reason)
				}
				return
			}
			if len(z) != 1 || z[0].Member != tc.member(d, pub[0].Marshal()) {
				t.Fatalf("scheduled %v, want %q", z, tc.member(d, pub[0].Marshal()))
			}
			ms := tc.delay.Milliseconds()
			if sc := int64(z[0].Score); sc < before+ms || sc > after+ms {
				t.Fatalf("due %d, want in [%d, %d]", sc, before+ms, after+ms)
			}
			rdb.ZAdd(ctx, q.scheduled, redis.Z{Score: 0, Member: z[0].Member})
			if _, err := q.MoveDue(ctx); err != nil {
				t.Fatal(err)
			}
			d2 := claim(t, q)
			wantAttempt := tc.attempts + 2
			if tc.want == Snoozed {
				wantAttempt = tc.attempts + 1
			}
			if d2.Attempt != wantAttempt || d2.Event.ID != "v" {
				t.Fatalf("next delivery %s attempt %d, want v attempt %d", d2.Event.ID, d2.Attempt, wantAttempt)
			}
		})
	}
}
