package swarmsim

import (
	"math"
	"slices"
	"testing"
)

// slow is the sweep's shape: 16 MiB in 2 layers, 10 Mbit/s host links,
// origin and tracker at 100 Mbit/s.
func slow(hosts int) Shape { return shapeOf(hosts, 2, 16, 10, 100, 100) }

func run(t *testing.T, s Shape, p Params) Result {
	t.Helper()
	r, err := Run(s, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Done) != s.Hosts {
		t.Fatalf("%d hosts done of %d", len(r.Done), s.Hosts)
	}
	return r
}

func TestOneHostTakesTheImageAtItsLinkPlusStartUp(t *testing.T) {
	p := Defaults()
	s := slow(1)
	r := run(t, s, p)
	transfer := float64(s.Image) * 8 / (s.Host * p.WireEfficiency)
	// The seeder relays each piece as it arrives at ten times the host's
	// rate: one host waits for no more than its first piece beyond that.
	low, high := p.StartUp.Seconds()+transfer, p.StartUp.Seconds()+transfer+2*pieceSeconds(s, p)
	if r.AllDone() < low || r.AllDone() > high {
		t.Errorf("one host done at %.3f s, want %.3f-%.3f s (start-up + image at its link)", r.AllDone(), low, high)
	}
}

func pieceSeconds(s Shape, p Params) float64 {
	return float64(s.PieceLength()) * 8 / (s.Host * p.WireEfficiency)
}

func TestASlowOriginBindsTheFleet(t *testing.T) {
	s := shapeOf(4, 2, 16, 100, 10, 100)
	p := Defaults()
	r := run(t, s, p)
	if origin := float64(s.Image) * 8 / (s.Origin * p.WireEfficiency); r.Done[0] < origin {
		t.Errorf("first host done at %.2f s, before the origin could send the image (%.2f s)", r.Done[0], origin)
	}
}

func TestTheOriginSendsEachByteOnce(t *testing.T) {
	for _, n := range []int{1, 8, 64} {
		r := run(t, slow(n), Defaults())
		if math.Abs(r.OriginBytes/float64(slow(n).Image)-1) > 1e-9 {
			t.Errorf("%d hosts: origin sent %.0f bytes, want the image's %d", n, r.OriginBytes, slow(n).Image)
		}
	}
}

func TestTheSeederSendsEachPieceAboutOnce(t *testing.T) {
	// With spare offers off, up to one host per piece every host is
	// offered pieces at once and nobody waits out the seeder's patience.
	// Spare offers spend the seeder's link, ten times a host's, on
	// purpose (TestSpareOffersSpendTheSeedersFasterLink). At 32 hosts
	// even without them a piece crosses the 5 peers of the connection
	// cap too slowly, and some patience runs out: 1.06x.
	p := Defaults()
	p.Spare = false
	for _, n := range []int{2, 8} {
		s := slow(n)
		r := run(t, s, p)
		if x := r.SeederBytes / float64(s.Image); x < 0.999 || x > 1.02 {
			t.Errorf("%d hosts: seeder sent %.3fx the image, want 1.00-1.02x", n, x)
		}
	}
}

func TestSpareOffersSpendTheSeedersFasterLink(t *testing.T) {
	s := slow(32)
	off := Defaults()
	off.Spare = false
	without, with := run(t, s, off), run(t, s, Defaults())
	if with.AllDone() >= without.AllDone() || with.SeederBytes <= without.SeederBytes {
		t.Errorf("32 hosts: with spare offers all done at %.2f s, the seeder sending %.2fx the image; without, %.2f s and %.2fx: want sooner, for more",
			with.AllDone(), with.SeederBytes/float64(s.Image), without.AllDone(), without.SeederBytes/float64(s.Image))
	}
}

func TestNoFleetBeatsTheLimitOrAFleetHalfItsSize(t *testing.T) {
	// Under the connection cap each seed forms another graph of
	// connections, which moves a fleet's time by a few percent (8 hosts:
	// 16.8-17.6 s over seeds 1-4): a fleet may beat half its size by
	// less than that.
	const noise = 0.03
	prev := 0.0
	for _, n := range []int{1, 2, 4, 8, 16, 32} {
		s := slow(n)
		r := run(t, s, Defaults())
		if r.Done[0] < s.Limit() {
			t.Errorf("%d hosts: first done at %.2f s, below the limit %.2f s", n, r.Done[0], s.Limit())
		}
		if r.AllDone() < prev*(1-noise) {
			t.Errorf("%d hosts all done at %.2f s, before half as many (%.2f s)", n, r.AllDone(), prev)
		}
		prev = r.AllDone()
	}
}

func TestTheUploadCapBindsWhenTheSeederCannotHelp(t *testing.T) {
	// 32 hosts each get one piece of each blob from the seeder and upload
	// it to the 31 others: the fleet's uplinks at 88% carry 31/32 of the
	// image per host.
	p := Defaults()
	s := slow(32)
	r := run(t, s, p)
	uploads := float64(s.Image) * 8 * 31 / 32 / (s.Host * p.UploadCap)
	if r.AllDone() < uploads {
		t.Errorf("all done at %.2f s, faster than the capped uplinks allow (%.2f s)", r.AllDone(), uploads)
	}
}

func TestSameSeedSameRollout(t *testing.T) {
	a, b := run(t, slow(16), Defaults()), run(t, slow(16), Defaults())
	if !slices.Equal(a.Done, b.Done) {
		t.Errorf("two runs with one seed differ: %v and %v", a.Done, b.Done)
	}
}

func TestQuantile(t *testing.T) {
	r := Result{Done: []float64{1, 2, 3, 4}}
	for q, want := range map[float64]float64{0.25: 1, 0.5: 2, 0.95: 4, 1: 4} {
		if got := r.Quantile(q); got != want {
			t.Errorf("Quantile(%g) = %g, want %g", q, got, want)
		}
	}
}

func TestLimitIsTheSlowestLink(t *testing.T) {
	s := shapeOf(8, 2, 64, 100, 50, 100)
	if got, want := s.Limit(), 64*8*1.048576/50; math.Abs(got-want) > 1e-9 {
		t.Errorf("limit %.4f s, want %.4f s", got, want)
	}
}

func TestBadShapes(t *testing.T) {
	for _, s := range []Shape{{}, {1, 2, 1, 1, 1, 1}, {1, 1, mib, 0, 1, 1}} {
		if _, err := Run(s, Defaults()); err == nil {
			t.Errorf("Run(%v) did not fail", s)
		}
	}
}

// connected is a fleet of the shape with every host announced and
// connected to every other, before anything moved.
func connected(t *testing.T, s Shape) *fleet {
	t.Helper()
	f := newFleet(s, Defaults())
	for i := range f.hosts {
		f.hosts[i].announced = true
		for j := range i {
			for b := range f.blobs {
				f.connect(b, i, j)
			}
		}
	}
	return f
}

func TestAMirrorSendsAllPiecesAskedOfItAtOnce(t *testing.T) {
	f := connected(t, slow(3))
	for _, p := range []int{0, 1, 2} {
		f.hosts[0].blobs[0].has[p] = true
		f.hosts[1].blobs[0].avail[p]++
	}
	f.fetch(1)
	f.share()
	if len(f.transfers) != 3 {
		t.Fatalf("host 1 asks for %d pieces of the 3 host 0 has, want all 3", len(f.transfers))
	}
	for _, tr := range f.transfers {
		if want := f.caps[0] / 3; math.Abs(tr.rate-want) > 1e-9 {
			t.Errorf("piece %d moves at %.0f B/s, want a third of the uplink, %.0f B/s (anacrolix answers in map order)", tr.piece, tr.rate, want)
		}
	}
}

func TestTheSeederSendsItsLowestPieceFirst(t *testing.T) {
	f := connected(t, slow(1))
	for p := range 2 {
		f.hosts[0].blobs[0].offered[p] = true
	}
	f.fetch(0)
	f.share()
	rates := map[int]float64{}
	for _, tr := range f.transfers {
		rates[tr.piece] = tr.rate
	}
	if len(rates) != 2 || rates[0] == 0 || rates[1] != 0 {
		t.Errorf("rates by piece %v: want piece 0 alone moving (superseed conn.next)", rates)
	}
}
