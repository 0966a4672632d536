package fleetbench

import (
	"fmt"
	"slices"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
)

// The ways a rollout gets the image to the hosts; each is a row label.
const (
	Central = "central" // a plain caching mirror per host, all pulling from the origin
	// Swarm is the mirrors with the tracker on a host of its own, with its
	// own link to the origin: the topology users deploy.
	Swarm = "swarm"
	// SwarmBeside is the mirrors with the tracker on the origin's host,
	// beside the registry: the benchmark's topology until issue 13, kept
	// so that numbers measured with it can be compared.
	SwarmBeside = "swarm-beside"
	// OneDirect and OneSwarm are one host pulling alone, the others idle:
	// through a plain mirror, and through the swarm (the tracker on its
	// own host). Their ratio is what a lone pull pays for the extra hop
	// through the seeder.
	OneDirect = "one-direct"
	OneSwarm  = "one-swarm"
)

// Where a mode runs the tracker.
type TrackerAt int

const (
	NoTracker TrackerAt = iota
	TrackerOwnHost
	TrackerBesideOrigin
)

// Mode is what a rollout of one mode starts.
type Mode struct {
	Name    string
	Tracker TrackerAt
	// Single: only the first host runs a mirror and pulls.
	Single bool
	// About says what the mode is, for the table's legend.
	About string
}

var modes = []Mode{
	{Central, NoTracker, false, "a plain caching mirror per host, all pulling from the origin"},
	{Swarm, TrackerOwnHost, false, "the mirrors with the tracker on its own host"},
	{SwarmBeside, TrackerBesideOrigin, false, "the mirrors with the tracker beside the origin registry, on its host (the old topology)"},
	{OneDirect, NoTracker, true, "one host alone, through a plain mirror"},
	{OneSwarm, TrackerOwnHost, true, "one host alone, through its mirror and the tracker on its own host"},
}

// ModeOf describes the mode called name; it panics on a name that is
// none of the constants above, a bug in the caller.
func ModeOf(name string) Mode {
	i := slices.IndexFunc(modes, func(m Mode) bool { return m.Name == name })
	if i < 0 {
		panic(fmt.Sprintf("fleetbench: unknown mode %q", name))
	}
	return modes[i]
}

// Values of Config.Topology: where the swarm rollouts run the tracker.
const (
	TopologySeparate = "separate" // on its own host (Swarm)
	TopologyBeside   = "beside"   // beside the origin (SwarmBeside)
	TopologyBoth     = "both"     // one rollout of each per run
)

// Modes lists the rollouts of one run, in order. Which of the fleet's
// modes goes first alternates from run to run, and so does the order of
// the single-host pair, so that none always follows another (a mode that
// follows one finds the page cache and the machine warmer).
func (c Config) Modes(run int) []string {
	var fleet []string
	if !c.SwarmOnly {
		fleet = append(fleet, Central)
	}
	if c.Topology != TopologyBeside {
		fleet = append(fleet, Swarm)
	}
	if c.Topology != TopologySeparate {
		fleet = append(fleet, SwarmBeside)
	}
	var single []string
	if c.Single {
		single = []string{OneDirect, OneSwarm}
	}
	if run%2 == 0 {
		slices.Reverse(fleet)
		slices.Reverse(single)
	}
	return append(fleet, single...)
}

// PrimarySwarm is the swarm mode the summary line, the plot and the
// benchmark's metrics report: the deployed topology unless only the old
// one runs.
func (c Config) PrimarySwarm() string {
	if c.Topology == TopologyBeside {
		return SwarmBeside
	}
	return Swarm
}

// TrackerHost says whether the lab needs a host for the tracker.
func (c Config) TrackerHost() bool {
	return c.Topology != TopologyBeside || c.Single
}

// SeederLink is the link the seeder of a mode sends over.
func (c Config) SeederLink(mode string) netlab.Rate {
	if ModeOf(mode).Tracker == TrackerOwnHost {
		return c.TrackerLink
	}
	return c.OriginLink
}

// Limit is the physical limit of a rollout of mode for an image of n
// bytes: the time the slowest link on the image's way must carry it,
//
//	tracker on its own host:      max(n / origin link, n / tracker link, n / host link)
//	otherwise (central, beside):  max(n / origin link, n / host link)
//
// since every host must receive the image over its link, the origin must
// send it at least once, and with the tracker on its own host its link
// must carry it in (from the origin) and out (to the fleet) at least
// once each; its two directions are separate, so n and not 2n. Beside
// the origin the seeder reads the registry over loopback and sends over
// the origin's link, already counted. Every link is full duplex and a
// streaming seeder forwards a piece as soon as it has it, so the stages
// overlap: their maximum, not their sum. The central rollout's own bound
// is worse (the origin sends the image once per host); the limit is what
// the network allows any rollout, so its "x limit" shows what central
// loses.
func (c Config) Limit(mode string, n int64) time.Duration {
	links := []netlab.Rate{c.OriginLink, c.Link}
	if ModeOf(mode).Tracker == TrackerOwnHost {
		links = append(links, c.TrackerLink)
	}
	var slowest float64 // seconds
	for _, l := range links {
		slowest = max(slowest, float64(n)/l.BytesPerSecond())
	}
	return time.Duration(slowest * float64(time.Second))
}
