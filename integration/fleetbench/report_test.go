package fleetbench

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512KiB": 512 << 10, "64MiB": 64 << 20, "2GiB": 2 << 30, " 8 MiB ": 8 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1MiB", "64MB", "big"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for p, want := range map[float64]time.Duration{50: 10 * time.Second, 95: 19 * time.Second, 100: 20 * time.Second, 1: time.Second} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%.0f of 1..20 s = %s, want %s", p, got, want)
		}
	}
}

// TestFleetLine checks the summary line a script reads: medians over the
// runs, the limit from the image's real bytes and the links, the
// tracker's bytes, and the lone host's pulls.
func TestFleetLine(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Size, c.Single = 2, 12_500_000, true
	r := Report{Config: c.WithDefaults(), Results: []ModeResult{
		rollout(Central, 1, 2*time.Second, 25_000_000, 0),
		rollout(Swarm, 1, 1500*time.Millisecond, 13_000_000, 14_000_000),
		rollout(OneDirect, 1, 1200*time.Millisecond, 13_000_000, 0),
		rollout(OneSwarm, 1, 1400*time.Millisecond, 13_000_000, 13_000_000),
		rollout(OneSwarm, 2, 1500*time.Millisecond, 13_000_000, 13_000_000),
		rollout(OneDirect, 2, 1300*time.Millisecond, 13_000_000, 0),
		rollout(Swarm, 2, 1100*time.Millisecond, 12_000_000, 13_000_000),
		rollout(Central, 2, 3*time.Second, 26_000_000, 0),
	}}
	want := "FLEET nodes=2 size=12500000 link=100000000 topology=separate swarm_s=1.30 central_s=2.50 limit_s=1.00 swarm_origin_bytes=12500000 central_origin_bytes=25500000 swarm_tracker_bytes=13500000" +
		" single_direct_s=1.25 single_swarm_s=1.45 single_ratio=1.16 single_direct_first_byte_s=0.125 single_swarm_first_byte_s=0.145"
	if got := r.FleetLine(); got != want {
		t.Errorf("FleetLine:\n got %s\nwant %s", got, want)
	}
	var table strings.Builder
	r.WriteTable(&table)
	for _, want := range []string{
		"speed-up central/swarm 1.92x", // 2.50 / 1.30
		"swarm/direct 1.16x",           // 1.45 / 1.25
		"first byte of a cold layer, one host alone: direct 125 ms, swarm 145 ms: +20 ms", // medians of a tenth of each
		"swarm          1    1.50 s    1.50 ",                                             // the row's own limit
		"     13.4 MiB    1.12 ",                                                          // the tracker's bytes, x image
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// rollout is a rollout of a 12.5 MB image to two hosts (one for the
// single modes), the last done at done, its first byte at a tenth of that.
func rollout(mode string, run int, done time.Duration, origin, tracker int64) ModeResult {
	hosts := []HostResult{{Name: "h1", Done: done / 2, FirstByte: done / 20}, {Name: "h2", Done: done, FirstByte: done / 10}}
	if ModeOf(mode).Single {
		hosts = []HostResult{{Name: "h1", Done: done, FirstByte: done / 10}}
	}
	return ModeResult{Mode: mode, Run: run, ImageBytes: 12_500_000, OriginTx: origin, TrackerTx: tracker, Hosts: hosts}
}

// TestTableLimits checks that every row is divided by its own mode's
// limit when the tracker's link is the slowest: only the rollouts through
// the tracker's host are bound by it.
func TestTableLimits(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Size, c.Topology, c.TrackerLink = 2, 12_500_000, TopologyBoth, 50e6
	r := Report{Config: c.WithDefaults(), Results: []ModeResult{
		rollout(Central, 1, 4*time.Second, 25_000_000, 0),
		rollout(Swarm, 1, 3*time.Second, 13_000_000, 13_000_000),
		rollout(SwarmBeside, 1, 1500*time.Millisecond, 13_000_000, 0),
	}}
	var table strings.Builder
	r.WriteTable(&table)
	for _, want := range []string{
		"central        1    4.00 s    4.00 ",
		"swarm          1    3.00 s    1.50 ", // 2 s through 50 Mbit/s
		"swarm-beside   1    1.50 s    1.50 ",
		"      -       - ", // no tracker host beside the origin
		"median all done: central 4.00 s (4.00x limit), swarm 3.00 s (1.50x limit), swarm-beside 1.50 s (1.50x limit)",
		"speed-up central/swarm-beside 2.67x",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "swarm/direct") {
		t.Errorf("table without -single has a swarm/direct ratio:\n%s", table.String())
	}
}

func TestValidate(t *testing.T) {
	if err := Defaults().WithDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := Defaults()
	bad.Nodes, bad.Runs, bad.Layers = 0, 0, 0
	bad.Profile = 10 * time.Second // without -out
	bad.UploadCap = 150
	err := bad.WithDefaults().Validate()
	for _, flag := range []string{"-nodes", "-runs", "-layers", "-profile", "-upload-cap"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("Validate of a bad config does not name %s: %v", flag, err)
		}
	}
}
