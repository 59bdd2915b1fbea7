// Package timeline records one run on the test bed — the queue's pending,
// processing and dead entries and the ScaledJob's active and completed Jobs
// over time, with the run's events marked — and draws it as a chart: the
// picture the e2e scaling report and `task demo` leave in reports/.
//
// The chart is drawn with gonum/plot (gonum.org/v1/plot): a numeric time
// axis for samples taken at irregular instants, step lines, vertical event
// markers with labels, two panels aligned on one time axis, and SVG or PNG
// from the same code; it is maintained by the Gonum project.
package timeline

import (
	"context"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Sample is the state at one instant.
type Sample struct {
	At                        time.Duration // since the recording started
	Pending, Processing, Dead int64
	ActiveJobs, CompletedJobs int // Jobs running or pending; Jobs Complete
	FailedJobs                int
}

// Mark is a labelled instant (events pushed, a pod killed, drained, ...).
type Mark struct {
	At    time.Duration
	Label string
}

// Timeline is a finished recording.
type Timeline struct {
	Title   string
	Start   time.Time
	Samples []Sample
	Marks   []Mark
}

// Probe reads the current state; At is filled in by the recorder.
type Probe func(context.Context) (Sample, error)

// Recorder samples a probe at a fixed interval until Stop.
type Recorder struct {
	title  string
	start  time.Time
	mu     sync.Mutex
	tl     Timeline
	cancel context.CancelFunc
	done   chan struct{}
}

// Start samples probe now and then every interval, until Stop. A probe
// error skips that sample.
func Start(ctx context.Context, title string, every time.Duration, probe Probe) *Recorder {
	ctx, cancel := context.WithCancel(ctx)
	r := &Recorder{start: time.Now(), cancel: cancel, done: make(chan struct{})}
	r.tl = Timeline{Title: title, Start: r.start}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if s, err := probe(ctx); err == nil {
				s.At = time.Since(r.start)
				r.mu.Lock()
				r.tl.Samples = append(r.tl.Samples, s)
				r.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// Mark labels the current instant.
func (r *Recorder) Mark(label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tl.Marks = append(r.tl.Marks, Mark{At: time.Since(r.start), Label: label})
}

// Stop ends the sampling, waits for it, and returns the recording.
func (r *Recorder) Stop() Timeline {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tl
}

// Write draws the timeline into path (.svg or .png), creating its
// directory.
func (tl Timeline) Write(path string) error {
	if len(tl.Samples) == 0 {
		return fmt.Errorf("chart %s: no samples recorded", path)
	}
	// A colour-blind-safe palette (Okabe–Ito).
	blue, orange, red := color.RGBA{0, 114, 178, 255}, color.RGBA{230, 159, 0, 255}, color.RGBA{213, 94, 0, 255}
	green, grey, purple := color.RGBA{0, 158, 115, 255}, color.RGBA{110, 110, 110, 255}, color.RGBA{204, 121, 167, 255}
	queue, err := tl.panel("queue entries", []series{
		{"pending", blue, func(s Sample) float64 { return float64(s.Pending) }},
		{"processing", orange, func(s Sample) float64 { return float64(s.Processing) }},
		{"dead", red, func(s Sample) float64 { return float64(s.Dead) }},
	})
	if err != nil {
		return err
	}
	queue.Title.Text = tl.Title
	jobs, err := tl.panel("Kubernetes Jobs", []series{
		{"active", green, func(s Sample) float64 { return float64(s.ActiveJobs) }},
		{"completed", grey, func(s Sample) float64 { return float64(s.CompletedJobs) }},
		{"failed", purple, func(s Sample) float64 { return float64(s.FailedJobs) }},
	})
	if err != nil {
		return err
	}
	jobs.X.Label.Text = "seconds since start (" + tl.Start.UTC().Format("2006-01-02 15:04:05 UTC") + ")"
	// One time axis for both panels.
	xmax := max(queue.X.Max, jobs.X.Max)
	queue.X.Max, jobs.X.Max = xmax, xmax
	queue.X.Min, jobs.X.Min = 0, 0

	const w, h = 10 * vg.Inch, 6.5 * vg.Inch
	var c vg.CanvasWriterTo
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		c = vgsvg.New(w, h)
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))}
	default:
		return fmt.Errorf("chart %s: use a .svg or .png file name", path)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10), PadY: vg.Points(10)}
	cs := plot.Align([][]*plot.Plot{{queue}, {jobs}}, tiles, dc)
	queue.Draw(cs[0][0])
	jobs.Draw(cs[1][0])

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return nil
}

type series struct {
	name  string
	color color.Color
	value func(Sample) float64
}

// panel is one plot of some series over time, with the marks as dashed
// vertical lines labelled at the top.
func (tl Timeline) panel(ylabel string, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = ylabel
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.YOffs = -vg.Points(42) // below the marks' labels
	p.Add(plotter.NewGrid())
	top := 1.0
	for _, s := range ss {
		xys := make(plotter.XYs, len(tl.Samples))
		for i, sm := range tl.Samples {
			xys[i] = plotter.XY{X: sm.At.Seconds(), Y: s.value(sm)}
			top = max(top, xys[i].Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("chart series %s: %w", s.name, err)
		}
		l.StepStyle = plotter.PostStep
		l.Color, l.Width = s.color, vg.Points(1.6)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Y.Min, p.Y.Max = 0, top*1.6 // room for the marks' labels and the legend
	for i, m := range tl.Marks {
		x := m.At.Seconds()
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}})
		if err != nil {
			return nil, fmt.Errorf("chart mark %q: %w", m.Label, err)
		}
		l.Color, l.Dashes, l.Width = color.Gray{Y: 90}, []vg.Length{vg.Points(3), vg.Points(3)}, vg.Points(0.8)
		p.Add(l)
		// Labels alternate in height so that close marks stay readable.
		y := p.Y.Max * (0.97 - 0.06*float64(i%3))
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{{X: x, Y: y}}, Labels: []string{" " + m.Label}})
		if err != nil {
			return nil, fmt.Errorf("chart mark %q: %w", m.Label, err)
		}
		lb.TextStyle[0].Font.Size = vg.Points(8)
		p.Add(lb)
	}
	return p, nil
}
