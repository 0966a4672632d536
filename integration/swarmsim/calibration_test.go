package swarmsim

import (
	"math"
	"testing"
)

// TestCrossCheck runs the model on every shape the fleet bench measured
// and fails where it is more than Tolerance off the measured median.
func TestCrossCheck(t *testing.T) {
	for _, m := range Measured {
		r, err := Run(m.Shape, Defaults())
		if err != nil {
			t.Fatalf("%v: %v", m.Shape, err)
		}
		off := r.AllDone()/m.Median() - 1
		t.Logf("%v: measured %.2f s, model %.2f s (%+.1f%%)", m.Shape, m.Median(), r.AllDone(), 100*off)
		switch within := math.Abs(off) <= Tolerance; {
		case m.Gap == "" && !within:
			t.Errorf("%v: model %.2f s is %+.1f%% off the measured %.2f s (%s)", m.Shape, r.AllDone(), 100*off, m.Median(), m.Source)
		case m.Gap != "" && within:
			t.Errorf("%v: model %.2f s is within %.0f%% of the measured %.2f s now: drop its Gap note", m.Shape, r.AllDone(), 100*Tolerance, m.Median())
		case m.Gap != "":
			t.Logf("known gap: %s", m.Gap)
		}
	}
}

// TestStartUpIsCalibrated checks Defaults().StartUp against the one shape
// it is fitted on, one host alone: the model must meet it within 1%.
func TestStartUpIsCalibrated(t *testing.T) {
	m := Measured[0]
	if m.Shape.Hosts != 1 {
		t.Fatalf("Measured[0] is %v, not one host alone", m.Shape)
	}
	r, err := Run(m.Shape, Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if off := r.AllDone()/m.Median() - 1; math.Abs(off) > 0.01 {
		t.Errorf("one host alone: model %.3f s, measured %.3f s (%+.1f%%): calibrate StartUp again", r.AllDone(), m.Median(), 100*off)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		runs []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{7, 5, 6}, 6}, {[]float64{2, 1}, 1.5}} {
		if got := (Measurement{Runs: tc.runs}).Median(); got != tc.want {
			t.Errorf("median of %v = %g, want %g", tc.runs, got, tc.want)
		}
	}
}
