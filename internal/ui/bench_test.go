package ui

// The dashboard's cost at scale (task bench → scripts/bench-ui.sh): a real
// redis-server seeded with 1M pending, 100k dead, 100k scheduled and 1,000 in flight; each
// page served by the real handler. Reported per page: server time (ms/op)
// and Redis time (redis-µs/op: the sum of INFO commandstats usec, reset
// before, minus INFO itself), and the replies' bytes. Nothing is asserted
// (the machine's load moves the numbers); the page budget is 100 ms.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

var benchBed struct {
	once sync.Once
	srv  *redistest.Server
	h    http.Handler
	err  error
}

const (
	benchPending   = 1_000_000
	benchDead      = 100_000
	benchInFlight  = 1_000
	benchScheduled = 100_000
)

func seedBench(b *testing.B) (*redistest.Server, http.Handler) {
	benchBed.once.Do(func() {
		srv := redistest.Start(b)
		rdb := srv.Client()
		ctx := context.Background()
		q, err := queue.New(rdb, queue.Config{Name: "events", LeaseDuration: time.Hour, MaxAttempts: 3, MaxWait: 24 * time.Hour, MaxPayloadBytes: 1 << 20})
		if err != nil {
			benchBed.err = err
			return
		}
		push := func(key string, n int, gen func(i int) string) error {
			for i := 0; i < n; i += 1000 {
				vals := make([]any, 0, 1000)
				for j := i; j < min(i+1000, n); j++ {
					vals = append(vals, gen(j))
				}
				if err := rdb.LPush(ctx, key, vals...).Err(); err != nil {
					return err
				}
			}
			return nil
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		if err := push("events", benchInFlight, func(i int) string { return fmt.Sprintf(`{"id":"f-%d","wait":1}`, i) }); err != nil {
			benchBed.err = err
			return
		}
		for range benchInFlight {
			if _, err := q.Claim(ctx, 10*time.Second); err != nil {
				benchBed.err = err
				return
			}
		}
		if err := push("events", benchPending, func(i int) string {
			return fmt.Sprintf(`{"id":"p-%d","wait":1,"published_at":"%s","order":{"sku":"A-%d","qty":%d,"note":"%s"}}`, i, now, i, i%7, strings.Repeat("x", 60))
		}); err != nil {
			benchBed.err = err
			return
		}
		if err := push("{events}:dead", benchDead, func(i int) string {
			return fmt.Sprintf(`{"id":"d-%d","reason":"failed on attempt 3 of 3 (MAX_ATTEMPTS): exit status 1","attempts":3,"dead_at":"%s","size":40,"payload":"{\"id\":\"d-%d\",\"wait\":1,\"n\":%d}"}`, i, now, i, i)
		}); err != nil {
			benchBed.err = err
			return
		}
		for i := 0; i < benchScheduled; i += 1000 {
			evs := make([]queue.Event, 0, 1000)
			for j := i; j < min(i+1000, benchScheduled); j++ {
				evs = append(evs, queue.Event{ID: fmt.Sprintf("s-%d", j), Wait: time.Second})
			}
			if _, err := q.PublishIn(ctx, time.Duration(1+i/1000)*time.Minute, evs...); err != nil {
				benchBed.err = err
				return
			}
		}
		s, err := New(q, queue.RedisConfig{Addr: queue.RedisAddr(srv.Addr)}, Config{Addr: "127.0.0.1:8081", PageSize: 50, SearchLimit: 1000, Refresh: 5 * time.Second}, zap.NewNop())
		if err != nil {
			benchBed.err = err
			return
		}
		benchBed.srv, benchBed.h = srv, s.Handler()
	})
	if benchBed.err != nil {
		b.Fatal(benchBed.err)
	}
	return benchBed.srv, benchBed.h
}

// redisUsec is the Redis time spent since the last CONFIG RESETSTAT, INFO
// itself left out.
func redisUsec(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for line := range strings.SplitSeq(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

func BenchmarkDashboard(b *testing.B) {
	srv, h := seedBench(b)
	rdb := srv.Client()
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"refresh", "/fragment/overview"},
		{"pending_p1", "/state/pending"},
		{"pending_p10000", "/state/pending?page=10000"},
		{"pending_p20000_last", "/state/pending?page=20000"},
		{"dead_p1", "/state/dead"},
		{"dead_p2000_last", "/state/dead?page=2000"},
		{"scheduled_p1", "/state/scheduled"},
		{"scheduled_p2000_last", "/state/scheduled?page=2000"},
		{"processing_p1", "/state/processing"},
		{"processing_p20_last", "/state/processing?page=20"},
		{"find_id_1k_per_state", "/find?q=p-5"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			var bytes int
			b.ResetTimer()
			for range b.N {
				req := httptest.NewRequest("GET", p.path, nil)
				req.Host = "localhost"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%s: %d %s", p.path, w.Code, w.Body.String())
				}
				bytes = w.Body.Len()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
			b.ReportMetric(float64(redisUsec(b, rdb))/float64(b.N), "redis-µs/page")
			b.ReportMetric(float64(bytes), "bytes")
		})
	}
}
