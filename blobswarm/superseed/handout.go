package superseed

import (
	"maps"
	"slices"
	"time"
)

// handout is the super-seeding policy for one blob: which pieces the seeder
// advertises to which peer. A peer can only ask for what it was offered, so
// the seeder offers each piece to one peer and lets the fleet trade it on;
// every mirror asking the seeder for the same front pieces is what made
// stock BitTorrent seeders send an image five times over.
//
// It is a function of the events it is told, with the clock passed in: no
// I/O, no goroutines, no lock of its own (its blob's lock guards it).
type handout struct {
	// window is how many offered pieces a peer may lack at once: enough to
	// keep its link busy, few enough that the pieces spread over the fleet.
	window int
	// patience is how long a peer may gain nothing, with nothing offered,
	// before it is offered a piece others already have or are getting: a
	// peer that cannot reach the holders must not wait for the stall timer.
	patience time.Duration
	// avail counts connected peers that have each piece; inflight counts
	// those it is offered to that do not have it yet.
	avail, inflight []int
	// offers counts every piece advertised, for the seeder's metrics.
	offers int
	peers  map[int]*peerState
	// elsewhere says a peer the seeder is not connected to has the whole
	// blob (a mirror that finished drops its connection to the seeder):
	// then nothing is uncovered, and newcomers get it from the fleet.
	elsewhere bool
}

type peerState struct {
	has, offered []bool
	// missing counts pieces not in has; pending those offered and missing.
	missing, pending int
	lastGain         time.Time
}

// offer is one piece to advertise to one peer.
type offer struct{ peer, piece int }

func newHandout(pieces, window int, patience time.Duration) *handout {
	return &handout{
		window:   max(window, 1),
		patience: patience,
		avail:    make([]int, pieces),
		inflight: make([]int, pieces),
		peers:    map[int]*peerState{},
	}
}

// join registers a peer that has nothing yet and returns its first offers.
func (h *handout) join(peer int, now time.Time) []offer {
	n := len(h.avail)
	h.peers[peer] = &peerState{has: make([]bool, n), offered: make([]bool, n), missing: n, lastGain: now}
	return h.topUp(peer, nil)
}

// have records that a peer verified pieces (a have message, or the bits
// of its bitfield) and returns what to offer it next.
func (h *handout) have(peer int, pieces []int, now time.Time) []offer {
	p := h.peers[peer]
	if p == nil {
		return nil
	}
	for _, i := range pieces {
		if i < 0 || i >= len(h.avail) || p.has[i] {
			continue
		}
		p.has[i] = true
		p.missing--
		p.lastGain = now
		h.avail[i]++
		if p.offered[i] {
			p.pending--
			h.inflight[i]--
		}
	}
	return h.topUp(peer, nil)
}

// leave forgets a peer. Pieces only it held or was getting are offered to
// the others again.
func (h *handout) leave(peer int) []offer {
	p := h.peers[peer]
	if p == nil {
		return nil
	}
	delete(h.peers, peer)
	for i := range p.has {
		switch {
		case p.has[i]:
			h.avail[i]--
		case p.offered[i]:
			h.inflight[i]--
		}
	}
	var out []offer
	for id := range h.peers {
		out = h.topUp(id, out)
	}
	return out
}

// offered reports whether a peer may request the piece.
func (h *handout) offered(peer, piece int) bool {
	p := h.peers[peer]
	return p != nil && piece >= 0 && piece < len(p.offered) && p.offered[piece]
}

// tick offers one more piece to each peer that has waited out its patience
// with nothing offered and nothing gained.
func (h *handout) tick(now time.Time) []offer {
	var out []offer
	// In peer order, so the outcome does not depend on map iteration.
	for _, id := range slices.Sorted(maps.Keys(h.peers)) {
		p := h.peers[id]
		if p.missing == 0 || p.pending > 0 || now.Sub(p.lastGain) < h.patience {
			continue
		}
		if i := h.leastSpread(p); i >= 0 {
			p.lastGain = now
			out = append(out, h.give(id, p, i))
		}
	}
	return out
}

// topUp offers the peer pieces no one has or is getting, front first (a
// client streams the blob from the start), until its window is full.
func (h *handout) topUp(peer int, out []offer) []offer {
	p := h.peers[peer]
	if h.elsewhere {
		return out
	}
	for i := 0; i < len(h.avail) && p.pending < h.window; i++ {
		if !p.has[i] && !p.offered[i] && h.avail[i] == 0 && h.inflight[i] == 0 {
			out = append(out, h.give(peer, p, i))
		}
	}
	return out
}

// leastSpread is the piece the peer lacks and was not offered that the
// fewest peers have or are getting, or -1.
func (h *handout) leastSpread(p *peerState) int {
	best := -1
	for i := range h.avail {
		if p.has[i] || p.offered[i] {
			continue
		}
		if best < 0 || h.avail[i]+h.inflight[i] < h.avail[best]+h.inflight[best] {
			best = i
		}
	}
	return best
}

func (h *handout) give(peer int, p *peerState, piece int) offer {
	p.offered[piece] = true
	p.pending++
	h.inflight[piece]++
	h.offers++
	return offer{peer: peer, piece: piece}
}
