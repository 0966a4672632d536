// Package fleetbench measures an image rollout to a fleet of hosts on an
// emulated datacenter network (see integration/netlab), once through a
// plain caching mirror per host pulling from the origin (central) and once
// through the swarm (mirrors with a tracker), against the physical limit:
// no host can receive the image faster than the slowest link on its way
// allows (see Config.Limit).
//
// The benchmark itself is BenchmarkFleet (make bench-fleet); this package
// holds its configuration, the child processes it runs inside the hosts,
// and what it measures and reports.
package fleetbench

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/netlab"
)

// Config is one benchmark invocation.
type Config struct {
	Nodes  int   // mirror hosts, besides the origin's and the tracker's
	Size   int64 // image bytes, split evenly into Layers
	Layers int
	Link   netlab.Rate // every mirror host's link, each direction
	// OriginLink is the origin host's link; Link when zero. A WAN link to
	// a registry elsewhere is often slower than the hosts' links.
	OriginLink netlab.Rate
	// TrackerLink is the tracker host's link; Link when zero.
	TrackerLink netlab.Rate
	// Topology says where the swarm rollouts run the tracker: on its own
	// host (TopologySeparate, as deployed), beside the origin registry on
	// its host (TopologyBeside, the benchmark's topology until issue 13),
	// or a rollout of each (TopologyBoth).
	Topology string
	// Single adds to every run one host pulling alone directly (OneDirect)
	// and one pulling alone through the swarm (OneSwarm).
	Single bool

	Latency time.Duration // one-way delay between hosts (needs sch_netem)
	MTU     int           // every link's; 1500 (Ethernet) when zero
	Runs    int           // rollouts per mode, alternating which mode goes first
	Out     string        // directory for the plot; none when empty
	// Concurrency is how many blobs each client fetches at once: 1 fetches
	// the layers one after the other, as the Kraken comparison did;
	// containerd's default is 3.
	Concurrency int
	// Bin is a blobswarm binary to measure instead of one built from this
	// working tree, e.g. an older commit's for a before/after comparison.
	Bin string
	// SwarmOnly skips the fleet's central rollout, for tuning runs (not
	// Single's direct one, which is the other half of a comparison).
	SwarmOnly bool
	// Timeline samples every host's counters during each rollout and
	// reports when each link was busy (see Timeline).
	Timeline bool
	// UploadCap is the share of Link, in percent, each mirror's
	// --upload-rate is set to; 0 leaves uploads unlimited. The links'
	// queues are FIFOs (this kernel has no fq or fq_codel): a host whose
	// uplink is full delays and drops the acknowledgements of its own
	// downloads, and the hosts everybody fetches from fell seconds behind.
	UploadCap int
	// Profile records a CPU profile of the tracker and of every mirror
	// for this long from each rollout's start, into Out (see Profiles).
	Profile time.Duration
	// TrackerFlags and MirrorFlags are added to every tracker's and
	// mirror's command line (space-separated), for tuning runs.
	TrackerFlags, MirrorFlags string
	// Sweep, when set, rolls the image out through the swarm to each of
	// these numbers of hosts in turn (every run), to see how the time to
	// the limit grows with the fleet; Nodes is then the largest.
	Sweep []int
}

// Defaults is the small shape that runs in about a minute.
func Defaults() Config {
	return Config{Nodes: 4, Size: 32 << 20, Layers: 2, Link: 100e6, Runs: 1, Concurrency: 1, UploadCap: 88, Topology: TopologySeparate}
}

// Bind registers the flags that set c.
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "mirror hosts pulling the image")
	fs.Func("size", "image size (bytes, KiB, MiB or GiB; default 32MiB)", func(s string) (err error) {
		c.Size, err = ParseSize(s)
		return err
	})
	fs.IntVar(&c.Layers, "layers", c.Layers, "layers the image is split into")
	fs.Func("link", "every host's link rate, tc syntax (default 100mbit)", func(s string) (err error) {
		c.Link, err = netlab.ParseRate(s)
		return err
	})
	fs.Func("origin-link", "the origin host's link rate (default: -link)", func(s string) (err error) {
		c.OriginLink, err = netlab.ParseRate(s)
		return err
	})
	fs.Func("tracker-link", "the tracker host's link rate (default: -link)", func(s string) (err error) {
		c.TrackerLink, err = netlab.ParseRate(s)
		return err
	})
	fs.StringVar(&c.Topology, "topology", c.Topology, "where the swarm rollouts run the tracker: separate (its own host, as deployed), beside (on the origin's host, the old topology) or both")
	fs.BoolVar(&c.Single, "single", c.Single, "also one host alone pulling directly from the origin and one alone through the swarm, each run; prints swarm/direct")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "one-way delay between hosts (needs the sch_netem kernel module)")
	fs.IntVar(&c.MTU, "mtu", c.MTU, "every link's MTU (default 1500; 9000 for jumbo frames)")
	fs.IntVar(&c.Runs, "runs", c.Runs, "rollouts per mode")
	fs.StringVar(&c.Out, "out", c.Out, "directory for fleet.png (none when empty)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "blobs each client fetches at once (containerd's default is 3)")
	fs.StringVar(&c.Bin, "bin", c.Bin, "blobswarm binary to measure (default: built from this working tree)")
	fs.BoolVar(&c.SwarmOnly, "swarm-only", c.SwarmOnly, "skip the fleet's central rollout (tuning runs; -single still runs its direct pull)")
	fs.BoolVar(&c.Timeline, "timeline", c.Timeline, "sample every host's received and uploaded bytes every 200 ms; print when each link was busy, write CSVs and a plot under -out")
	fs.IntVar(&c.UploadCap, "upload-cap", c.UploadCap, "every mirror's --upload-rate as a percentage of -link (0: unlimited)")
	fs.DurationVar(&c.Profile, "profile", c.Profile, "record CPU profiles of the tracker and every mirror for this long from each rollout's start; written under -out, summed up with go tool pprof -top")
	fs.StringVar(&c.TrackerFlags, "tracker-flags", c.TrackerFlags, "extra flags for the tracker, space-separated (tuning runs)")
	fs.StringVar(&c.MirrorFlags, "mirror-flags", c.MirrorFlags, "extra flags for every mirror, space-separated (tuning runs)")
	fs.Func("sweep", "comma-separated host counts, e.g. 4,8,16,32,64: a swarm rollout to each, every run, and a plot of time / limit against hosts", func(s string) error {
		c.Sweep = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("-sweep %q: %w", s, err)
			}
			c.Sweep = append(c.Sweep, n)
		}
		return nil
	})
}

// Fleets lists the numbers of hosts the fleet rollouts run on: the sweep,
// or all the hosts.
func (c Config) Fleets() []int {
	if len(c.Sweep) > 0 {
		return c.Sweep
	}
	return []int{c.Nodes}
}

// WithDefaults fills what was left to follow other settings.
func (c Config) WithDefaults() Config {
	if c.OriginLink == 0 {
		c.OriginLink = c.Link
	}
	if c.TrackerLink == 0 {
		c.TrackerLink = c.Link
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if len(c.Sweep) > 0 {
		c.Nodes, c.SwarmOnly, c.Single = slices.Max(c.Sweep), true, false
	}
	return c
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Nodes < 1 || c.Nodes > 200 {
		errs = append(errs, fmt.Errorf("-nodes %d: want 1 to 200", c.Nodes))
	}
	if len(c.Sweep) > 0 && (slices.Min(c.Sweep) < 1 || !slices.IsSorted(c.Sweep) || len(slices.Compact(slices.Clone(c.Sweep))) != len(c.Sweep)) {
		errs = append(errs, fmt.Errorf("-sweep %v: want increasing host counts, from 1 to 200", c.Sweep))
	}
	if len(c.Sweep) > 0 && c.Topology == TopologyBoth {
		errs = append(errs, errors.New("-sweep runs one swarm mode: want -topology separate or beside"))
	}
	if c.Layers < 1 || c.Size < int64(c.Layers)<<10 {
		errs = append(errs, fmt.Errorf("-size %d -layers %d: want at least one layer of at least 1 KiB", c.Size, c.Layers))
	}
	if c.Link <= 0 || c.OriginLink <= 0 || c.TrackerLink <= 0 {
		errs = append(errs, errors.New("-link, -origin-link and -tracker-link must be positive"))
	}
	if !slices.Contains([]string{TopologySeparate, TopologyBeside, TopologyBoth}, c.Topology) {
		errs = append(errs, fmt.Errorf("-topology %q: want separate, beside or both", c.Topology))
	}
	if c.Runs < 1 {
		errs = append(errs, fmt.Errorf("-runs %d: want at least 1", c.Runs))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("-concurrency %d: want at least 1", c.Concurrency))
	}
	if c.MTU < 576 || c.MTU > 65535 {
		errs = append(errs, fmt.Errorf("-mtu %d: want 576 to 65535", c.MTU))
	}
	if c.UploadCap < 0 || c.UploadCap > 100 {
		errs = append(errs, fmt.Errorf("-upload-cap %d: want a percentage of the link, 0 to 100", c.UploadCap))
	}
	if c.Profile < 0 || (c.Profile > 0 && c.Out == "") {
		errs = append(errs, fmt.Errorf("-profile %s: want a positive duration, with -out for the profiles", c.Profile))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("-latency %s: must not be negative", c.Latency))
	}
	return errors.Join(errs...)
}

// MirrorUploadRate is the --upload-rate of every mirror in bytes/s; 0 is
// unlimited.
func (c Config) MirrorUploadRate() int64 {
	return int64(c.Link.BytesPerSecond() * float64(c.UploadCap) / 100)
}

// PieceBytes is the piece length of the torrent of one layer of an image
// of the given bytes.
func (c Config) PieceBytes(image int64) int64 {
	return torrentmeta.PieceLength(image / int64(c.Layers))
}

// PieceTime is how long one such piece takes at a host's link.
func (c Config) PieceTime(image int64) time.Duration {
	return time.Duration(float64(c.PieceBytes(image)) / c.Link.BytesPerSecond() * float64(time.Second))
}

// ParseSize reads a byte count: 1048576, 512KiB, 64MiB, 1GiB.
func ParseSize(s string) (int64, error) {
	v, unit := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, unit = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, KiB, MiB or GiB", s)
	}
	return n * unit, nil
}
