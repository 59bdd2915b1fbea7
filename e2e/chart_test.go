//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/e2e/timeline"
)

// chart records the queue and the Jobs KEDA creates from now on, once every
// 250 ms, for the picture of a run. mark labels an instant; finish stops the
// recording, marks the first Job, writes reports/<name>-<time>.svg (and a
// .png of it) at the repository root and returns that path (relative to the root) for the
// report's last line.
func (b *bed) chart(ctx context.Context, t *testing.T, name, title string) (mark func(string), finish func() string) {
	t.Helper()
	since := time.Now()
	rec := timeline.Start(ctx, title, 250*time.Millisecond, func(ctx context.Context) (timeline.Sample, error) {
		st, err := b.q.Stats(ctx)
		if err != nil {
			return timeline.Sample{}, err
		}
		s := timeline.Sample{Pending: st.Pending, Processing: st.Processing, Dead: st.Dead}
		for _, j := range b.rec.jobsSince(since) {
			switch {
			case j.failed:
				s.FailedJobs++
			case j.complete:
				s.CompletedJobs++
			default:
				s.ActiveJobs++
			}
		}
		return s, nil
	})
	finish = func() string {
		tl := rec.Stop()
		if jobs := b.rec.jobsSince(since); len(jobs) > 0 {
			tl.Marks = append(tl.Marks, timeline.Mark{At: jobs[0].created.Sub(since), Label: "first Job"})
		}
		rel := filepath.Join("reports", fmt.Sprintf("%s-%s.svg", name, since.UTC().Format("20060102-150405")))
		for _, p := range []string{rel, strings.TrimSuffix(rel, ".svg") + ".png"} {
			if err := tl.Write(filepath.Join("..", p)); err != nil {
				t.Errorf("chart: %v", err)
				return "(none: " + err.Error() + ")"
			}
		}
		return rel + " (and .png)"
	}
	return rec.Mark, finish
}
