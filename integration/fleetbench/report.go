package fleetbench

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
)

// The two ways a fleet gets the image.
const (
	Central = "central" // a plain caching mirror per host, all pulling from the origin
	Swarm   = "swarm"   // the mirrors with the tracker
)

// HostResult is one host's part of a rollout.
type HostResult struct {
	Name string
	// Done is from the common start until the host's client had the whole
	// image, every digest checked.
	Done time.Duration
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
	Mode       string
	Run        int
	ImageBytes int64 // config and layers
	Hosts      []HostResult
	// OriginTx is what the origin host's interface sent during the rollout
	// (the origin registry and, in swarm mode, the tracker and its seeder),
	// headers included.
	OriginTx int64
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

// Limit is the physical limit for an image of n bytes: the time one link
// of Config.Link takes to carry it.
func (r Report) Limit(n int64) time.Duration {
	return time.Duration(float64(n) / r.Config.Link.BytesPerSecond() * float64(time.Second))
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

func allDoneSeconds(m ModeResult) float64 { return m.AllDone().Seconds() }
func originBytes(m ModeResult) float64    { return float64(m.OriginTx) }
func imageBytes(m ModeResult) float64     { return float64(m.ImageBytes) }

const mib = 1 << 20

// WriteTable prints one row per rollout, then the medians and the
// central/swarm speed-up.
func (r Report) WriteTable(w io.Writer) {
	c := r.Config
	image := int64(r.median(Swarm, imageBytes))
	upload := "unlimited"
	if r := c.MirrorUploadRate(); r > 0 {
		upload = fmt.Sprintf("%d%% of the link (%.1f MB/s)", c.UploadCap, float64(r)/1e6)
	}
	fmt.Fprintf(w, "\nfleet: %d hosts, image %.1f MiB in %d layers, links %s (origin %s), MTU %d, latency %s, %d client fetch(es) at once, mirrors' uploads %s\n",
		c.Nodes, float64(image)/mib, c.Layers, c.Link, c.OriginLink, c.MTU, c.Latency, c.Concurrency, upload)
	fmt.Fprintf(w, "physical limit (image / link): %.2f s; bytes on the wire include headers; per-host bytes are means over hosts;\nCPU: the machine's busy share of all cores, fleet: its own processes' share\n",
		r.Limit(image).Seconds())
	fmt.Fprintf(w, "%-8s %3s %9s %7s %8s %8s %8s %13s %8s %10s %10s %10s %9s %5s %5s\n",
		"mode", "run", "all done", "x limit", "p50", "p95", "max", "origin sent", "x image", "peers/host", "seeder/h", "origin/h", "fallbacks", "CPU", "fleet")
	for _, m := range r.Results {
		done := m.Done()
		fmt.Fprintf(w, "%-8s %3d %7.2f s %7.2f %6.2f s %6.2f s %6.2f s %9.1f MiB %8.2f %6.1f MiB %6.1f MiB %6.1f MiB %9.0f %4.0f%% %4.0f%%\n",
			m.Mode, m.Run, m.AllDone().Seconds(), m.AllDone().Seconds()/r.Limit(m.ImageBytes).Seconds(),
			Percentile(done, 50).Seconds(), Percentile(done, 95).Seconds(), Percentile(done, 100).Seconds(),
			float64(m.OriginTx)/mib, float64(m.OriginTx)/float64(m.ImageBytes),
			m.mean(func(h HostResult) float64 { return h.FromPeers })/mib,
			m.mean(func(h HostResult) float64 { return h.FromSeeder })/mib,
			m.mean(func(h HostResult) float64 { return h.FromOrigin })/mib,
			m.total(func(h HostResult) float64 { return h.Fallbacks }), m.CPU, m.FleetCPU)
	}
	sw, ce := r.median(Swarm, allDoneSeconds), r.median(Central, allDoneSeconds)
	if sw > 0 && ce > 0 {
		fmt.Fprintf(w, "median all done: central %.2f s (%.2fx limit), swarm %.2f s (%.2fx limit); speed-up central/swarm %.2fx (N = %d)\n",
			ce, ce/r.Limit(image).Seconds(), sw, sw/r.Limit(image).Seconds(), ce/sw, c.Nodes)
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

// FleetLine is the machine-readable summary: medians over the runs.
func (r Report) FleetLine() string {
	image := int64(r.median(Swarm, imageBytes))
	return fmt.Sprintf("FLEET nodes=%d size=%d link=%d swarm_s=%.2f central_s=%.2f limit_s=%.2f swarm_origin_bytes=%.0f central_origin_bytes=%.0f",
		r.Config.Nodes, r.Config.Size, int64(r.Config.Link), r.median(Swarm, allDoneSeconds), r.median(Central, allDoneSeconds),
		r.Limit(image).Seconds(), r.median(Swarm, originBytes), r.median(Central, originBytes))
}

// WriteHosts prints every host's figures of every rollout.
func (r Report) WriteHosts(w io.Writer) {
	fmt.Fprintf(w, "%-8s %3s %-6s %8s %12s %12s %12s %12s %11s %9s %9s %8s\n", "mode", "run", "host", "done", "from peers", "from seeder", "from origin", "wire rx",
		"redundant", "drops up", "drops dn", "retrans")
	for _, m := range r.Results {
		for _, h := range m.Hosts {
			fmt.Fprintf(w, "%-8s %3d %-6s %6.2f s %8.1f MiB %8.1f MiB %8.1f MiB %8.1f MiB %7.1f MiB %9d %9d %7.2f%%\n", m.Mode, m.Run, h.Name, h.Done.Seconds(),
				h.FromPeers/mib, h.FromSeeder/mib, h.FromOrigin/mib, float64(h.WireRx)/mib,
				h.Redundant/mib, h.Link.UpDrops, h.Link.DownDrops, 100*float64(h.Link.RetransSegs)/float64(max(h.Link.OutSegs, 1)))
		}
	}
}
