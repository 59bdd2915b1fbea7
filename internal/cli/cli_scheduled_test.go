package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

// The scheduled set through the CLI: stats counts it with its overdue part,
// peek scheduled lists it earliest due first, redrive --scheduled makes an
// event due now, purge scheduled deletes the set.
func TestScheduledCommands(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.rdb.Time(ctx).Val().Truncate(time.Millisecond)
	due := now.Add(time.Hour)
	f.rdb.ZAdd(ctx, "{events}:scheduled",
		redis.Z{Score: float64(now.Add(-90 * time.Second).UnixMilli()), Member: `n0 {"id":"late","wait":1}`},
		redis.Z{Score: float64(due.UnixMilli()), Member: `n1 {"id":"later","wait":1}`})

	code, out, _ := f.run(t, "stats")
	if want := "  scheduled             2   1 overdue, the earliest due 1m30s ago (not moved yet: is a publisher running?)\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("stats: exit %d\n%s\nwant a line %q", code, out, want)
	}

	code, out, _ = f.run(t, "peek", "scheduled")
	want := fmt.Sprintf(`POS  ID     REF            ATTEMPTS  DUE AT                    SIZE  PAYLOAD
1    late   %s  0         %s  22    {"id":"late","wait":1}
2    later  %s  0         %s  23    {"id":"later","wait":1}
`, ref(`n0 {"id":"late","wait":1}`), stamp(now.Add(-90*time.Second)), ref(`n1 {"id":"later","wait":1}`), stamp(due))
	if code != 0 || out != want {
		t.Errorf("peek scheduled: exit %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = f.run(t, "redrive", "--scheduled", "later")
	if want := "made due later " + ref(`n1 {"id":"later","wait":1}`) + "\n1 scheduled events made due now; the mover moves them to events at its next run\n"; code != 0 || out != want {
		t.Errorf("redrive --scheduled later: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if s := f.rdb.ZScore(ctx, "{events}:scheduled", `n1 {"id":"later","wait":1}`).Val(); s > float64(f.rdb.Time(ctx).Val().UnixMilli()) {
		t.Errorf("later is due at %v, want now", s)
	}
	code, _, errOut := f.run(t, "redrive", "--scheduled", "nosuch")
	if code != ExitNotFound || errOut != "redis-keda redrive --scheduled: no scheduled event matched (peek scheduled lists them)\n" {
		t.Errorf("redrive --scheduled nosuch: exit %d, %q", code, errOut)
	}

	code, _, errOut = f.run(t, "purge", "scheduled")
	if code != ExitUsage || errOut != "redis-keda purge: refusing to delete the 2 scheduled events of queue events for good without --yes; nothing was deleted\n" {
		t.Errorf("purge scheduled: exit %d, %q", code, errOut)
	}
	code, out, _ = f.run(t, "purge", "scheduled", "--yes")
	if code != 0 || out != "purged 2 scheduled events of queue events\n" || f.rdb.Exists(ctx, "{events}:scheduled").Val() != 0 {
		t.Errorf("purge scheduled --yes: exit %d, %q", code, out)
	}
	s, _ := f.q.Snapshot(ctx, queue.SnapshotOptions{})
	if s.Counters["purged_scheduled"] != 2 || s.Counters["scheduled_redriven"] != 1 {
		t.Errorf("counters %v", s.Counters)
	}
}
