package timeline

import (
	"context"
	"encoding/xml"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRecordAndDraw(t *testing.T) {
	var n atomic.Int64
	r := Start(context.Background(), "burst of 30 events", 5*time.Millisecond, func(context.Context) (Sample, error) {
		i := n.Add(1)
		return Sample{Pending: max(30-i, 0), Processing: min(i, 10), ActiveJobs: int(min(i, 10)), CompletedJobs: int(i)}, nil
	})
	r.Mark("30 events pushed")
	time.Sleep(60 * time.Millisecond)
	r.Mark("first Job")
	time.Sleep(40 * time.Millisecond)
	r.Mark("drained")
	tl := r.Stop()
	after := len(tl.Samples)
	time.Sleep(20 * time.Millisecond)
	if len(r.Stop().Samples) != after {
		t.Error("the recorder kept sampling after Stop")
	}
	if after < 5 || len(tl.Marks) != 3 || tl.Marks[1].At < 50*time.Millisecond || tl.Samples[0].At > tl.Samples[after-1].At {
		t.Fatalf("recorded %d samples, marks %+v", after, tl.Marks)
	}

	dir := t.TempDir()
	svg := filepath.Join(dir, "reports", "run.svg")
	if err := tl.Write(svg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, new(struct{ XMLName xml.Name })); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	text := string(b)
	for _, want := range []string{"<svg", "burst of 30 events", "pending", "processing", "dead", "active", "completed", "failed", "first Job", "drained", "Kubernetes Jobs"} {
		if !strings.Contains(text, want) {
			t.Errorf("SVG has no %q", want)
		}
	}

	pngPath := filepath.Join(dir, "run.png")
	if err := tl.Write(pngPath); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 715 {
		t.Errorf("PNG is %dx%d, want 1100x715 (10 x 6.5 in at 110 dpi)", b.Dx(), b.Dy())
	}

	if err := tl.Write(filepath.Join(dir, "run.gif")); err == nil || !strings.Contains(err.Error(), "use a .svg or .png") {
		t.Errorf("gif: %v", err)
	}
	if err := (Timeline{}).Write(filepath.Join(dir, "empty.svg")); err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Errorf("empty: %v", err)
	}
}
