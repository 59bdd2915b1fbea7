package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis-keda/redis-keda/worker"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

func setup(t *testing.T, env map[string]string) (*queue.Queue, *redistest.Server, worker.Config) {
	t.Helper()
	srv := redistest.Start(t)
	environ := map[string]string{"REDIS_ADDR": srv.Addr, "QUEUE": "jobs", "CLAIM_TIMEOUT": "1s", "MAX_ATTEMPTS": "3"}
	for k, v := range env {
		environ[k] = v
	}
	var c worker.Config
	if err := config.ParseFrom(&c, environ); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(srv.Client(), c.Queue)
	if err != nil {
		t.Fatal(err)
	}
	return q, srv, c
}

// A Go handler's verdicts, on a real redis-server.
func TestHandlerVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		runErr   error // what Run returns (errors.Is)
		counters map[string]int64
		dead     []string
		pending  []string
		// scheduled: the member's entry (after "<nonce> ") and its delay
		scheduled string
		delay     time.Duration
	}{
		{name: "nil acks", counters: map[string]int64{"acked": 1}},
		{name: "an error waits for the schedule's retry", err: errors.New("printer offline"), counters: map[string]int64{"retried": 1},
			scheduled: `rkq1 {"attempts":1}` + "\n" + `{"id":"o-1"}`, delay: 15 * time.Second},
		{name: "RetryAfter waits its delay, counted", err: worker.RetryAfter(time.Hour, errors.New("quota used up")), counters: map[string]int64{"retried": 1},
			scheduled: `rkq1 {"attempts":1}` + "\n" + `{"id":"o-1"}`, delay: time.Hour},
		{name: "Snooze waits its delay, not counted", err: worker.Snooze(5 * time.Minute), counters: map[string]int64{"snoozed": 1},
			scheduled: `{"id":"o-1"}`, delay: 5 * time.Minute},
		{name: "SkipRetry dead-letters now", err: fmt.Errorf("%w: no customer 42", worker.SkipRetry), counters: map[string]int64{"dead": 1},
			dead: []string{"failed on attempt 1 of 3, not retried: skip retry: no customer 42"}},
		{name: "NotStarted releases and stops", err: fmt.Errorf("%w: model file missing", worker.NotStarted), runErr: worker.NotStarted,
			counters: map[string]int64{"released": 1}, pending: []string{`{"id":"o-1"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, srv, c := setup(t, map[string]string{"RETRY_JITTER": "0"})
			if err := q.PublishRaw(context.Background(), []byte(`{"id":"o-1"}`)); err != nil {
				t.Fatal(err)
			}
			start := srv.Client().Time(context.Background()).Val().UnixMilli()
			var got []worker.Job
			err := worker.Run(context.Background(), zap.NewNop(), c, worker.HandlerFunc(func(ctx context.Context, j *worker.Job) error {
				got = append(got, *j)
				return tc.err
			}))
			if !errors.Is(err, tc.runErr) || (tc.runErr == nil && err != nil) {
				t.Fatalf("Run: %v, want %v", err, tc.runErr)
			}
			want := []worker.Job{{ID: "o-1", Payload: []byte(`{"id":"o-1"}`), Attempt: 1, MaxAttempts: 3, Queue: "jobs"}}
			if len(got) != 1 || got[0].ID != want[0].ID || string(got[0].Payload) != string(want[0].Payload) ||
				got[0].Attempt != 1 || got[0].MaxAttempts != 3 || got[0].Queue != "jobs" || !got[0].PublishedAt.IsZero() {
				t.Errorf("handler saw %+v, want %+v", got, want)
			}
			s, err := q.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.counters {
				if s.Counters[k] != v {
					t.Errorf("counter %s = %d, want %d (all %v)", k, s.Counters[k], v, s.Counters)
				}
			}
			dls, _ := q.DeadLetters(context.Background(), 10)
			var reasons []string
			for _, d := range dls {
				reasons = append(reasons, d.Reason)
			}
			if !slices.Equal(reasons, tc.dead) {
				t.Errorf("dead %q, want %q", reasons, tc.dead)
			}
			pending, _ := srv.Client().LRange(context.Background(), "jobs", 0, -1).Result()
			if !slices.Equal(pending, tc.pending) {
				t.Errorf("pending %q, want %q", pending, tc.pending)
			}
			end := srv.Client().Time(context.Background()).Val().UnixMilli()
			z := srv.Client().ZRangeWithScores(context.Background(), "{jobs}:scheduled", 0, -1).Val()
			if tc.scheduled == "" {
				if len(z) != 0 {
					t.Errorf("scheduled %v, want none", z)
				}
				return
			}
			if len(z) != 1 || !strings.HasSuffix(z[0].Member.(string), " "+tc.scheduled) {
				t.Fatalf("scheduled %v, want <nonce> %q", z, tc.scheduled)
			}
			if due, d := int64(z[0].Score), tc.delay.Milliseconds(); due < start+d || due > end+d {
				t.Errorf("due %d, want %s after the verdict, in [%d, %d]", due, tc.delay, start+d, end+d)
			}
		})
	}
}

// Any payload is the handler's: not JSON, NUL bytes, invalid UTF-8, JSON
// without "wait"; the queue assigns an id when there is none, reads
// published_at when there is one.
func TestAnyPayload(t *testing.T) {
	q, _, c := setup(t, map[string]string{"MAX_EVENTS": "4"})
	payloads := [][]byte{
		[]byte("plain text, not JSON"),
		[]byte("\x00\xff\xfe\x00"),
		[]byte(`{"image":"s3://b/k.png","published_at":"2026-12-05T10:00:00Z"}`),
		[]byte(`{"id":{"not":"usable"}}`),
	}
	if err := q.PublishRaw(context.Background(), payloads...); err != nil {
		t.Fatal(err)
	}
	var got []*worker.Job
	err := worker.Run(context.Background(), zap.NewNop(), c, worker.HandlerFunc(func(_ context.Context, j *worker.Job) error {
		got = append(got, j)
		return nil
	}))
	if err != nil || len(got) != 4 {
		t.Fatalf("Run: %v, %d jobs", err, len(got))
	}
	for i, j := range got {
		if string(j.Payload) != string(payloads[i]) {
			t.Errorf("job %d payload %q, want %q", i, j.Payload, payloads[i])
		}
		if len(j.ID) != len("p1234abcd-12345678") || j.ID[0] != 'p' {
			t.Errorf("job %d id %q, want one the queue assigned", i, j.ID)
		}
	}
	if want := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC); !got[2].PublishedAt.Equal(want) {
		t.Errorf("published_at %v, want %v", got[2].PublishedAt, want)
	}
	if s, _ := q.Stats(context.Background()); s.Counters["acked"] != 4 || s.Dead != 0 {
		t.Errorf("stats %+v", s)
	}
}

// With RequireWait (the built-in sleep) a payload without "wait" is
// dead-lettered at its claim, and the handler never sees it.
func TestRequireWait(t *testing.T) {
	q, _, c := setup(t, nil)
	c.RequireWait = true
	if err := q.PublishRaw(context.Background(), []byte(`{"image":"x"}`)); err != nil {
		t.Fatal(err)
	}
	called := false
	if err := worker.Run(context.Background(), zap.NewNop(), c, worker.HandlerFunc(func(context.Context, *worker.Job) error {
		called = true
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	dls, _ := q.DeadLetters(context.Background(), 10)
	if called || len(dls) != 1 || dls[0].Reason != `missing field "wait"; expected a JSON object such as {"wait": 17} (wait = seconds to sleep, a number >= 0)` {
		t.Errorf("called %v, dead %+v", called, dls)
	}
}

// TestMain starts the real redis-server that Example uses (an Example has
// no testing.T for redistest) and publishes the example's event.
func TestMain(m *testing.M) {
	stop, err := startExampleRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "example redis-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func startExampleRedis() (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "worker-example")
	if err != nil {
		return nil, err
	}
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := srv.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = srv.Process.Kill(); _ = srv.Wait(); os.RemoveAll(dir) }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for i := 0; ; i++ {
		err = rdb.LPush(context.Background(), "orders", `{"id":"order-1","item":"book"}`).Err()
		if err == nil {
			break
		}
		if i == 200 {
			stop()
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	for k, v := range map[string]string{"REDIS_ADDR": addr, "QUEUE": "orders", "CLAIM_TIMEOUT": "1s", "LOG_LEVEL": "error"} {
		os.Setenv(k, v)
	}
	return stop, nil
}
