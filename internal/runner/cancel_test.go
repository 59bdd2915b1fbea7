package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis-keda/redis-keda/queue"
)

// An operator's cancel (queue.Cancel, `redis-keda cancel`, the dashboard)
// reaches the program: the job's heartbeat sees it, the runner sends
// SIGTERM to the program's process group, and the event is dead-lettered
// with reason "cancelled by operator", payload byte for byte.
func TestOperatorCancelSignalsTheProgram(t *testing.T) {
	const payload = `{"id":"render-9","frames":900}`
	f := newFixture(t, 5)
	f.publish(t, payload)
	p := f.sh(t, `trap 'touch "$OUT/term"; exit 3' TERM; touch "$OUT/ready"; while :; do sleep 0.1; done`)
	waitFile(t, p, filepath.Join(f.dir, "ready"))
	sel, err := queue.ParseSelector("render-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Cancel(context.Background(), sel); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.output())
	}
	if _, err := os.Stat(filepath.Join(f.dir, "term")); err != nil {
		t.Errorf("the program got no SIGTERM (no $OUT/term)\n%s", p.output())
	}
	if got := f.deadReasons(t); len(got) != 1 || got[0] != queue.CancelReason {
		t.Errorf("dead reasons %q, want [%q]", got, queue.CancelReason)
	}
	dls, err := f.q.DeadLetters(context.Background(), 1)
	if err != nil || len(dls) != 1 || string(dls[0].Payload) != payload {
		t.Errorf("dead letter %+v, %v; want the payload byte for byte", dls, err)
	}
	if got := counters(f.stats(t)); !equalMaps(got, map[string]int64{"dead": 1}) {
		t.Errorf("counters %v, want dead 1", got)
	}
	if len(p.lines("event cancelled by an operator; SIGTERM to the program's process group")) != 1 || len(p.lines("event cancelled")) != 2 {
		t.Errorf("want the runner's SIGTERM line and the worker's outcome line\n%s", p.output())
	}
}
