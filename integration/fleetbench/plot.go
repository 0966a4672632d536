package fleetbench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot draws every rollout's per-host completion times, sorted, so each
// curve reads "k hosts had the whole image after t seconds", with the
// physical limit as a flat line, and saves it as a PNG at path. The
// single-host rollouts (-single) are left out: a point each, they are the
// table's last line.
func (r Report) Plot(path string) error {
	p := plot.New()
	c := r.Config
	p.Title.Text = fmt.Sprintf("%d hosts, %.0f MiB image, %s links: per-host completion", c.Nodes, float64(c.Size)/mib, c.Link)
	p.X.Label.Text = "hosts done (sorted)"
	p.Y.Label.Text = "seconds since the common start"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	var slowest time.Duration
	for _, m := range r.Results {
		if ModeOf(m.Mode).Single {
			continue
		}
		slowest = max(slowest, m.AllDone())
		done := slices.Sorted(slices.Values(m.Done()))
		pts := make(plotter.XYs, len(done))
		for i, d := range done {
			pts[i] = plotter.XY{X: float64(i + 1), Y: d.Seconds()}
		}
		name := m.Mode
		if c.Runs > 1 {
			name = fmt.Sprintf("%s run %d", m.Mode, m.Run)
		}
		lines = append(lines, name, pts)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	sw := c.PrimarySwarm()
	limit := c.Limit(sw, int64(r.median(sw, imageBytes)))
	flat := plotter.NewFunction(func(float64) float64 { return limit.Seconds() })
	flat.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(flat)
	p.Legend.Add(fmt.Sprintf("physical limit (%s) %.2f s", sw, limit.Seconds()), flat)
	p.X.Min, p.X.Max = 0.5, float64(c.Nodes)+0.5
	// Headroom above the slowest host keeps the legend off the curves.
	p.Y.Max = max(slowest, limit).Seconds() * (1.15 + 0.07*float64(len(r.Results)))
	p.X.Tick.Marker = hostTicks{}
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return fmt.Errorf("plot: save %s: %w", path, err)
	}
	return nil
}

// hostTicks labels whole hosts only, at most about ten of them.
type hostTicks struct{}

func (hostTicks) Ticks(lo, hi float64) []plot.Tick {
	step := max(1, int(math.Ceil((hi-lo)/10)))
	var ticks []plot.Tick
	for n := step; float64(n) <= hi; n += step {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	return ticks
}
