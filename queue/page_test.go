package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPageAndSearch(t *testing.T) {
	q, rdb := newTestQueue(t, func(c *Config) { c.MaxAttempts = 1 })
	ctx := context.Background()
	for i := range 3 { // dead: d-0 (oldest) .. d-2 (newest)
		if err := q.PublishRaw(ctx, fmt.Appendf(nil, `{"id":"d-%d","wait":1,"q":"say \"hi\""}`, i)); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Nack(ctx, claim(t, q), "boom"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 { // pending: p-0 is the next to be claimed
		if err := q.PublishRaw(ctx, fmt.Appendf(nil, `{"id":"p-%d","wait":1}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(es []Entry) (out []string) {
		for _, e := range es {
			out = append(out, fmt.Sprintf("%d:%s", e.Position, e.ID))
		}
		return out
	}
	for _, tc := range []struct {
		loc       Location
		off, n    int
		want      string
		wantTotal int64
	}{
		{LocPending, 0, 3, "[1:p-0 2:p-1 3:p-2]", 7},
		{LocPending, 6, 3, "[7:p-6]", 7},
		{LocPending, 7, 3, "[]", 7},
		{LocDead, 0, 2, "[1:d-2 2:d-1]", 3},
		{LocDead, 2, 2, "[3:d-0]", 3},
	} {
		res, err := q.Page(ctx, tc.loc, tc.off, tc.n, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Entries)); got != tc.want || res.Total != tc.wantTotal {
			t.Errorf("Page(%s, %d, %d) = %s of %d, want %s of %d", tc.loc, tc.off, tc.n, got, res.Total, tc.want, tc.wantTotal)
		}
	}
	for _, tc := range []struct {
		loc     Location
		text    string
		limit   int
		want    string
		scanned int
	}{
		{LocPending, "p-3", 10, "[4:p-3]", 7},
		{LocPending, "p-5", 3, "[]", 3}, // bounded: p-5 is the 6th
		{LocDead, `say \"hi\"`, 10, "[1:d-2 2:d-1 3:d-0]", 3},
		{LocDead, "d-1", 10, "[2:d-1]", 3},
	} {
		res, err := q.Search(ctx, tc.loc, tc.text, tc.limit, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Matches)); got != tc.want || res.Scanned != tc.scanned {
			t.Errorf("Search(%s, %q, %d) = %s, scanned %d; want %s, %d", tc.loc, tc.text, tc.limit, got, res.Scanned, tc.want, tc.scanned)
		}
	}
	// History: two samples a minute apart give that minute's deltas.
	now := time.Now().Truncate(time.Minute)
	m0, m1 := now.Add(-2*time.Minute).UnixMilli(), now.Add(-time.Minute).UnixMilli()
	rdb.ZAdd(ctx, historyKey("events"), redisZ(m0, fmt.Sprintf("%d 10 2 1 0 0", m0)), redisZ(m1, fmt.Sprintf("%d 15 3 1 1 2", m1)))
	h, err := q.History(ctx, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Known || !h[1].Known || h[1].Acked != 5 || h[1].Retried != 3 || h[1].Dead != 1 || h[2].Known {
		t.Errorf("History = %+v, want [unknown, 5 acked 3 retried 1 dead, unknown]", h)
	}
	if ok, err := q.SampleHistory(ctx); !ok || err != nil {
		t.Errorf("first sample this minute = %v, %v; want true", ok, err)
	}
	if ok, err := q.SampleHistory(ctx); ok || err != nil {
		t.Errorf("second sample this minute = %v, %v; want false", ok, err)
	}
}

func redisZ(score int64, member string) redis.Z {
	return redis.Z{Score: float64(score), Member: member}
}
