package fleetbench

import (
	"fmt"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// SweepPoint is one fleet size of a sweep: medians over its runs of the
// all-done, p50 and p95 times, each over the limit.
type SweepPoint struct {
	Nodes, Runs       int
	AllDone, P50, P95 float64 // x limit
	AllDoneSeconds    float64
}

// Sweep summarizes the swarm rollouts by fleet size, smallest first.
func (r Report) Sweep() []SweepPoint {
	sw := r.Config.PrimarySwarm()
	byNodes := map[int][]ModeResult{}
	for _, m := range r.Results {
		if m.Mode == sw {
			byNodes[m.Nodes] = append(byNodes[m.Nodes], m)
		}
	}
	var pts []SweepPoint
	for n, ms := range byNodes {
		sub := Report{Config: r.Config, Results: ms}
		limit := r.Config.Limit(sw, int64(sub.median(sw, imageBytes))).Seconds()
		at := func(p float64) func(ModeResult) float64 {
			return func(m ModeResult) float64 { return Percentile(m.Done(), p).Seconds() }
		}
		all := sub.median(sw, allDoneSeconds)
		pts = append(pts, SweepPoint{Nodes: n, Runs: len(ms), AllDoneSeconds: all,
			AllDone: all / limit, P50: sub.median(sw, at(50)) / limit, P95: sub.median(sw, at(95)) / limit})
	}
	slices.SortFunc(pts, func(a, b SweepPoint) int { return a.Nodes - b.Nodes })
	return pts
}

// GrowthPerDoubling is how much y grows, in x limit, each time the fleet
// doubles: the least-squares slope of y against log2 of the fleet size.
// Zero with fewer than two sizes.
func GrowthPerDoubling(pts []SweepPoint, y func(SweepPoint) float64) float64 {
	if len(pts) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range pts {
		x := math.Log2(float64(p.Nodes))
		sx, sy, sxx, sxy = sx+x, sy+y(p), sxx+x*x, sxy+x*y(p)
	}
	n := float64(len(pts))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func allDoneX(p SweepPoint) float64 { return p.AllDone }
func p50X(p SweepPoint) float64     { return p.P50 }
func p95X(p SweepPoint) float64     { return p.P95 }

// WriteSweep prints the sweep: per fleet size the medians over the limit,
// then their growth per doubling of the fleet.
func (r Report) WriteSweep(w io.Writer) {
	c := r.Config
	pts := r.Sweep()
	if len(pts) == 0 {
		fmt.Fprintln(w, "\nsweep: no rollouts")
		return
	}
	fmt.Fprintf(w, "\nsweep: %s, image %.1f MiB in %d layers, host links %s, origin %s, tracker %s; limit %.2f s; medians over runs\n",
		c.PrimarySwarm(), float64(c.Size)/mib, c.Layers, c.Link, c.OriginLink, c.TrackerLink, c.Limit(c.PrimarySwarm(), c.Size).Seconds())
	fmt.Fprintf(w, "%6s %5s %10s %9s %9s %9s\n", "hosts", "runs", "all done", "x limit", "p50 x", "p95 x")
	for _, p := range pts {
		fmt.Fprintf(w, "%6d %5d %8.2f s %9.2f %9.2f %9.2f\n", p.Nodes, p.Runs, p.AllDoneSeconds, p.AllDone, p.P50, p.P95)
	}
	fmt.Fprintf(w, "growth per doubling of the fleet (x limit): all done %+.3f, p50 %+.3f, p95 %+.3f\n",
		GrowthPerDoubling(pts, allDoneX), GrowthPerDoubling(pts, p50X), GrowthPerDoubling(pts, p95X))
}

// PlotSweep draws time over the limit against the fleet size (p50, p95,
// all done) and saves it as a PNG at path.
func (r Report) PlotSweep(path string) error {
	c := r.Config
	pts := r.Sweep()
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%.0f MiB image, %s links: time / limit against fleet size", float64(c.Size)/mib, c.Link)
	p.X.Label.Text = "hosts"
	p.Y.Label.Text = "time / physical limit"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sweepTicks(pts)
	p.Y.Min = 0
	p.Legend.Top, p.Legend.Left = true, true
	var lines []any
	highest := 1.0
	for _, s := range []struct {
		name string
		y    func(SweepPoint) float64
	}{{"all done", allDoneX}, {"p95", p95X}, {"p50", p50X}} {
		xy := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xy[i] = plotter.XY{X: float64(pt.Nodes), Y: s.y(pt)}
			highest = max(highest, s.y(pt))
		}
		lines = append(lines, s.name, xy)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(one)
	p.Legend.Add("the limit", one)
	p.Y.Max = highest * 1.3
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return fmt.Errorf("plot: save %s: %w", path, err)
	}
	return nil
}

// sweepTicks labels the fleet sizes that ran.
func sweepTicks(pts []SweepPoint) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for _, p := range pts {
		ticks = append(ticks, plot.Tick{Value: float64(p.Nodes), Label: fmt.Sprint(p.Nodes)})
	}
	return ticks
}
