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
// runs, the limit from the image's real bytes and the link.
func TestFleetLine(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Size = 2, 12_500_000
	rollout := func(mode string, run int, done time.Duration, origin int64) ModeResult {
		return ModeResult{Mode: mode, Run: run, ImageBytes: 12_500_000, OriginTx: origin,
			Hosts: []HostResult{{Name: "h1", Done: done / 2}, {Name: "h2", Done: done}}}
	}
	r := Report{Config: c.WithDefaults(), Results: []ModeResult{
		rollout(Central, 1, 2*time.Second, 25_000_000),
		rollout(Swarm, 1, 1500*time.Millisecond, 13_000_000),
		rollout(Swarm, 2, 1100*time.Millisecond, 12_000_000),
		rollout(Central, 2, 3*time.Second, 26_000_000),
	}}
	want := "FLEET nodes=2 size=12500000 link=100000000 swarm_s=1.30 central_s=2.50 limit_s=1.00 swarm_origin_bytes=12500000 central_origin_bytes=25500000"
	if got := r.FleetLine(); got != want {
		t.Errorf("FleetLine:\n got %s\nwant %s", got, want)
	}
	var table strings.Builder
	r.WriteTable(&table)
	if !strings.Contains(table.String(), "speed-up central/swarm 1.92x") {
		t.Errorf("table lacks the median speed-up 2.50/1.30:\n%s", table.String())
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
