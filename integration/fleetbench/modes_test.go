package fleetbench

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
)

func mbit(n float64) netlab.Rate { return netlab.Rate(n * 1e6) }

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		set       func(*Config)
		odd, even []string
	}{
		{"defaults", func(*Config) {}, []string{Central, Swarm}, []string{Swarm, Central}},
		{"beside", func(c *Config) { c.Topology = TopologyBeside }, []string{Central, SwarmBeside}, []string{SwarmBeside, Central}},
		{"both", func(c *Config) { c.Topology = TopologyBoth }, []string{Central, Swarm, SwarmBeside}, []string{SwarmBeside, Swarm, Central}},
		// -swarm-only drops the fleet's central rollout, not the lone
		// host's direct pull the lone swarm pull is compared with.
		{"swarm-only single", func(c *Config) { c.SwarmOnly, c.Single = true, true },
			[]string{Swarm, OneDirect, OneSwarm}, []string{Swarm, OneSwarm, OneDirect}},
	} {
		c := Defaults()
		tc.set(&c)
		if got := c.Modes(1); !slices.Equal(got, tc.odd) {
			t.Errorf("%s: run 1 = %v, want %v", tc.name, got, tc.odd)
		}
		if got := c.Modes(2); !slices.Equal(got, tc.even) {
			t.Errorf("%s: run 2 = %v, want %v", tc.name, got, tc.even)
		}
	}
}

// TestLimit checks the physical limit of each topology against links of
// different speeds: whichever link on the image's way is slowest binds.
func TestLimit(t *testing.T) {
	const n = 12_500_000 // 1 s at 100 Mbit/s
	for _, tc := range []struct {
		name                          string
		host, origin, tracker         float64 // Mbit/s
		swarm, beside, central, alone float64 // seconds
	}{
		{"equal links", 100, 100, 100, 1, 1, 1, 1},
		// A WAN link to the origin binds every mode.
		{"slow origin", 100, 25, 100, 4, 4, 4, 4},
		// The tracker's own link binds only the modes through it.
		{"slow tracker", 100, 100, 50, 2, 1, 1, 2},
		{"slow hosts", 20, 100, 100, 5, 5, 5, 5},
		{"fast hosts", 1000, 50, 200, 2, 2, 2, 2},
	} {
		c := Defaults()
		c.Link, c.OriginLink, c.TrackerLink = mbit(tc.host), mbit(tc.origin), mbit(tc.tracker)
		for mode, want := range map[string]float64{Swarm: tc.swarm, SwarmBeside: tc.beside, Central: tc.central, OneDirect: tc.central, OneSwarm: tc.alone} {
			if got := c.Limit(mode, n); got != time.Duration(want*float64(time.Second)) {
				t.Errorf("%s: limit of %s = %s, want %gs", tc.name, mode, got, want)
			}
		}
	}
}

func TestTrackerHostAndLink(t *testing.T) {
	c := Defaults()
	c.OriginLink, c.TrackerLink = mbit(10), mbit(200)
	if !c.TrackerHost() {
		t.Error("the default topology has no tracker host")
	}
	if got := c.SeederLink(Swarm); got != c.TrackerLink {
		t.Errorf("seeder link of %s = %s, want the tracker's", Swarm, got)
	}
	c.Topology = TopologyBeside
	if c.TrackerHost() {
		t.Error("-topology beside builds a tracker host no mode uses")
	}
	if got := c.SeederLink(SwarmBeside); got != c.OriginLink {
		t.Errorf("seeder link of %s = %s, want the origin's", SwarmBeside, got)
	}
	if c.Single = true; !c.TrackerHost() {
		t.Error("-single -topology beside has no host for swarm-1's tracker")
	}
	if c.PrimarySwarm() != SwarmBeside {
		t.Errorf("-topology beside reports %s", c.PrimarySwarm())
	}
	c.Topology = "elsewhere"
	if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "-topology") {
		t.Errorf("Validate of -topology elsewhere: %v", err)
	}
}
