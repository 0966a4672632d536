package fleetbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
)

// HostResult is one host's part of a rollout.
type HostResult struct {
	Name string
	// Done is from the common start until the host's client had the whole
	// image, every digest checked.
	Done time.Duration
	// FirstByte is the longest its client waited for a blob's first byte.
	FirstByte time.Duration
	// Bytes the host's mirror counted by source, and its fallbacks from the
	// swarm to the origin.
	FromPeers, FromSeeder, FromOrigin, Fallbacks float64
	// Redundant is piece data the host received twice and threw away.
	Redundant float64
	// WireRx is what the host's interface received, headers included.
	WireRx int64
	// Link is what its link and TCP stack did during the rollout: queue
	// drops each way, segments sent and sent again.
	Link netlab.LinkStats
}

// ModeResult is one rollout.
type ModeResult struct {
	Mode  string
	Run   int
	Nodes int // hosts that pulled

	ImageBytes int64 // config and layers
	Hosts      []HostResult
	// OriginTx is what the origin host's interface sent during the rollout
	// (the origin registry and, in SwarmBeside, the tracker and its
	// seeder), headers included.
	OriginTx int64
	// TrackerTx is what the tracker's own host sent (its seeder's pieces,
	// announce and metainfo answers), headers included; zero in the modes
	// without it (see TrackerOwnHost).
	TrackerTx int64
	// CPU is the machine's busy share of all cores during the rollout, %,
	// whoever used it; FleetCPU is the share the fleet's own processes
	// (origin, tracker, mirrors, clients) used. Both leave out the
	// kernel's packet work done outside those processes' time.
	CPU, FleetCPU float64
}

// Done lists every host's completion time.
func (r ModeResult) Done() []time.Duration {
	ds := make([]time.Duration, len(r.Hosts))
	for i, h := range r.Hosts {
		ds[i] = h.Done
	}
	return ds
}

// AllDone is when the last host had the whole image.
func (r ModeResult) AllDone() time.Duration { return Percentile(r.Done(), 100) }

// total is the sum over hosts of f.
func (r ModeResult) total(f func(HostResult) float64) float64 {
	var sum float64
	for _, h := range r.Hosts {
		sum += f(h)
	}
	return sum
}

// mean is the mean over hosts of f.
func (r ModeResult) mean(f func(HostResult) float64) float64 {
	return r.total(f) / float64(len(r.Hosts))
}

// Report is a whole invocation.
type Report struct {
	Config  Config
	Results []ModeResult
}

// byMode returns the rollouts of one mode in run order.
func (r Report) byMode(mode string) []ModeResult {
	var out []ModeResult
	for _, m := range r.Results {
		if m.Mode == mode {
			out = append(out, m)
		}
	}
	return out
}

// median is the median over the rollouts of one mode of f.
func (r Report) median(mode string, f func(ModeResult) float64) float64 {
	var vs []float64
	for _, m := range r.byMode(mode) {
		vs = append(vs, f(m))
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// ratio is the median all-done time of mode a over mode b's; 0 when
// either did not run.
func (r Report) ratio(a, b string) float64 {
	x, y := r.median(a, allDoneSeconds), r.median(b, allDoneSeconds)
	if x <= 0 || y <= 0 {
		return 0
	}
	return x / y
}

// SingleRatio is how much longer one host alone takes through the swarm
// than straight from the origin (OneSwarm / OneDirect, medians); 0 without
// -single. Above 1 is the price of the hop through the seeder.
func (r Report) SingleRatio() float64 { return r.ratio(OneSwarm, OneDirect) }

// ran lists the modes with results, in the order of the modes table.
func (r Report) ran() []Mode {
	var out []Mode
	for _, m := range modes {
		if len(r.byMode(m.Name)) > 0 {
			out = append(out, m)
		}
	}
	return out
}

func allDoneSeconds(m ModeResult) float64 { return m.AllDone().Seconds() }

// firstByteSeconds is the longest wait for a first byte of any host.
func firstByteSeconds(m ModeResult) float64 {
	var d time.Duration
	for _, h := range m.Hosts {
		d = max(d, h.FirstByte)
	}
	return d.Seconds()
}
func originBytes(m ModeResult) float64  { return float64(m.OriginTx) }
func trackerBytes(m ModeResult) float64 { return float64(m.TrackerTx) }
func imageBytes(m ModeResult) float64   { return float64(m.ImageBytes) }

const mib = 1 << 20

// WriteTable prints what the modes are, one row per rollout, then the
// medians, the central/swarm speed-up and, with -single, swarm/direct.
func (r Report) WriteTable(w io.Writer) {
	c := r.Config
	ran := r.ran()
	if len(ran) == 0 {
		fmt.Fprintln(w, "\nfleet: no rollouts")
		return
	}
	image := int64(r.median(ran[0].Name, imageBytes)) // every mode's image has the same size
	upload := "unlimited"
	if r := c.MirrorUploadRate(); r > 0 {
		upload = fmt.Sprintf("%d%% of the link (%.1f MB/s)", c.UploadCap, float64(r)/1e6)
	}
	links := fmt.Sprintf("links %s (origin %s", c.Link, c.OriginLink)
	if c.TrackerHost() {
		links += fmt.Sprintf(", tracker %s", c.TrackerLink)
	}
	fmt.Fprintf(w, "\nfleet: %d hosts, image %.1f MiB in %d layers, %s), MTU %d, latency %s, %d client fetch(es) at once, mirrors' uploads %s\n",
		c.Nodes, float64(image)/mib, c.Layers, links, c.MTU, c.Latency, c.Concurrency, upload)
	for _, m := range ran {
		fmt.Fprintf(w, "  %-12s %s; limit %.2f s\n", m.Name, m.About, c.Limit(m.Name, image).Seconds())
	}
	fmt.Fprintf(w, "limit: what the slowest link on the image's way needs for it: max(image / host link, image / origin link\n"+
		"[, image / tracker link with the tracker on its own host]); bytes on the wire include headers; per-host bytes are\n"+
		"means over hosts; CPU: the machine's busy share of all cores, fleet: its own processes' share\n")
	fmt.Fprintf(w, "%-12s %3s %9s %7s %8s %8s %8s %13s %7s %13s %7s %10s %10s %10s %9s %5s %5s\n",
		"mode", "run", "all done", "x limit", "p50", "p95", "max", "origin sent", "x image", "tracker sent", "x image", "peers/host", "seeder/h", "origin/h", "fallbacks", "CPU", "fleet")
	for _, m := range r.Results {
		done := m.Done()
		tracker := fmt.Sprintf("%13s %7s", "-", "-")
		if ModeOf(m.Mode).Tracker == TrackerOwnHost {
			tracker = fmt.Sprintf("%9.1f MiB %7.2f", float64(m.TrackerTx)/mib, float64(m.TrackerTx)/float64(m.ImageBytes))
		}
		fmt.Fprintf(w, "%-12s %3d %7.2f s %7.2f %6.2f s %6.2f s %6.2f s %9.1f MiB %7.2f %s %6.1f MiB %6.1f MiB %6.1f MiB %9.0f %4.0f%% %4.0f%%\n",
			m.Mode, m.Run, m.AllDone().Seconds(), m.AllDone().Seconds()/c.Limit(m.Mode, m.ImageBytes).Seconds(),
			Percentile(done, 50).Seconds(), Percentile(done, 95).Seconds(), Percentile(done, 100).Seconds(),
			float64(m.OriginTx)/mib, float64(m.OriginTx)/float64(m.ImageBytes), tracker,
			m.mean(func(h HostResult) float64 { return h.FromPeers })/mib,
			m.mean(func(h HostResult) float64 { return h.FromSeeder })/mib,
			m.mean(func(h HostResult) float64 { return h.FromOrigin })/mib,
			m.total(func(h HostResult) float64 { return h.Fallbacks }), m.CPU, m.FleetCPU)
	}
	median := func(mode string) string {
		s := r.median(mode, allDoneSeconds)
		return fmt.Sprintf("%s %.2f s (%.2fx limit)", mode, s, s/c.Limit(mode, image).Seconds())
	}
	var fleet []string
	for _, m := range ran {
		if !m.Single {
			fleet = append(fleet, median(m.Name))
		}
	}
	if len(fleet) > 0 {
		fmt.Fprintf(w, "median all done: %s\n", strings.Join(fleet, ", "))
	}
	for _, sw := range []string{Swarm, SwarmBeside} {
		if x := r.ratio(Central, sw); x > 0 {
			fmt.Fprintf(w, "speed-up central/%s %.2fx (N = %d)\n", sw, x, c.Nodes)
		}
	}
	if x := r.SingleRatio(); x > 0 {
		fmt.Fprintf(w, "one host alone: %s, %s; swarm/direct %.2fx\n", median(OneDirect), median(OneSwarm), x)
		direct, swarm := r.median(OneDirect, firstByteSeconds), r.median(OneSwarm, firstByteSeconds)
		fmt.Fprintf(w, "first byte of a cold layer, one host alone: direct %.0f ms, swarm %.0f ms: +%.0f ms, %.1f pieces of %d KiB at the host link\n",
			1000*direct, 1000*swarm, 1000*(swarm-direct), (swarm-direct)/c.PieceTime(image).Seconds(), c.PieceBytes(image)>>10)
	}
}

// Summary is the medians over the runs of one mode.
type Summary struct {
	AllDone          float64 // seconds
	OriginTimesImage float64 // origin host bytes sent / image bytes
}

// Median summarizes the runs of one mode.
func (r Report) Median(mode string) Summary {
	return Summary{
		AllDone:          r.median(mode, allDoneSeconds),
		OriginTimesImage: r.median(mode, func(m ModeResult) float64 { return float64(m.OriginTx) / float64(m.ImageBytes) }),
	}
}

// FleetLine is the machine-readable summary: medians over the runs, swarm
// being Config.PrimarySwarm's; with -single also the lone host's times
// and their ratio.
func (r Report) FleetLine() string {
	c := r.Config
	sw := c.PrimarySwarm()
	image := int64(r.median(sw, imageBytes))
	line := fmt.Sprintf("FLEET nodes=%d size=%d link=%d topology=%s swarm_s=%.2f central_s=%.2f limit_s=%.2f swarm_origin_bytes=%.0f central_origin_bytes=%.0f swarm_tracker_bytes=%.0f",
		c.Nodes, c.Size, int64(c.Link), c.Topology, r.median(sw, allDoneSeconds), r.median(Central, allDoneSeconds),
		c.Limit(sw, image).Seconds(), r.median(sw, originBytes), r.median(Central, originBytes), r.median(sw, trackerBytes))
	if x := r.SingleRatio(); x > 0 {
		line += fmt.Sprintf(" single_direct_s=%.2f single_swarm_s=%.2f single_ratio=%.2f single_direct_first_byte_s=%.3f single_swarm_first_byte_s=%.3f",
			r.median(OneDirect, allDoneSeconds), r.median(OneSwarm, allDoneSeconds), x,
			r.median(OneDirect, firstByteSeconds), r.median(OneSwarm, firstByteSeconds))
	}
	return line
}

// WriteHosts prints every host's figures of every rollout.
func (r Report) WriteHosts(w io.Writer) {
	fmt.Fprintf(w, "%-12s %3s %4s %-6s %8s %10s %12s %12s %12s %12s %11s %9s %9s %8s\n", "mode", "run", "N", "host", "done", "1st byte", "from peers", "from seeder", "from origin", "wire rx",
		"redundant", "drops up", "drops dn", "retrans")
	for _, m := range r.Results {
		for _, h := range m.Hosts {
			fmt.Fprintf(w, "%-12s %3d %4d %-6s %6.2f s %7.0f ms %8.1f MiB %8.1f MiB %8.1f MiB %8.1f MiB %7.1f MiB %9d %9d %7.2f%%\n", m.Mode, m.Run, m.Nodes, h.Name, h.Done.Seconds(), 1000*h.FirstByte.Seconds(),
				h.FromPeers/mib, h.FromSeeder/mib, h.FromOrigin/mib, float64(h.WireRx)/mib,
				h.Redundant/mib, h.Link.UpDrops, h.Link.DownDrops, 100*float64(h.Link.RetransSegs)/float64(max(h.Link.OutSegs, 1)))
		}
	}
}
