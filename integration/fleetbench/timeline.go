package fleetbench

import (
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/blobswarm/blobswarm/integration/netlab"
)

// A rollout's timeline is every host's received and uploaded bytes, and
// the tracker's seeder's uploaded bytes, read every TimelineEvery from the
// common start: it tells a link busy all along at a lower rate from one
// idle at the start, between layers or at the tail.

// TimelineEvery is how often the sampler reads the counters.
const TimelineEvery = 200 * time.Millisecond

// An interval of a link is busy when it carried at least BusyShare of the
// link's rate and idle below IdleShare. The counters hold payload while
// the link also carries headers (about 3% at MTU 1500) and the ACKs of the
// host's own uploads, so a full link reads about 95-97%.
const (
	BusyShare = 0.8
	IdleShare = 0.2
)

// Point is one reading of a host's (or the seeder's) counters.
type Point struct {
	T                  time.Duration // since the common start
	Received, Uploaded float64       // bytes so far
}

// Series is one host's readings, oldest first.
type Series struct {
	Name   string
	Points []Point
}

// Timeline is one rollout's readings.
type Timeline struct {
	Hosts []Series
	// Seeder is the tracker's seeder (swarm mode), Uploaded only.
	Seeder Series
	Rounds int // readings of every endpoint
	Errors int // scrapes that failed; their points are missing
	// SelfCPU is what this process used while sampling: an upper bound on
	// the sampler's own cost (the clients' goroutines only wait).
	SelfCPU time.Duration
}

// TimelineRun is one rollout with its timeline.
type TimelineRun struct {
	Result   ModeResult
	Timeline Timeline
}

// Activity is how busy one link was over a span.
type Activity struct {
	From, To time.Duration
	Bytes    float64 // carried from From to the end
	Rate     float64 // mean over the span, as a share of the link
	// Busy and Idle are the shares of the sampled intervals wholly inside
	// the span in which the link carried at least BusyShare of its rate,
	// or less than IdleShare.
	Busy, Idle float64
	Intervals  int
}

func received(p Point) float64 { return p.Received }
func uploaded(p Point) float64 { return p.Uploaded }

// hostActivity is a host's receiving from its first byte until its
// client had the whole image; false if it received nothing.
func hostActivity(pts []Point, done time.Duration, link netlab.Rate) (Activity, bool) {
	from, _, ok := growth(pts, received, link)
	if !ok {
		return Activity{}, false
	}
	return activity(pts, received, from, done, link), true
}

// seederActivity is the seeder's sending from its first byte until the
// end of the interval in which it last sent; false if it sent nothing.
func seederActivity(pts []Point, link netlab.Rate) (Activity, bool) {
	from, to, ok := growth(pts, uploaded, link)
	if !ok {
		return Activity{}, false
	}
	return activity(pts, uploaded, from, to, link), true
}

// growth is the span over which v grew: from its first byte to the first
// reading after it last grew. The first byte is the latest the first
// interval's bytes can have started at the link's rate: at the end of that
// interval when it held only the image's config, a few hundred bytes that
// must not pass for the start of the layers' transfer.
func growth(pts []Point, v func(Point) float64, link netlab.Rate) (from, to time.Duration, ok bool) {
	first := -1
	for i := 1; i < len(pts); i++ {
		if v(pts[i]) > v(pts[i-1]) {
			if first < 0 {
				first = i
			}
			to = pts[i].T
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	p, q := pts[first-1], pts[first]
	from = q.T - time.Duration((v(q)-v(p))/link.BytesPerSecond()*float64(time.Second))
	return max(from, p.T), to, true
}

// activity measures v's rate from the first byte at from until to. The
// bytes are those after the last reading at or before from, up to the
// last reading: a host's mirror has received everything before its
// client is done.
func activity(pts []Point, v func(Point) float64, from, to time.Duration, link netlab.Rate) Activity {
	a := Activity{From: from, To: to}
	if to <= from {
		return a
	}
	bps := link.BytesPerSecond()
	var start float64
	var busy, idle int
	for i, q := range pts {
		if q.T <= from {
			start = v(q)
		}
		if i == 0 {
			continue
		}
		p := pts[i-1]
		if p.T < from || q.T > to || q.T <= p.T {
			continue
		}
		a.Intervals++
		switch r := (v(q) - v(p)) / (q.T - p.T).Seconds() / bps; {
		case r >= BusyShare:
			busy++
		case r < IdleShare:
			idle++
		}
	}
	a.Bytes = v(pts[len(pts)-1]) - start
	a.Rate = a.Bytes / (to - from).Seconds() / bps
	if a.Intervals > 0 {
		a.Busy = float64(busy) / float64(a.Intervals)
		a.Idle = float64(idle) / float64(a.Intervals)
	}
	return a
}

// rates is v's rate in Mbit/s against seconds, over windows of up to n
// sample intervals, each placed at its window's middle: one 200 ms
// interval holds only a few pieces, so single intervals jitter.
func rates(pts []Point, v func(Point) float64, n int) plotter.XYs {
	var out plotter.XYs
	for i := 1; i < len(pts); i++ {
		p, q := pts[max(0, i-n)], pts[i]
		dt := (q.T - p.T).Seconds()
		if dt <= 0 {
			continue
		}
		out = append(out, plotter.XY{X: (p.T + q.T).Seconds() / 2, Y: (v(q) - v(p)) * 8 / dt / 1e6})
	}
	return out
}
