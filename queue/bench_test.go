package queue

// Benchmarks against a real redis-server (redistest.Start), one fresh server
// per benchmark. They measure, they assert nothing about speed: run them with
//
//	go test -run '^$' -bench . -benchtime 2000x ./queue/
//
// scripts/bench.sh puts the same operations side by side with
// redis-benchmark's raw LPUSH and RPOPLPUSH on one server.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// benchQueue starts a fresh redis-server and returns a queue on it whose
// leases outlive any benchmark (nothing expires, the reaper finds nothing).
func benchQueue(b *testing.B) *Queue {
	b.Helper()
	srv := redistest.Start(b)
	q, err := New(srv.Client(), Config{Name: "bench", LeaseDuration: time.Hour, MaxAttempts: 5, MaxWait: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// fill publishes n events of wait 0 in batches of 1000.
func fill(b *testing.B, q *Queue, n int) {
	b.Helper()
	ctx := context.Background()
	batch := make([]Event, 1000)
	for n > 0 {
		k := min(n, len(batch))
		if _, err := q.Publish(ctx, batch[:k]...); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}

// perSecond reports count/elapsed as a custom metric named unit.
func perSecond(b *testing.B, count int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(count)/s, unit)
	}
}

// BenchmarkPublish: one Publish call (one multi-value LPUSH) per op, the
// events marshalled with fresh IDs as the publisher does.
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			q := benchQueue(b)
			ctx := context.Background()
			batch := make([]Event, size)
			for i := range batch {
				batch[i] = Event{Wait: 17 * time.Second}
			}
			for b.Loop() {
				if _, err := q.Publish(ctx, batch...); err != nil {
					b.Fatal(err)
				}
			}
			perSecond(b, b.N*size, "events/s")
		})
	}
}

// BenchmarkClaimAck: one consumer, one Claim (BRPOPLPUSH + lease script)
// and one Ack (script) per op, on a pending list pre-filled with b.N events.
func BenchmarkClaimAck(b *testing.B) {
	q := benchQueue(b)
	fill(b, q, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		d, err := q.Claim(ctx, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ack(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perSecond(b, b.N, "cycles/s")
}

// BenchmarkClaimAckParallel: the same cycle from 4*GOMAXPROCS consumers
// sharing one client (its pool is larger than that).
func BenchmarkClaimAckParallel(b *testing.B) {
	q := benchQueue(b)
	fill(b, q, b.N)
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, err := q.Claim(ctx, time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if err := q.Ack(ctx, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	perSecond(b, b.N, "cycles/s")
}

// BenchmarkReap: the cost of one Reap pass over a processing list of N
// leased entries, none expired (the steady state of a busy queue: the pass
// finds nothing to do).
func BenchmarkReap(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("in_flight=%d", n), func(b *testing.B) {
			q := benchQueue(b)
			fill(b, q, n)
			ctx := context.Background()
			for range n {
				if _, err := q.Claim(ctx, time.Second); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				res, err := q.Reap(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if res != (ReapResult{}) {
					b.Fatalf("reap moved events that hold live leases: %+v", res)
				}
			}
		})
	}
}

// BenchmarkDecodeEvent: parsing and validating a publisher payload, no Redis.
func BenchmarkDecodeEvent(b *testing.B) {
	payload := Event{
		ID:          newID(),
		Wait:        17 * time.Second,
		PublishedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC),
	}.Marshal()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(payload, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
