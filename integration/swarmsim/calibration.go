package swarmsim

import "slices"

// A Measurement is one shape the fleet bench rolled out, with the tracker
// on its own host (-topology separate), and the all-done times of its
// runs in seconds (where only a range was reported, its two ends).
type Measurement struct {
	Shape  Shape
	Runs   []float64
	Source string // commit, and what to know about the runs
	// Gap, when set, says why the model is known to miss this shape by
	// more than Tolerance; the cross-check then insists that it still
	// does, so the note goes when the model or the bench catches up.
	Gap string
}

// Tolerance is how far a prediction may be from a measured median, as a
// share of the median.
const Tolerance = 0.15

// Median is the runs' median.
func (m Measurement) Median() float64 { return Median(m.Runs) }

// Median is the middle of xs, or the mean of the middle two of an even
// count.
func Median(xs []float64) float64 {
	r := slices.Sorted(slices.Values(xs))
	n := len(r)
	if n%2 == 1 {
		return r[n/2]
	}
	return (r[n/2-1] + r[n/2]) / 2
}

const (
	mib  = 1 << 20
	mbps = 1e6
)

// shapeOf is a shape in the units the fleet bench is run with: the image
// in MiB, links in Mbit/s (host, origin, tracker).
func shapeOf(hosts, layers int, imageMiB int64, host, origin, tracker float64) Shape {
	return Shape{hosts, layers, imageMiB * mib, host * mbps, origin * mbps, tracker * mbps}
}

// Measured is every fleet bench result the simulator is checked against
// (TestCrossCheck), one line a shape. The first calibrates Params.StartUp.
var Measured = []Measurement{
	{Shape: shapeOf(1, 2, 64, 100, 100, 100), Runs: []float64{5.71, 5.79}, Source: "issue 14 session: one host alone through the swarm (-single), 5.71-5.79 s"},
	{Shape: shapeOf(2, 2, 64, 100, 100, 100), Runs: []float64{5.95, 6.03}, Source: "issue 14 session: 5.95-6.03 s"},
	{Shape: shapeOf(8, 2, 64, 100, 100, 100), Runs: []float64{6.98, 6.98, 6.76}, Source: "issue 14 session: 3 runs"},
	{Shape: shapeOf(8, 1, 128, 100, 100, 100), Runs: []float64{13.05, 13.25}, Source: "issue 14 session: 13.05-13.25 s"},
	{Shape: shapeOf(8, 2, 64, 100, 50, 100), Runs: []float64{11.77, 12.04}, Source: "issue 14 session: 11.77-12.04 s"},
	{Shape: shapeOf(4, 2, 16, 10, 100, 100), Runs: []float64{15.35, 15.32, 15.67}, Source: "sweep 18e0b5e (spare offers, 6 connections), 3 runs, quiet machine (CPU 4-5%)"},
	{Shape: shapeOf(8, 2, 16, 10, 100, 100), Runs: []float64{16.09, 16.27, 15.89}, Source: "sweep 18e0b5e, 3 runs, CPU 8-11%"},
	{Shape: shapeOf(16, 2, 16, 10, 100, 100), Runs: []float64{16.33, 16.28, 16.20}, Source: "sweep 18e0b5e, 3 runs, CPU 17-22%"},
	{Shape: shapeOf(32, 2, 16, 10, 100, 100), Runs: []float64{16.99, 17.46, 17.71}, Source: "sweep 18e0b5e, 3 runs, CPU 33-44%"},
	{Shape: shapeOf(64, 2, 16, 10, 100, 100), Runs: []float64{19.25, 18.59, 18.73}, Source: "sweep 18e0b5e, 3 runs, CPU 79-82%: the emulation is near CPU-bound"},
}
