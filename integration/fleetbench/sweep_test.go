package fleetbench

import (
	"flag"
	"math"
	"strings"
	"testing"
	"time"
)

func TestGrowthPerDoubling(t *testing.T) {
	var pts []SweepPoint
	for i, n := range []int{4, 8, 16, 32, 64} {
		pts = append(pts, SweepPoint{Nodes: n, AllDone: 1.2 + 0.25*float64(i), P50: 1.1})
	}
	if g := GrowthPerDoubling(pts, allDoneX); math.Abs(g-0.25) > 1e-9 {
		t.Errorf("all done growing 0.25 per doubling: slope %v", g)
	}
	if g := GrowthPerDoubling(pts, p50X); math.Abs(g) > 1e-9 {
		t.Errorf("flat p50: slope %v", g)
	}
	if g := GrowthPerDoubling(pts[:1], allDoneX); g != 0 {
		t.Errorf("one fleet size: slope %v, want 0", g)
	}
}

// A sweep's rollouts are summed up per fleet size, each over the same
// limit, medians over the runs.
func TestSweepGroupsByFleetSize(t *testing.T) {
	c := Defaults()
	c.Size, c.Sweep = 12_500_000, []int{2, 4}
	c = c.WithDefaults()
	at := func(nodes, run int, done ...time.Duration) ModeResult {
		m := ModeResult{Mode: Swarm, Run: run, Nodes: nodes, ImageBytes: 12_500_000}
		for _, d := range done {
			m.Hosts = append(m.Hosts, HostResult{Done: d})
		}
		return m
	}
	r := Report{Config: c, Results: []ModeResult{
		at(4, 1, 1*time.Second, 2*time.Second, 2*time.Second, 3*time.Second),
		at(2, 1, 1*time.Second, 1500*time.Millisecond),
		at(2, 2, 1*time.Second, 1100*time.Millisecond),
		at(4, 2, 1*time.Second, 1*time.Second, 2*time.Second, 4*time.Second),
		at(2, 3, 1*time.Second, 1300*time.Millisecond),
	}}
	pts := r.Sweep()
	if len(pts) != 2 || pts[0].Nodes != 2 || pts[1].Nodes != 4 || pts[0].Runs != 3 || pts[1].Runs != 2 {
		t.Fatalf("sweep points %+v, want 2 hosts (3 runs) then 4 (2 runs)", pts)
	}
	// The limit is 1 s: 12.5 MB at 100 Mbit/s.
	if pts[0].AllDone != 1.3 || pts[1].AllDone != 3.5 || pts[1].P50 != 1.5 {
		t.Errorf("medians %+v, want all done 1.3x and 3.5x, p50 of 4 hosts 1.5x", pts)
	}
	var out strings.Builder
	r.WriteSweep(&out)
	if !strings.Contains(out.String(), "growth per doubling of the fleet (x limit): all done +2.200") {
		t.Errorf("sweep table:\n%s", out.String())
	}
}

func TestSweepFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	c.Bind(fs)
	if err := fs.Parse([]string{"-sweep", "4, 8,16", "-single"}); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if c.Nodes != 16 || !c.SwarmOnly || c.Single || len(c.Fleets()) != 3 {
		t.Errorf("after -sweep 4,8,16: nodes %d, swarm only %v, single %v, fleets %v", c.Nodes, c.SwarmOnly, c.Single, c.Fleets())
	}
	for _, bad := range [][]int{{8, 4}, {4, 4}, {0, 4}} {
		d := Defaults()
		d.Sweep = bad
		if err := d.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "-sweep") {
			t.Errorf("-sweep %v: %v, want an error naming -sweep", bad, err)
		}
	}
	if err := fs.Parse([]string{"-sweep", "4,x"}); err == nil {
		t.Error("-sweep 4,x accepted")
	}
}
