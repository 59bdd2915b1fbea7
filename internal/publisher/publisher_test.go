package publisher

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func testConfig(t *testing.T, srv *redistest.Server, env map[string]string) Config {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	base := map[string]string{
		"REDIS_ADDR": srv.Addr, "HTTP_ADDR": addr, "UI_ADDR": "127.0.0.1:0", "PUBLISH_INTERVAL": "100ms",
		"REAP_INTERVAL": "200ms", "LEASE_DURATION": "1s", "WAIT_MIN": "1", "WAIT_MAX": "3",
	}
	for k, v := range env {
		base[k] = v
	}
	var c Config
	if err := config.ParseFrom(&c, base); err != nil {
		t.Fatal(err)
	}
	return c
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPublishesUpToLimitThenKeepsReaping(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "10", "PUBLISH_LIMIT": "25"})
	q, err := queue.New(srv.Client(), c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zaptest.NewLogger(t), c) }()

	// 25 events in batches of 10, 10, 5; then no more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := q.Stats(context.Background())
		if s.Pending == 25 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want 25", s.Pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // several more intervals
	if s, _ := q.Stats(context.Background()); s.Pending != 25 {
		t.Fatalf("published past PUBLISH_LIMIT: pending = %d", s.Pending)
	}

	// Every event is well-formed, with id, published_at and wait in range.
	ids := map[string]bool{}
	for range 25 {
		d, err := q.Claim(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d.IDAssigned || d.Event.PublishedAt.IsZero() || d.Event.Wait < time.Second || d.Event.Wait > 3*time.Second {
			t.Errorf("event %+v", d.Event)
		}
		ids[d.Event.ID] = true
		if len(ids) < 25 { // all but the last
			if err := q.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(ids) != 25 {
		t.Errorf("%d distinct ids, want 25", len(ids))
	}
	// The last claimed event is abandoned (a job "died"): the publisher's
	// reaper must bring it back after the lease (1s) without any help.
	deadline = time.Now().Add(10 * time.Second)
	for {
		s, _ := q.Stats(context.Background())
		if s.Pending == 1 && s.Processing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reaper did not requeue the orphan: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if code, body := get("http://" + c.HTTPAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get("http://" + c.HTTPAddr + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	srv.Stop()
	if code, body := get("http://" + c.HTTPAddr + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "redis unreachable") {
		t.Errorf("/readyz with Redis down = %d %s, want 503", code, body)
	}
	if code, _ := get("http://" + c.HTTPAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz must not depend on Redis: %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want clean stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}

func TestShutdownFinishesTheBatchInProgress(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "500", "PUBLISH_INTERVAL": "1h"})
	q, err := queue.New(srv.Client(), c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the signal is already there when the first batch starts
	if err := Run(ctx, zaptest.NewLogger(t), c); err != nil {
		t.Fatal(err)
	}
	if s, _ := q.Stats(context.Background()); s.Pending != 500 {
		t.Errorf("pending = %d, want the whole batch of 500", s.Pending)
	}
}

func TestConfigValidation(t *testing.T) {
	srv := redistest.Start(t)
	cases := []struct{ env, want string }{
		{"WAIT_MIN=5,WAIT_MAX=2", "WAIT_MIN=5 and WAIT_MAX=2"},
		{"WAIT_MAX=7200", "above MAX_WAIT"},
		{"BATCH_SIZE=-1", "BATCH_SIZE=-1"},
		{"PUBLISH_INTERVAL=10", `PUBLISH_INTERVAL="10" is not a duration`},
		{"HTTP_ADDR=8080", "HTTP_ADDR"},
		{"PUBLISH_LIMIT=-1", "PUBLISH_LIMIT=-1"},
		{"QUEUE=", `QUEUE is set but empty; set a value, or unset QUEUE for its default "events"`},
		{"BATCH_SIZE=", `BATCH_SIZE is set but empty; set a value, or unset BATCH_SIZE for its default "10"`},
		{"HTTP_ADDR=", `HTTP_ADDR is set but empty; set a value, or unset HTTP_ADDR for its default ":8080"`},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			env := map[string]string{"REDIS_ADDR": srv.Addr}
			for _, kv := range strings.Split(tc.env, ",") {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			var c Config
			err := config.ParseFrom(&c, env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	var c Config
	if err := config.ParseFrom(&c, map[string]string{}); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
	if got := fmt.Sprintf("%v %v %v %v %v %v %v", c.PublishInterval, c.BatchSize, c.WaitMin, c.WaitMax, c.ReapInterval, c.HTTPAddr, c.Queue.Name); got != "10s 10 10 20 15s :8080 events" {
		t.Errorf("defaults = %s", got)
	}
}

// A reaper-only publisher (BATCH_SIZE=0) does not check the settings only
// publishing uses: MAX_WAIT=60s with the default WAIT_MAX=20... and even
// WAIT_MAX above MAX_WAIT is no reason to refuse to reap. With BATCH_SIZE>0
// the same settings are refused, with the exact message.
func TestReaperOnlyIgnoresPublishingSettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" = valid
	}{
		{map[string]string{"BATCH_SIZE": "0", "MAX_WAIT": "5s"}, ""},
		{map[string]string{"BATCH_SIZE": "0", "WAIT_MIN": "9", "WAIT_MAX": "3"}, ""},
		{map[string]string{"BATCH_SIZE": "0", "PUBLISH_LIMIT": "-1", "PUBLISH_INTERVAL": "0s"}, ""},
		{map[string]string{"BATCH_SIZE": "1", "MAX_WAIT": "5s"}, "invalid configuration: WAIT_MAX=20 is above MAX_WAIT=5s: such events would be dead-lettered"},
		{map[string]string{"BATCH_SIZE": "1", "WAIT_MIN": "9", "WAIT_MAX": "3"}, "invalid configuration: WAIT_MIN=9 and WAIT_MAX=3 must satisfy 0 <= WAIT_MIN <= WAIT_MAX (seconds)"},
		{map[string]string{"BATCH_SIZE": "1", "PUBLISH_LIMIT": "-1"}, "invalid configuration: PUBLISH_LIMIT=-1 must be 0 (unlimited) or more"},
		{map[string]string{"BATCH_SIZE": "1", "PUBLISH_INTERVAL": "0s"}, "invalid configuration: PUBLISH_INTERVAL must be positive, such as 10s"},
		{map[string]string{"BATCH_SIZE": "0", "REAP_INTERVAL": "0s"}, "invalid configuration: REAP_INTERVAL must be positive, such as 15s"},
		{map[string]string{"BATCH_SIZE": "-1"}, "invalid configuration: BATCH_SIZE=-1 must be 0 (reaper only, no publishing) or more"},
	} {
		var c Config
		err := config.ParseFrom(&c, tc.env)
		if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || err.Error() != tc.want)) {
			t.Errorf("%v: err = %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestBatchSizeZeroOnlyReaps(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0"})
	q, err := queue.New(srv.Client(), c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zaptest.NewLogger(t), c) }()
	if _, err := q.Publish(context.Background(), queue.Event{ID: "orphan", Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Claim(context.Background(), time.Second); err != nil { // and abandon it
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := q.Stats(context.Background())
		if s.Pending == 1 && s.Processing == 0 {
			break // reaped, and nothing else was published
		}
		if s.Pending > 1 || time.Now().After(deadline) {
			t.Fatalf("stats = %+v; want only the reaped orphan", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A batch that fails to publish is retried with the same ids, so if the
// failed attempt did reach Redis (its reply was lost) the duplicate is
// recognisable by id.
func TestFailedBatchIsRetriedWithTheSameIDs(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "3", "PUBLISH_LIMIT": "3"})
	q, err := queue.New(srv.Client(), c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, zap.New(core), c) }()
	deadline := time.Now().Add(10 * time.Second)
	for logs.FilterMessageSnippet("publish failed").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed publish logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	failed := logs.FilterMessageSnippet("publish failed").All()
	first, last := failed[0].ContextMap()["first_id"], failed[0].ContextMap()["last_id"]
	if again := failed[1].ContextMap(); again["first_id"] != first || again["last_id"] != last {
		t.Errorf("retry ids %v..%v, first attempt %v..%v", again["first_id"], again["last_id"], first, last)
	}
	srv.StartAgain()
	for logs.FilterMessage("published batch").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("batch never published after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub := logs.FilterMessage("published batch").All()[0].ContextMap()
	if pub["first_id"] != first || pub["last_id"] != last {
		t.Errorf("published ids %v..%v, want the failed batch's %v..%v", pub["first_id"], pub["last_id"], first, last)
	}
	var got []string
	for range 3 {
		d, err := q.Claim(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Event.ID)
	}
	if got[0] != first || got[2] != last {
		t.Errorf("claimed ids %v, want %v first and %v last", got, first, last)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
