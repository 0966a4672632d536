package swarmsim

import (
	"math"
	"testing"
)

func TestAllocateIsMaxMinFair(t *testing.T) {
	for _, tc := range []struct {
		name  string
		caps  []float64
		flows [][2]int
		want  []float64
	}{
		{"one flow gets the slower of its links", []float64{10, 4}, [][2]int{{0, 1}}, []float64{4}},
		{"two flows share an uplink evenly", []float64{10, 100, 100}, [][2]int{{0, 1}, {0, 2}}, []float64{5, 5}},
		{
			// Link 0 (cap 10) carries flows a and b; b also crosses link
			// 2 (cap 2), so b gets 2 and a the 8 left, not 5 each.
			"a flow held back elsewhere leaves its share to the others",
			[]float64{10, 100, 2}, [][2]int{{0, 1}, {0, 2}}, []float64{8, 2},
		},
		{
			// Three uploaders into one downlink of 9: 3 each, though one
			// uploader could send 10.
			"a downlink shared by three uploaders",
			[]float64{10, 10, 10, 9}, [][2]int{{0, 3}, {1, 3}, {2, 3}}, []float64{3, 3, 3},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float64, len(tc.flows))
			var fs fairShare
			fs.allocate(tc.caps, tc.flows, got)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("rates %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestAllocateNeverOverfillsALink(t *testing.T) {
	caps := []float64{7, 3, 5, 11, 2}
	flows := [][2]int{{0, 1}, {0, 2}, {0, 3}, {3, 1}, {3, 2}, {4, 1}, {4, 0}, {2, 3}}
	rates := make([]float64, len(flows))
	var fs fairShare
	fs.allocate(caps, flows, rates)
	used := make([]float64, len(caps))
	for i, f := range flows {
		used[f[0]] += rates[i]
		used[f[1]] += rates[i]
	}
	for l := range caps {
		if used[l] > caps[l]+1e-9 {
			t.Errorf("link %d carries %g, more than its %g", l, used[l], caps[l])
		}
	}
	// Max-min: every flow has a full link on which no other flow gets
	// more than it does.
	for i, f := range flows {
		bottleneck := false
		for _, l := range f {
			if used[l] < caps[l]-1e-9 {
				continue
			}
			most := 0.0
			for j, g := range flows {
				if g[0] == l || g[1] == l {
					most = max(most, rates[j])
				}
			}
			bottleneck = bottleneck || rates[i] >= most-1e-9
		}
		if !bottleneck {
			t.Errorf("flow %d at %g has no bottleneck link: it could get more", i, rates[i])
		}
	}
}
