package queue

import (
	"context"
	"testing"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Persistence reports what the server keeps across a restart, and refuses
// quietly (an error, NOPERM) where the ACL user may read neither CONFIG nor
// INFO — the documented application user may not.
func TestPersistence(t *testing.T) {
	cases := []struct {
		name   string
		opts   []redistest.Option
		config [][]string // CONFIG SET pairs before reading
		want   Persistence
	}{
		{name: "AOF always", opts: []redistest.Option{redistest.WithAOF()},
			want: Persistence{AppendOnly: "yes", AppendFsync: "always", Save: ""}},
		{name: "AOF everysec", config: [][]string{{"appendonly", "yes"}, {"appendfsync", "everysec"}},
			want: Persistence{AppendOnly: "yes", AppendFsync: "everysec", Save: "",
				Risk: "Redis persistence: AOF with appendfsync everysec — a Redis crash can lose the last second of writes (published events, claims, acks); use appendfsync always to lose nothing"}},
		{name: "RDB only", config: [][]string{{"save", "900 1"}},
			want: Persistence{AppendOnly: "no", AppendFsync: "everysec", Save: "900 1",
				Risk: "Redis persistence: RDB snapshots only (no AOF) — a Redis restart goes back to the last snapshot: events published since are lost, events in flight vanish or are delivered again; use appendonly yes with appendfsync always"}},
		{name: "none", want: Persistence{AppendOnly: "no", AppendFsync: "everysec", Save: "",
			Risk: "Redis has no persistence (appendonly no, no RDB snapshots) — a Redis restart loses every event, pending and in flight; use appendonly yes with appendfsync always"}},
		{name: "INFO only", opts: []redistest.Option{redistest.WithUser("reader", "pw", "~*", "-@all", "+info")},
			want: Persistence{AppendOnly: "no", AppendFsync: "?", Save: "?",
				Risk: "Redis reports AOF off (appendonly no) — a Redis restart loses every event written since its last RDB snapshot, if any; use appendonly yes with appendfsync always"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, tc.opts...)
			for _, kv := range tc.config {
				srv.Do("CONFIG", "SET", kv[0], kv[1])
			}
			rdb := srv.Client()
			if tc.name == "INFO only" {
				rdb = redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "reader", Password: "pw", MaxRetries: -1})
				t.Cleanup(func() { _ = rdb.Close() })
			}
			q, _ := newQueueOn(t, rdb)
			got, err := q.Persistence(context.Background())
			if err != nil || got != tc.want {
				t.Errorf("Persistence = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
	t.Run("NOPERM", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithUser("app", "pw", "~*", "-@all", "+ping", "+eval", "+evalsha"))
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "app", Password: "pw", MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		q, _ := newQueueOn(t, rdb)
		if _, err := q.Persistence(context.Background()); err == nil {
			t.Fatal("Persistence read through a user without CONFIG and INFO")
		}
	})
}
