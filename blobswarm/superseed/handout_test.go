package superseed

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pieces(offers []offer, peer int) []int {
	var out []int
	for _, o := range offers {
		if o.peer == peer {
			out = append(out, o.piece)
		}
	}
	return out
}

// A fleet joining at once gets disjoint pieces, front first, each a window.
func TestHandoutSpreadsPiecesOverTheFleet(t *testing.T) {
	h := newHandout(10, 2, time.Second)
	got := [][]int{
		pieces(h.join(1, t0), 1),
		pieces(h.join(2, t0), 2),
		pieces(h.join(3, t0), 3),
	}
	want := [][]int{{0, 1}, {2, 3}, {4, 5}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("offers = %v, want %v", got, want)
	}
	// Peer 1 got piece 0 from the seeder and piece 2 from peer 2: only
	// the one it was offered frees a slot in its window.
	if o := pieces(h.have(1, []int{2}, t0), 1); len(o) != 0 {
		t.Fatalf("piece from a peer freed no slot, but got offers %v", o)
	}
	if o := pieces(h.have(1, []int{0}, t0), 1); !slices.Equal(o, []int{6}) {
		t.Fatalf("after piece 0, offers = %v, want [6]", o)
	}
}

// Once every piece is somewhere in the fleet, the seeder offers nothing
// more: each piece went out once, the peers trade the rest.
func TestHandoutOffersEachPieceOnce(t *testing.T) {
	const n, peers = 16, 4
	h := newHandout(n, 2, time.Second)
	count := make([]int, n)
	queue := map[int][]int{}
	for p := range peers {
		for _, o := range h.join(p, t0) {
			count[o.piece]++
			queue[o.peer] = append(queue[o.peer], o.piece)
		}
	}
	// Peers complete what they are offered, and tell the seeder.
	for progress := true; progress; {
		progress = false
		for p := range peers {
			if len(queue[p]) == 0 {
				continue
			}
			i := queue[p][0]
			queue[p] = queue[p][1:]
			progress = true
			for _, o := range h.have(p, []int{i}, t0) {
				count[o.piece]++
				queue[o.peer] = append(queue[o.peer], o.piece)
			}
		}
	}
	for i, c := range count {
		if c != 1 {
			t.Errorf("piece %d offered %d times, want once", i, c)
		}
	}
	if h.offers != n {
		t.Errorf("offers = %d, want %d", h.offers, n)
	}
	// Trading among peers: the seeder stays quiet.
	for p := range peers {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		if o := h.have(p, all, t0); len(o) != 0 {
			t.Errorf("peer %d complete, yet offered %v", p, o)
		}
	}
}

// A peer that leaves with pieces no one else has: those go to the others.
func TestHandoutReoffersWhatALeavingPeerHeld(t *testing.T) {
	h := newHandout(4, 2, time.Second)
	h.join(1, t0) // 0, 1
	h.join(2, t0) // 2, 3
	h.have(1, []int{0}, t0)
	h.have(2, []int{2, 3}, t0)
	// Peer 1 had piece 0 and was getting 1; now it is gone.
	o := h.leave(1)
	if got := pieces(o, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("offers to peer 2 after peer 1 left = %v, want [0 1]", got)
	}
	if h.offered(1, 0) {
		t.Fatal("a gone peer may still request")
	}
}

// A peer that gains nothing and has nothing offered is not left waiting
// for the stall timer: after its patience it gets the least spread piece.
func TestHandoutPatience(t *testing.T) {
	h := newHandout(4, 2, time.Second)
	h.join(1, t0) // 0, 1
	h.join(2, t0) // 2, 3
	h.have(1, []int{0, 1, 2, 3}, t0)
	h.have(2, []int{0}, t0)
	h.join(3, t0) // nothing uncovered: must get pieces from peers 1 and 2
	if o := h.tick(t0.Add(500 * time.Millisecond)); len(o) != 0 {
		t.Fatalf("offers before patience ran out: %v", o)
	}
	o := h.tick(t0.Add(time.Second))
	// Piece 0 is held by two peers, 1 by one, 2 and 3 by one and being
	// fetched by peer 2 (which still has offers pending, so gets none):
	// 1 is the least spread.
	if got := [][]int{pieces(o, 2), pieces(o, 3)}; !slices.EqualFunc(got, [][]int{nil, {1}}, slices.Equal) {
		t.Fatalf("offers to peers 2 and 3 = %v, want none and [1]", got)
	}
	if o := h.tick(t0.Add(1500 * time.Millisecond)); len(o) != 0 {
		t.Fatalf("peers with an offer pending got more: %v", o)
	}
	if !h.offered(3, 1) || h.offered(3, 0) {
		t.Fatal("requests must be allowed for exactly the offered pieces")
	}
}

// With the whole blob somewhere in the fleet, a newcomer is offered
// nothing but what its patience earns: the seeder is not its source.
func TestHandoutCompleteElsewhere(t *testing.T) {
	h := newHandout(4, 2, time.Second)
	h.elsewhere = true
	if o := h.join(1, t0); len(o) != 0 {
		t.Fatalf("offers with a complete peer elsewhere: %v", o)
	}
	if o := pieces(h.tick(t0.Add(time.Second)), 1); !slices.Equal(o, []int{0}) {
		t.Fatalf("after its patience the newcomer got %v, want [0]", o)
	}
}

// Out-of-range pieces and unknown peers change nothing.
func TestHandoutIgnoresBadInput(t *testing.T) {
	h := newHandout(2, 1, time.Second)
	h.join(1, t0)
	if o := h.have(1, []int{-1, 2, 99}, t0); len(o) != 0 {
		t.Fatalf("bad piece numbers produced offers %v", o)
	}
	if o := h.have(7, []int{0}, t0); o != nil {
		t.Fatalf("unknown peer produced offers %v", o)
	}
	if h.offered(1, -1) || h.offered(1, 5) {
		t.Fatal("out-of-range piece reported offered")
	}
}

// A blob still arriving: nothing is offered before the seeder holds it,
// and a request for a piece not yet held is one never offered.
func TestHandoutOffersOnlyHeldPieces(t *testing.T) {
	h := newGrowingHandout(4, 2, time.Second)
	if o := h.join(1, t0); len(o) != 0 {
		t.Fatalf("offers before the seeder holds a piece: %v", o)
	}
	if o := h.tick(t0.Add(time.Hour)); len(o) != 0 {
		t.Fatalf("patience offered pieces the seeder does not hold: %v", o)
	}
	if h.offered(1, 0) || h.offered(1, 1) {
		t.Fatal("a piece not held may be requested")
	}
	if o := pieces(h.hold(0, t0), 1); !slices.Equal(o, []int{0}) {
		t.Fatalf("piece 0 arrived: offers %v, want [0]", o)
	}
	if !h.offered(1, 0) || h.offered(1, 1) {
		t.Fatal("requests must be allowed for exactly the held pieces offered")
	}
	if o := h.have(1, []int{0}, t0); len(o) != 0 {
		t.Fatalf("peer completed the only held piece, yet got offers %v", o)
	}
	if o := h.hold(0, t0); o != nil {
		t.Fatalf("a piece held twice was offered again: %v", o)
	}
	if o := pieces(h.hold(1, t0), 1); !slices.Equal(o, []int{1}) {
		t.Fatalf("piece 1 arrived: offers %v, want [1]", o)
	}
}

// Pieces arriving one by one go to one peer each, the one with room that
// waited longest, so the fleet starts trading from the first pieces; a
// piece that finds every window full goes out as a window frees.
func TestHandoutSpreadsArrivingPieces(t *testing.T) {
	h := newGrowingHandout(8, 2, time.Second)
	for p := 1; p <= 3; p++ {
		h.join(p, t0)
	}
	var got []offer
	for i := range 7 {
		got = append(got, h.hold(i, t0)...)
	}
	want := []offer{{1, 0}, {2, 1}, {3, 2}, {1, 3}, {2, 4}, {3, 5}}
	if !slices.Equal(got, want) {
		t.Fatalf("arriving pieces offered as %v, want %v", got, want)
	}
	// Piece 6 found every window full; peer 2 completing piece 1 frees
	// one.
	if o := pieces(h.have(2, []int{1}, t0), 2); !slices.Equal(o, []int{6}) {
		t.Fatalf("after piece 1, offers to peer 2 = %v, want [6]", o)
	}
	if h.offers != 7 {
		t.Fatalf("%d offers for 7 pieces, want one each", h.offers)
	}

	// Both idle: the next piece goes to the one offered a piece longest
	// ago, not to the first again.
	h = newGrowingHandout(4, 2, time.Second)
	h.join(1, t0)
	h.join(2, t0)
	h.hold(0, t0)
	h.have(1, []int{0}, t0)
	if o := h.hold(1, t0); !slices.Equal(o, []offer{{2, 1}}) {
		t.Fatalf("piece 1 with both peers idle offered as %v, want to peer 2", o)
	}
}

// The patience rule offers only pieces held for a patience: a peer that
// gained nothing because the origin had sent nothing was not stuck, and
// the newest piece is on its way to it through the fleet.
func TestHandoutPatienceOnlyForPiecesHeldAPatience(t *testing.T) {
	h := newGrowingHandout(4, 1, time.Second)
	h.join(1, t0)
	h.join(2, t0)
	later := t0.Add(5 * time.Second)
	if o := pieces(h.hold(0, later), 1); !slices.Equal(o, []int{0}) {
		t.Fatalf("piece 0 offers to peer 1 = %v, want [0]", o)
	}
	if o := h.tick(later.Add(500 * time.Millisecond)); len(o) != 0 {
		t.Fatalf("a piece held for half a patience went to a waiting peer: %v", o)
	}
	if o := pieces(h.tick(later.Add(time.Second)), 2); !slices.Equal(o, []int{0}) {
		t.Fatalf("after a patience, offers to peer 2 = %v, want [0]", o)
	}
}

// A stored blob's policy holds every piece from the start.
func TestHandoutOfAStoredBlobHoldsEverything(t *testing.T) {
	h := newHandout(3, 2, time.Second)
	if o := h.hold(1, t0); o != nil {
		t.Fatalf("holding a held piece offered %v", o)
	}
	if o := pieces(h.join(1, t0), 1); !slices.Equal(o, []int{0, 1}) {
		t.Fatalf("offers = %v, want [0 1]", o)
	}
}

// With spare offers on, a peer whose gains slow below the best a peer
// has shown is offered the pieces fewest peers have, a window of them;
// not while it gains at that rate, not with spare offers off, and not
// while the blob is still arriving from the origin.
func TestSpareOffersTheRarestPieceToAPeerShortOfSupply(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tc := range []struct {
		name          string
		spare, arrive bool
		want          []int
	}{
		{name: "spare", spare: true, want: []int{5, 2}},
		{name: "off", spare: false},
		{name: "blob still arriving", spare: true, arrive: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandout(6, 2, 10*time.Second)
			if tc.arrive {
				h = newGrowingHandout(7, 2, 10*time.Second)
				for i := range 6 {
					h.hold(i, t0)
				}
			}
			h.spare = tc.spare
			for p := 1; p <= 3; p++ {
				h.join(p, t0)
			}
			// Peers 2 and 3 hold every piece but 0 and 1 between them,
			// piece 5 once; peer 1 gains 0 and 1 a second apart.
			h.have(2, []int{2, 3}, at(500*time.Millisecond))
			h.have(3, []int{4, 5}, at(500*time.Millisecond))
			h.have(2, []int{4}, at(time.Second))
			h.have(3, []int{2, 3}, at(time.Second))
			h.have(1, []int{0}, at(time.Second))
			if o := pieces(h.have(1, []int{1}, at(2*time.Second)), 1); len(o) != 0 {
				t.Fatalf("a peer gaining at its best was offered %v", o)
			}
			if got := pieces(h.tick(at(3*time.Second)), 1); !slices.Equal(got, tc.want) {
				t.Fatalf("a second without gains: offers %v, want %v", got, tc.want)
			}
		})
	}
}

// A peer that never gained fast (it found few peers) is fed as soon as
// another peer has shown what a host can take, also after the blob is
// complete elsewhere: it is the one left behind. The fast peer is not.
func TestSpareFeedsAPeerSlowerThanTheFleet(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	h := newHandout(40, 2, time.Minute)
	h.spare = true
	h.join(1, t0)
	h.join(2, t0) // offered pieces 2 and 3
	h.elsewhere = true
	// Peer 1 gains ten pieces a second, peer 2 one: piece 2 at 1 s and
	// 3 at 2 s, when peer 1's rate has counted for rateTau.
	var slow []int
	for i := range 36 {
		now := at(time.Duration(i+1) * 100 * time.Millisecond)
		o := h.have(1, []int{i}, now)
		if i%10 == 9 {
			o = append(o, h.have(2, []int{2 + i/10}, now)...)
		}
		if got := pieces(o, 1); len(got) != 0 {
			t.Fatalf("at %v the fast peer was offered %v", now.Sub(t0), got)
		}
		if got := pieces(o, 2); len(got) > 0 && slow == nil {
			if now != at(2*time.Second) {
				t.Fatalf("the slow peer was first fed at %v, want 2s", now.Sub(t0))
			}
			slow = got
		}
	}
	if !slices.Equal(slow, []int{20, 21}) {
		t.Errorf("the slow peer was offered %v, want a window of the pieces no peer had, 20 and 21", slow)
	}
}

// The seeder feeds as many peers short of supply at once as its link
// carries at the best rate a peer gained at, and one where it has shown
// no more than that (equal links).
func TestSpareFeedsAsManyPeersAsTheSeedersLinkCarries(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tc := range []struct {
		seederRate float64
		want       int
	}{{0, 1}, {10, 1}, {30, 3}, {1000, 4}} {
		h := newHandout(40, 2, time.Minute)
		h.spare, h.pieceLen = true, 1
		for p := 1; p <= 5; p++ {
			h.join(p, t0)
		}
		h.elsewhere = true
		for p := 2; p <= 5; p++ {
			h.have(p, []int{2 * (p - 1), 2*(p-1) + 1}, at(100*time.Millisecond))
		}
		// Peer 1 gains ten pieces a second: the best rate, 10 bytes/s.
		for i := range 30 {
			h.have(1, []int{i}, at(time.Duration(i+1)*100*time.Millisecond))
		}
		h.seederRate = tc.seederRate
		fed := map[int]bool{}
		for _, o := range h.tick(at(3 * time.Second)) {
			fed[o.peer] = true
		}
		if fed[1] || len(fed) != tc.want {
			t.Errorf("seeder at %v bytes/s: fed peers %v, want %d of peers 2-5", tc.seederRate, fed, tc.want)
		}
	}
}
