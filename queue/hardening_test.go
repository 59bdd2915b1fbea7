package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// netInput is Redis's count of bytes received from clients.
func netInput(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_net_input_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_net_input_bytes in INFO")
	return 0
}

// A payload above MAX_PAYLOAD_BYTES is dead-lettered at its first delivery
// by a script that appends the payload itself: the job never sends it back.
func TestOversizePayloadIsDeadLetteredByRedis(t *testing.T) {
	text := bytes.Repeat([]byte("é<&>"), 2<<20/5) // valid UTF-8, ~2 MiB
	bin := make([]byte, 2<<20)
	for i := range bin {
		bin[i] = byte(i*7 + i/251)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		field   string
	}{{"utf8", text, `"payload":`}, {"binary", bin, `"payload_base64":`}} {
		t.Run(tc.name, func(t *testing.T) {
			q, rdb := newTestQueue(t)
			ctx := context.Background()
			if err := q.PublishRaw(ctx, tc.payload); !errors.Is(err, ErrPayloadTooLarge) {
				t.Fatalf("PublishRaw of %d bytes: %v, want ErrPayloadTooLarge", len(tc.payload), err)
			}
			if err := rdb.LPush(ctx, q.pending, tc.payload).Err(); err != nil { // a producer that does not use our client
				t.Fatal(err)
			}
			before := netInput(t, rdb)
			_, err := q.Claim(ctx, time.Second)
			sent := netInput(t, rdb) - before
			var inv *InvalidEventError
			if !errors.As(err, &inv) || !strings.HasPrefix(inv.Reason, fmt.Sprintf("payload too large: %d bytes, above MAX_PAYLOAD_BYTES (1048576)", len(tc.payload))) {
				t.Fatalf("claim err = %v, want payload too large", err)
			}
			if inv.Size != len(tc.payload) || len(inv.Payload) != 256 {
				t.Errorf("error keeps size %d and a %d-byte preview, want %d and 256", inv.Size, len(inv.Payload), len(tc.payload))
			}
			if sent > 64<<10 {
				t.Errorf("the claim sent %d bytes to Redis: the payload went back", sent)
			}
			s := snapshot(t, q)
			s.clean(t)
			if s.counts() != [3]int{0, 0, 1} || !strings.Contains(s.dead[0], tc.field) {
				t.Fatalf("state %v, dead letter field %s missing", s.counts(), tc.field)
			}
			dls, err := q.DeadLetters(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dls[0].Payload, tc.payload) || dls[0].Size != len(tc.payload) || dls[0].Attempts != 1 {
				t.Errorf("dead letter keeps %d bytes (equal=%v), size %d, attempts %d", len(dls[0].Payload), bytes.Equal(dls[0].Payload, tc.payload), dls[0].Size, dls[0].Attempts)
			}
		})
	}
}

// An entry whose job dies right after claiming it (an OOM kill before the
// lease) is rescued with the delivery counted, and dead-lettered after
// MAX_ATTEMPTS — whatever its size — instead of blocking the queue forever.
func TestEntryThatKeepsKillingItsJobEndsDead(t *testing.T) {
	q, rdb := newTestQueue(t) // MaxAttempts 3
	ctx := context.Background()
	huge := make([]byte, 3<<20)
	for i := range huge {
		huge[i] = byte(255 - i%200) // not UTF-8
	}
	if err := rdb.LPush(ctx, q.pending, huge, `{"wait":0}`).Err(); err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 3; delivery++ {
		orphan(t, q, 0) // claimed, then the job is killed before it can lease
		r, err := q.Reap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := ReapResult{Rescued: 1}
		if delivery == 3 {
			want = ReapResult{Dead: 1}
		}
		if moved(r) != want {
			t.Fatalf("delivery %d: reap %+v, want %+v", delivery, r, want)
		}
		s := snapshot(t, q)
		s.clean(t)
		if delivery < 3 {
			// Back at the front: the next claim takes it again, delivery counted.
			if p, h := payloadOf(t, s.pending[len(s.pending)-1]); h.Attempts != delivery || p != string(huge) {
				t.Fatalf("after delivery %d the front entry has attempts %d (payload intact: %v)", delivery, h.Attempts, p == string(huge))
			}
		}
	}
	dls, err := q.DeadLetters(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dls[0].Payload, huge) || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "never leased on delivery 3 of 3") {
		t.Errorf("dead letter: %d bytes equal=%v attempts %d reason %q", len(dls[0].Payload), bytes.Equal(dls[0].Payload, huge), dls[0].Attempts, dls[0].Reason)
	}
	// The queue is not blocked: the small event behind it is claimable.
	if d := claim(t, q); d.Event.Wait != 0 || d.Attempt != 1 {
		t.Errorf("next event %+v", d)
	}
}

// Leasing twice with the same token (the first reply was lost) changes
// nothing and returns the header in force.
func TestLeaseIsIdempotentPerToken(t *testing.T) {
	q, rdb := newTestQueue(t)
	ctx := context.Background()
	if err := q.PublishRaw(ctx, []byte(`{"wait":1}`)); err != nil {
		t.Fatal(err)
	}
	tok := orphan(t, q, time.Minute)
	keys := []string{q.claimPrefix + tok, q.leases, q.claimed}
	first, err := leaseScript.Run(ctx, rdb, keys, tok, `{"attempt":1,"first":true}`, 1000).Text()
	if err != nil {
		t.Fatal(err)
	}
	again, err := leaseScript.Run(ctx, rdb, keys, tok, `{"attempt":1,"second":true}`, 1000).Text()
	if err != nil || again != first || first != `{"attempt":1,"first":true}` {
		t.Fatalf("second lease returned %q, %v; want the first header %q", again, err, first)
	}
	if n := rdb.LLen(ctx, q.claimPrefix+tok).Val(); n != 2 {
		t.Errorf("claim list has %d entries after two leases, want 2", n)
	}
}

// cutProxy forwards TCP to a Redis server; armed, it forwards the next client
// write that contains trigger and then cuts the connection before Redis's
// reply can come back: the command ran, its reply was lost.
type cutProxy struct {
	ln      net.Listener
	target  string
	trigger []byte
	armed   atomic.Bool
	cuts    atomic.Int32
	wg      sync.WaitGroup
}

func startCutProxy(t *testing.T, target, trigger string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, trigger: []byte(trigger)}
	p.wg.Go(p.serve)
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		p.wg.Go(func() {
			defer s.Close()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					cut := bytes.Contains(bytes.ToLower(buf[:n]), bytes.ToLower(p.trigger)) && p.armed.CompareAndSwap(true, false)
					if cut {
						// Cut before forwarding: a fast reply could otherwise
						// reach the client before the cut.
						p.cuts.Add(1)
						_ = c.Close() // the reply will not reach the client
					}
					if _, werr := s.Write(buf[:n]); werr != nil || cut {
						return // Redis reads the command before the close
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// A BRPOPLPUSH whose reply is lost has still moved the entry: the retry, with
// the same token, finds it in the claim list and leases it — nothing is
// orphaned, nothing is claimed twice.
func TestLostClaimReplyLosesNothing(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startCutProxy(t, srv.Addr, "BRPOPLPUSH")
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { _ = viaProxy.Close() })
	q, _ := newQueueOn(t, viaProxy)
	direct, _ := newQueueOn(t, srv.Client())
	ctx := context.Background()
	if err := direct.PublishRaw(ctx, []byte(`{"id":"one","wait":1}`), []byte(`{"id":"two","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	proxy.armed.Store(true)
	d, err := q.ClaimWith(ctx, ClaimOptions{Timeout: 2 * time.Second, RetryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d replies; the test did not lose one", proxy.cuts.Load())
	}
	if d.Event.ID != "one" || d.Attempt != 1 {
		t.Errorf("claimed %s attempt %d, want one attempt 1", d.Event.ID, d.Attempt)
	}
	s := snapshot(t, direct)
	s.clean(t)
	if s.counts() != [3]int{1, 1, 0} || len(s.leases) != 1 {
		t.Fatalf("state %v with %d registrations; want two remaining exactly once (one pending, one in flight)", s.counts(), len(s.leases))
	}
	if p, _ := payloadOf(t, s.pending[0]); p != `{"id":"two","wait":1}` {
		t.Errorf("pending %q", s.pending)
	}
}

// A signal while Claim waits puts whatever the claim moved back at the front
// of pending, unchanged, within about a second.
func TestClaimInterruptedPutsEntryBack(t *testing.T) {
	q, _ := newTestQueue(t)
	ctx := context.Background()
	const raw = `{"id":"late","wait":5}`
	if err := q.PublishRaw(ctx, []byte(`{"id":"older","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	older := claim(t, q) // keep pending empty so the next claim blocks
	for try := 0; ; try++ {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := q.ClaimWith(cctx, ClaimOptions{Timeout: 30 * time.Second}); errc <- err }()
		waitUntil(t, func() bool { s, _ := q.Stats(ctx); return s.Claiming == 1 })
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		cancel() // SIGTERM; the event arrives while the BRPOPLPUSH still blocks
		if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		err := <-errc
		var ci *ClaimInterruptedError
		if !errors.As(err, &ci) || ci.Err != nil {
			t.Fatalf("err = %v, want ClaimInterruptedError", err)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("interrupted claim returned after %v", el)
		}
		if ci.Released < 0 && try < 3 { // the slice ended between cancel and push: nothing moved; again
			continue
		}
		if ci.Released != len(raw) {
			t.Fatalf("released %d bytes, want %d", ci.Released, len(raw))
		}
		break
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{1, 1, 0} || s.pending[0] != raw || len(s.leases) != 1 {
		t.Fatalf("state %v pending %q registrations %d; want the raw entry back and only %s in flight", s.counts(), s.pending, len(s.leases), older.Event.ID)
	}
	if d := claim(t, q); d.Event.ID != "late" || d.Attempt != 1 {
		t.Errorf("next claim %s attempt %d, want late attempt 1 (putting back is not a delivery)", d.Event.ID, d.Attempt)
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Finishing survives a Redis outage longer than the shutdown bound: the ack
// is retried for FinishTimeout, the lease kept alive, and the event is acked
// once.
func TestAckRetriesThroughRedisOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	q, _ := newQueueOn(t, srv.Client(), func(c *Config) { c.LeaseDuration = 2 * time.Second })
	ctx := context.Background()
	if _, err := q.Publish(ctx, Event{ID: "outage", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	d := claim(t, q)
	var finishErrs atomic.Int32
	handler := func(ctx context.Context, _ Event) error {
		srv.Stop() // Redis goes away just as the work is done
		time.AfterFunc(3*time.Second, srv.StartAgain)
		return nil
	}
	got, err := q.Work(ctx, d, handler, WorkOptions{
		HeartbeatEvery: 500 * time.Millisecond, FinishTimeout: 20 * time.Second, ReleaseTimeout: time.Second,
		OnFinishError: func(error) { finishErrs.Add(1) },
	})
	if got != Acked || err != nil {
		t.Fatalf("Work = %s, %v; want acked after the outage", got, err)
	}
	if finishErrs.Load() == 0 {
		t.Error("no failed ack attempt was seen: the outage did not happen during the ack")
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{0, 0, 0} || s.counters["acked"] != "1" {
		t.Errorf("state %v counters %v", s.counts(), s.counters)
	}
}

// The reaper drains everything due in one run, however many live leases sit
// in front, in batches that each stay short.
func TestReaperDrainsEverythingDueBehindLiveLeases(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxAttempts = 10 })
	ctx := context.Background()
	const live, expired, unleased = 1200, 3000, 3000
	payloads := make([][]byte, live+expired+unleased)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"wait":1,"n":%d}`, i))
	}
	if err := q.PublishRaw(ctx, payloads...); err != nil {
		t.Fatal(err)
	}
	var liveDs []*Delivery
	for i := range live + expired {
		d := claim(t, q)
		if i < live {
			liveDs = append(liveDs, d)
		}
	}
	for range unleased {
		orphan(t, q, 0)
	}
	// Make the leases of the middle group due, as if their jobs died an hour ago.
	pipe := rdb.Pipeline()
	for _, z := range snapshot(t, q).claimed {
		pipe.ZAdd(ctx, q.leases, redis.Z{Score: 1, Member: z.Member})
	}
	for _, d := range liveDs {
		pipe.ZAdd(ctx, q.leases, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: d.Token})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rdb.ConfigSet(ctx, "slowlog-log-slower-than", "50000") // 50 ms: far above a batch's cost
	rdb.SlowLogReset(ctx)
	r, err := q.Reap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if moved(r) != (ReapResult{Requeued: expired, Rescued: unleased}) {
		t.Fatalf("reap = %+v, want %d requeued and %d rescued in one run", r, expired, unleased)
	}
	if r.Batches > (expired+unleased)/reapBatch+1 {
		t.Errorf("%d batches for %d entries (batch %d)", r.Batches, expired+unleased, reapBatch)
	}
	if slow, _ := rdb.SlowLogGet(ctx, 10).Result(); len(slow) > 0 {
		t.Errorf("%d commands slower than 50 ms during the reap: %v", len(slow), slow[0].Args[:1])
	}
	s := snapshot(t, q)
	s.clean(t)
	if s.counts() != [3]int{expired + unleased, live, 0} {
		t.Errorf("state %v", s.counts())
	}
}

// The queue never changes an event's bytes or fields, whatever path it
// takes: retry, release, lease expiry, rescue, dead letter.
func TestQueueNeverChangesBytes(t *testing.T) {
	payloads := []string{
		`{"wait":0,"html":"<b>&amp;</b>","claim":"producer's","claimed_at":"mine","id":"p1"}`,
		"{\"wait\":0,\"latin1\":\"\xe9t\xe9\",\"id\":\"p2\"}", // invalid UTF-8 inside a string: still valid to our decoder
		`  {"wait": 0.0 , "spaces" : [ 1 , 2 ] }  `,
		"{\"wait\":0,\"nul\":\"a\\u0000b\",\"emoji\":\"\U0001F600\"}",
	}
	paths := []struct {
		name string
		run  func(t *testing.T, q *Queue, d *Delivery)
	}{
		{"nack", func(t *testing.T, q *Queue, d *Delivery) {
			if _, err := q.Nack(context.Background(), d, "x"); err != nil {
				t.Fatal(err)
			}
		}},
		{"release", func(t *testing.T, q *Queue, d *Delivery) {
			if err := q.Release(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}},
		{"lease expiry", func(t *testing.T, q *Queue, d *Delivery) {
			q.rdb.ZAdd(context.Background(), q.leases, redis.Z{Score: 1, Member: d.Token})
			if r, err := q.Reap(context.Background()); err != nil || r.Requeued != 1 {
				t.Fatalf("reap %+v %v", r, err)
			}
		}},
	}
	for i, raw := range payloads {
		for _, path := range paths {
			t.Run(fmt.Sprintf("payload%d/%s", i, path.name), func(t *testing.T) {
				q, _ := newTestQueue(t, func(c *Config) { c.MaxAttempts = 2 })
				ctx := context.Background()
				if err := q.PublishRaw(ctx, []byte(raw)); err != nil {
					t.Fatal(err)
				}
				d := claim(t, q)
				if string(d.Payload()) != raw {
					t.Fatalf("claimed payload %q, want %q", d.Payload(), raw)
				}
				path.run(t, q, d)
				again := claim(t, q)
				if string(again.Payload()) != raw || again.Event.ID != d.Event.ID {
					t.Fatalf("after %s: payload %q id %s, want %q id %s", path.name, again.Payload(), again.Event.ID, raw, d.Event.ID)
				}
				// And out through the dead list (nack on the last attempt, or
				// the reaper on an expired last attempt).
				if again.Attempt < 2 {
					if _, err := q.Nack(ctx, again, "x"); err != nil {
						t.Fatal(err)
					}
					again = claim(t, q)
				}
				q.rdb.ZAdd(ctx, q.leases, redis.Z{Score: 1, Member: again.Token})
				if r, err := q.Reap(ctx); err != nil || r.Dead != 1 {
					t.Fatalf("reap %+v %v", r, err)
				}
				dls, _ := q.DeadLetters(ctx, 1)
				if string(dls[0].Payload) != raw {
					t.Errorf("dead letter payload %q, want %q", dls[0].Payload, raw)
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(dls[0].Record), &rec); err != nil {
					t.Fatal(err)
				}
				if _, text := rec["payload"]; text != (i != 1) {
					t.Errorf("record %s: text payload stored as payload, others as payload_base64", dls[0].Record)
				}
			})
		}
	}
}

// Model-based test: random sequences of publish, claim, heartbeat, ack,
// nack, release, reap, kill (a job that dies holding its event or mid-claim)
// and Redis restarts, on a real redis-server. After every step each published
// event is acked, or in exactly one of pending / in flight / dead, and no key
// is left that no event accounts for.
func TestModelRandomOperations(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithAOF())
			q, rdb := newQueueOn(t, srv.Client(), func(c *Config) { c.MaxAttempts = 3 })
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 99))
			published, acked := 0, map[int]bool{}
			var held []*Delivery
			ops := map[string]int{}
			for step := 0; step < 250; step++ {
				op := rng.IntN(100)
				switch {
				case op < 15:
					n := 1 + rng.IntN(3)
					ps := make([][]byte, n)
					for i := range ps {
						ps[i] = []byte(fmt.Sprintf(`{"wait":0,"m":%d}`, published))
						if rng.IntN(4) == 0 {
							ps[i] = []byte(fmt.Sprintf(`{"wait":0,"m":%d,"id":"shared"}`, published))
						}
						published++
					}
					if err := q.PublishRaw(ctx, ps...); err != nil {
						t.Fatal(err)
					}
					ops["publish"]++
				case op < 40:
					if rdb.LLen(ctx, q.pending).Val() == 0 {
						continue
					}
					d, err := q.Claim(ctx, time.Second)
					if errors.Is(err, ErrInvalidEvent) {
						continue // out of attempts: dead-lettered at claim
					}
					if err != nil {
						t.Fatalf("step %d claim: %v", step, err)
					}
					held = append(held, d)
					ops["claim"]++
				case op < 85 && len(held) > 0:
					i := rng.IntN(len(held))
					d := held[i]
					held = append(held[:i], held[i+1:]...)
					var err error
					switch k := rng.IntN(6); k {
					case 0, 1:
						err = q.Ack(ctx, d)
						if err == nil {
							acked[mOf(t, d.Payload())] = true
						}
						ops["ack"]++
					case 2:
						_, err = q.Nack(ctx, d, "model")
						ops["nack"]++
					case 3:
						err = q.Release(ctx, d)
						ops["release"]++
					case 4:
						err = q.Heartbeat(ctx, d)
						held = append(held, d)
						ops["heartbeat"]++
					case 5: // the job dies holding it: its lease runs out
						rdb.ZAdd(ctx, q.leases, redis.Z{Score: 1, Member: d.Token})
						ops["kill"]++
					}
					if err != nil && !errors.Is(err, ErrLeaseLost) {
						t.Fatalf("step %d: %v", step, err)
					}
				case op < 90:
					if rdb.LLen(ctx, q.pending).Val() > 0 { // a job killed between BRPOPLPUSH and the lease
						orphan(t, q, 0)
						ops["kill mid-claim"]++
					}
				case op < 97:
					if _, err := q.Reap(ctx); err != nil {
						t.Fatalf("step %d reap: %v", step, err)
					}
					ops["reap"]++
				default:
					srv.Restart()
					ops["restart"]++
				}
				checkModel(t, q, step, published, acked)
			}
			t.Logf("ops %v, published %d, acked %d", ops, published, len(acked))
		})
	}
}

func mOf(t testing.TB, payload []byte) int {
	t.Helper()
	var f struct{ M int }
	if err := json.Unmarshal(payload, &f); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	return f.M
}

func checkModel(t *testing.T, q *Queue, step, published int, acked map[int]bool) {
	t.Helper()
	s := snapshot(t, q)
	s.clean(t)
	where := map[int][]string{}
	for _, e := range s.pending {
		p, _ := payloadOf(t, e)
		where[mOf(t, []byte(p))] = append(where[mOf(t, []byte(p))], "pending")
	}
	for tok, c := range s.claims {
		if len(c) == 0 {
			continue
		}
		p, _ := payloadOf(t, c[len(c)-1])
		where[mOf(t, []byte(p))] = append(where[mOf(t, []byte(p))], "claim "+tok)
	}
	for _, r := range s.dead {
		dl, err := parseDeadLetter(r)
		if err != nil {
			t.Fatal(err)
		}
		where[mOf(t, dl.Payload)] = append(where[mOf(t, dl.Payload)], "dead")
	}
	for m := range published {
		switch {
		case acked[m] && len(where[m]) != 0:
			t.Fatalf("step %d: event %d acked but still in %v", step, m, where[m])
		case !acked[m] && len(where[m]) != 1:
			t.Fatalf("step %d: event %d is in %v, want exactly one place", step, m, where[m])
		}
	}
}
