// Package swarmsim is a piece-level simulator of a blobswarm rollout as
// built: the tracker's seeder reading the image from the origin and
// handing its pieces out (the product's own super-seeding policy,
// superseed.Policy), the mirrors fetching pieces rarest first from the
// peers the tracker told them of, and every link shared max-min fairly
// among the connections crossing it. It predicts fleets too large for the
// fleet bench (integration/fleetbench) from the same shape of image and
// links, and is cross-checked against the bench's measurements
// (Measured).
//
// What it leaves out: the unfairness and losses of many TCP flows in one
// FIFO link (it takes them as fair and lossless), chunks received twice
// (anacrolix moving requests between peers), CPU (the bench's two cores,
// the tracker's), start-up that varies per host, a piece fetched from
// several peers at once, the origin fallback, and the control plane's
// bytes on the tracker's link.
package swarmsim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/fleetbench"
	"github.com/blobswarm/blobswarm/tracker"
)

// Shape is a rollout: an image of Layers equal blobs to Hosts hosts, all
// pulling at one instant, each host on a full-duplex link of rate Host
// (bits/s), the origin registry and the tracker on links of their own.
type Shape struct {
	Hosts, Layers         int
	Image                 int64 // bytes
	Host, Origin, Tracker float64
}

// Limit is the physical limit in seconds: the image through the slowest
// of a host's, the origin's and the tracker's links, as the fleet bench
// computes it with the tracker on its own host.
func (s Shape) Limit() float64 {
	return float64(s.Image) * 8 / min(s.Host, s.Origin, s.Tracker)
}

// PieceLength is the piece length of one layer's torrent, the product's
// own table (torrentmeta.PieceLength).
func (s Shape) PieceLength() int64 { return torrentmeta.PieceLength(s.layerSize()) }

func (s Shape) layerSize() int64 { return s.Image / int64(s.Layers) }

func (s Shape) String() string {
	return fmt.Sprintf("%d hosts, %d MiB in %d layers, links %s/%s/%s (host/origin/tracker)",
		s.Hosts, s.Image>>20, s.Layers, mbit(s.Host), mbit(s.Origin), mbit(s.Tracker))
}

func mbit(bps float64) string { return fmt.Sprintf("%gM", bps/1e6) }

// Params are the product's settings and the few facts of the network the
// model needs. Defaults has them as built and as the fleet bench runs.
type Params struct {
	// WireEfficiency is the share of a link's rate that carries payload:
	// the bench's interface counters read about 3% above the bytes the
	// programs sent (BENCHMARKS.md 5: TCP/IP and Ethernet headers).
	WireEfficiency float64
	// UploadCap is each mirror's --upload-rate as a share of its link
	// (fleetbench Config.UploadCap, 88%): it binds before the tbf does.
	// The tracker's seeder has no cap (tracker upload-rate 0).
	UploadCap float64
	// SeedWindow is the pieces the seeder offers a peer at once:
	// superseed.Server.window with the tracker's default seed-window 0.
	SeedWindow int
	// Patience is superseed.Config.Patience's default; the server ticks
	// every superseed.TickEvery.
	Patience time.Duration
	// Spare is the tracker's seed-spare: once the seeder holds a blob it
	// sends the rarest pieces to peers gaining slower than they can.
	Spare bool
	// OriginReads is tracker/seeder's default origin-reads: blob bodies
	// read from the origin at once, in the order asked (tracker/seeder,
	// readqueue.go).
	OriginReads int
	// MaxPeers is the tracker's max-peers, the most peers one announce
	// answer holds (tracker/announce pickPeers).
	MaxPeers int
	// MaxConns caps established connections per blob, the seeder's among
	// them: swarm.DefaultConnsPerTorrent. Hosts keep dialing the peers
	// announce answers named and trade a connection of the direction
	// they have too many of for a new one, as anacrolix does (fleet.dial);
	// formed one announce at a time without that trade, the first hosts
	// filled each other's slots and later ones found none free (8 hosts at
	// 100 Mbit/s: 13.9 s against 7.0 s measured).
	MaxConns int
	// Reannounce is anacrolix's floor between announces
	// (trackerScraper.Run waits at least a minute whatever the tracker
	// says): a mirror hears of new peers, and the tracker of a mirror
	// that completed, no more often.
	Reannounce time.Duration
	// StartUp is the time from the common start to a mirror announcing
	// with its torrents set up (tag through the tracker, manifest,
	// metainfo, the first hashes): calibrated on one host alone (see
	// Measured), the one fitted number.
	StartUp time.Duration
	// TrackerRate is how many requests a second the tracker answers; a
	// mirror's start-up asks it 1 + 3 per layer (tag; metainfo, pieces
	// stream and announce per blob), so a large fleet queues at start.
	// Measured: 6.7-8.5k announces/s in 2000-peer swarms in memory on
	// the bench machine (BENCHMARKS.md 6).
	TrackerRate float64
	// Seed makes a run repeatable: announce answers, ties in rarest
	// first, the order hosts' start-up requests reach the tracker.
	Seed uint64
	// Step is the coarsest time step, as a share of one piece's time at
	// a host's link: completions closer together than it are handled
	// together (a large fleet has thousands a second).
	Step float64
}

// Defaults is the product as built and as the fleet bench configures it.
func Defaults() Params {
	return Params{
		WireEfficiency: 0.97,
		UploadCap:      float64(fleetbench.Defaults().UploadCap) / 100,
		SeedWindow:     2,
		Patience:       3 * time.Second,
		Spare:          tracker.Defaults().SeedSpare,
		OriginReads:    tracker.Defaults().OriginReads,
		MaxPeers:       tracker.Defaults().MaxPeers,
		MaxConns:       swarm.DefaultConnsPerTorrent,
		Reannounce:     time.Minute,
		StartUp:        128 * time.Millisecond,
		TrackerRate:    7500,
		Seed:           1,
		Step:           1.0 / 8,
	}
}

// Result is one simulated rollout.
type Result struct {
	Shape Shape
	// Done is when each host had the whole image, in seconds from the
	// common start, ascending.
	Done []float64
	// OriginBytes and SeederBytes are what the origin and the tracker's
	// seeder sent.
	OriginBytes, SeederBytes float64
	// MovedBytes is what was still to come of the pieces moved from one
	// sender to another (fleet.steal).
	MovedBytes float64
}

// AllDone is when the last host had the image.
func (r Result) AllDone() float64 { return r.Done[len(r.Done)-1] }

// Quantile is the time by which the fraction q of the hosts were done
// (nearest rank).
func (r Result) Quantile(q float64) float64 {
	i := int(q*float64(len(r.Done))+0.999999) - 1
	return r.Done[min(max(i, 0), len(r.Done)-1)]
}

// maxSimulated bounds a run whose fleet never completes.
const maxSimulated = time.Hour

// Run simulates one rollout.
func Run(s Shape, p Params) (Result, error) {
	switch {
	case s.Hosts < 1 || s.Layers < 1 || s.Image < int64(s.Layers):
		return Result{}, fmt.Errorf("shape %v: needs a host and a byte per layer", s)
	case s.Host <= 0 || s.Origin <= 0 || s.Tracker <= 0:
		return Result{}, fmt.Errorf("shape %v: links must be faster than zero", s)
	}
	f := newFleet(s, p)
	for f.finished < s.Hosts {
		if f.now > maxSimulated.Seconds() {
			return Result{}, errors.New("fleet not done within an hour of simulated time")
		}
		f.step()
	}
	done := make([]float64, s.Hosts)
	for i, h := range f.hosts {
		done[i] = h.done
	}
	slices.Sort(done)
	return Result{Shape: s, Done: done, OriginBytes: f.originBytes, SeederBytes: f.seederBytes, MovedBytes: f.movedBytes}, nil
}
