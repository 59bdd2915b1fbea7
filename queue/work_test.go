package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkOutcomes(t *testing.T) {
	cases := []struct {
		name        string
		handler     Handler
		cancelAfter time.Duration // cancel Work's ctx (SIGTERM) after this; 0 = never
		steal       bool          // the reaper takes the event back mid-handler
		attempt     int           // deliveries before this one (MaxAttempts is 3)
		want        Outcome
		wantErr     error
		wantCounts  [3]int // pending, processing, dead afterwards
	}{
		{name: "success acks", handler: func(context.Context, Event) error { return nil },
			want: Acked, wantCounts: [3]int{0, 0, 0}},
		{name: "long success heartbeats past the lease", handler: sleepFor(2500 * time.Millisecond),
			want: Acked, wantCounts: [3]int{0, 0, 0}},
		{name: "failure retries", handler: func(context.Context, Event) error { return errors.New("boom") },
			want: Retried, wantCounts: [3]int{1, 0, 0}},
		{name: "failure on last attempt dead-letters", handler: func(context.Context, Event) error { return errors.New("boom") },
			attempt: 2, want: Dead, wantCounts: [3]int{0, 0, 1}},
		{name: "shutdown releases", handler: sleepFor(time.Minute), cancelAfter: 200 * time.Millisecond,
			want: Released, wantCounts: [3]int{1, 0, 0}},
		{name: "lost lease cancels the handler", handler: sleepFor(time.Minute), steal: true,
			want: Lost, wantErr: ErrLeaseLost, wantCounts: [3]int{1, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue(t)
			ctx := context.Background()
			if _, err := q.Publish(ctx, Event{ID: "w", Wait: time.Second}); err != nil {
				t.Fatal(err)
			}
			for range tc.attempt { // earlier deliveries that failed
				d := claim(t, q)
				if _, err := q.Nack(ctx, d, "earlier failure"); err != nil {
					t.Fatal(err)
				}
			}
			d := claim(t, q)
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if tc.cancelAfter > 0 {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			opt := WorkOptions{}
			handler := tc.handler
			var cancelled atomic.Bool
			if tc.steal {
				// Heartbeats (1.5 s) slower than the lease (1 s): once the
				// lease has expired on Redis's clock, the reaper, run by the
				// handler itself until it takes the event back, requeues it;
				// the next heartbeat finds it gone and must cancel the
				// handler. Ordered by the handler, not by timers that load
				// can shift.
				opt.HeartbeatEvery = 1500 * time.Millisecond
				handler = func(hctx context.Context, ev Event) error {
					for {
						r, err := q.Reap(ctx)
						if err != nil {
							return err
						}
						if r.Requeued == 1 {
							break
						}
						time.Sleep(20 * time.Millisecond)
					}
					err := tc.handler(hctx, ev)
					cancelled.Store(hctx.Err() != nil)
					return err
				}
			}
			start := time.Now()
			got, err := q.Work(wctx, d, handler, opt)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Work = %s, %v; want %s, %v", got, err, tc.want, tc.wantErr)
			}
			if tc.steal && !cancelled.Load() {
				t.Errorf("the handler ran to its end (%s) after the lease was lost: it was not cancelled", time.Since(start))
			}
			if s := snapshot(t, q); s.counts() != tc.wantCounts {
				t.Errorf("pending/processing/dead = %v, want %v", s.counts(), tc.wantCounts)
			}
		})
	}
}

func sleepFor(d time.Duration) Handler {
	return func(ctx context.Context, _ Event) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Many consumers, many identical payloads, consumers that "die" mid-event
// (abandon the delivery without ack) and a reaper running alongside: every
// event ends processed at least once, nothing is left, nothing is lost.
func TestConcurrentConsumersWithCrashes(t *testing.T) {
	q, _ := newTestQueue(t, func(c *Config) { c.MaxAttempts = 100 })
	ctx := context.Background()
	const distinct, copies = 50, 4 // 200 events, each payload 4 times
	var payloads [][]byte
	for i := range distinct {
		for range copies {
			payloads = append(payloads, []byte(fmt.Sprintf(`{"wait": 0, "n": %d}`, i)))
		}
	}
	if err := q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		processed = map[string]int{} // event id -> acks
		perN      = map[string]int{} // payload "n" -> distinct ids acked
		crashes   atomic.Int64
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the reaper
		for {
			select {
			case <-done:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := q.Reap(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var consumers sync.WaitGroup
	for c := range 8 {
		consumers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				d, err := q.Claim(ctx, time.Second)
				if errors.Is(err, ErrNoEvent) {
					s, _ := q.Stats(ctx)
					if s.Pending == 0 && s.Processing == 0 {
						return
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if rng.IntN(10) == 0 { // crash: walk away holding the lease
					crashes.Add(1)
					continue
				}
				if err := q.Ack(ctx, d); err != nil {
					t.Errorf("ack %s: %v", d.Event.ID, err)
					continue
				}
				mu.Lock()
				if processed[d.Event.ID] == 0 {
					var f struct{ N json.Number }
					if err := json.Unmarshal(d.Payload(), &f); err != nil {
						t.Error(err)
					}
					perN[f.N.String()]++
				}
				processed[d.Event.ID]++
				mu.Unlock()
			}
		})
	}
	consumers.Wait()
	close(done)
	wg.Wait()

	if len(processed) != distinct*copies {
		t.Errorf("%d distinct events acked, want %d", len(processed), distinct*copies)
	}
	for n, ids := range perN {
		if ids != copies {
			t.Errorf("payload n=%s: %d events acked, want %d (identical payloads must stay distinct)", n, ids, copies)
		}
	}
	for id, acks := range processed {
		if acks != 1 {
			t.Errorf("event %s acked %d times", id, acks)
		}
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{0, 0, 0} || len(s.leases) != 0 {
		t.Errorf("leftovers: %+v", s)
	}
	t.Logf("%d events, %d simulated crashes recovered by the reaper", len(processed), crashes.Load())
	if crashes.Load() == 0 {
		t.Error("no crash was simulated; the test proves nothing about recovery")
	}
}
