package ui

import (
	"fmt"

	"github.com/redis-keda/redis-keda/queue"
)

// chart is the overview's bar chart of acked / retried / dead per minute,
// drawn as SVG by overviewBody (presentation attributes only: the CSP
// allows no inline style).
type chart struct {
	W, H    int
	Bars    []bar
	Max     int64
	Known   int
	Minutes int
	First   string
	Last    string
	Total   [3]int64
}

// bar is one minute: three stacked rectangles, or a grey mark when no
// sample exists for it.
type bar struct {
	X, W                 int
	Acked, Retried, Dead seg
	Unknown              bool
	Title                string
}

type seg struct{ Y, H int }

const chartW, chartH, barW = 720, 140, 12

func makeChart(hist []queue.Minute) chart {
	c := chart{W: chartW, H: chartH, Minutes: len(hist)}
	for _, m := range hist {
		c.Max = max(c.Max, m.Acked+m.Retried+m.Dead)
	}
	scale := func(n int64) int {
		if c.Max == 0 {
			return 0
		}
		return int(n * int64(chartH-10) / c.Max)
	}
	for i, m := range hist {
		b := bar{X: i * barW, W: barW - 2, Unknown: !m.Known}
		t := m.Start.UTC().Format("15:04")
		if !m.Known {
			b.Title = t + ": no sample (no dashboard or publisher ran)"
			c.Bars = append(c.Bars, b)
			continue
		}
		c.Known++
		c.Total[0] += m.Acked
		c.Total[1] += m.Retried
		c.Total[2] += m.Dead
		y := chartH
		stack := func(n int64) seg {
			h := scale(n)
			y -= h
			return seg{Y: y, H: h}
		}
		b.Acked, b.Retried, b.Dead = stack(m.Acked), stack(m.Retried), stack(m.Dead)
		b.Title = fmt.Sprintf("%s: %d acked, %d retried, %d dead", t, m.Acked, m.Retried, m.Dead)
		c.Bars = append(c.Bars, b)
	}
	if len(hist) > 0 {
		c.First, c.Last = hist[0].Start.UTC().Format("15:04"), hist[len(hist)-1].Start.UTC().Format("15:04")
	}
	return c
}
