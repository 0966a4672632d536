package superseed

import (
	"maps"
	"math"
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
	// held says which pieces the seeder has, heldAt since when and
	// unheld how many it lacks: a blob still arriving from the origin
	// gains them one by one (hold), and a piece it does not have is never
	// offered.
	held   []bool
	heldAt []time.Time
	unheld int
	// spare fills the window of every peer that gains pieces slower
	// than the fastest peer has shown a host can, with the rarest pieces
	// in the swarm, once the seeder holds the whole blob: a seeder on a
	// link faster than a host's otherwise idles while the fleet is short
	// of upload, and a host that found few peers (connections are
	// capped) is fed. Not before it holds the blob: while the origin's
	// bytes arrive, the seeder's link is for pieces no one has (spare
	// offers then made an 8-host rollout on equal links 2.9x the limit
	// instead of 1.25x). Not to peers gaining at that best rate: they are
	// short of downlink, not of supply, and the bytes would only displace
	// a peer's.
	spare bool
	// bestRate is the highest gain rate any peer reached.
	bestRate float64
	// pieceLen is a piece's length in bytes, and seederRate the best rate
	// the seeder has sent at (bytes/s, the server measures it): together
	// with bestRate they say how many peers the seeder can feed at a
	// host's full rate at once, which bounds the peers with spare pieces
	// on their way (spareFed). On equal links that is one: with every
	// link at 10 Mbit/s, feeding every peer short of supply made 64
	// hosts 2.43x the limit instead of 1.66x, the peers waiting on
	// pieces trickling from the seeder's shared link.
	pieceLen, seederRate float64
	spareFed             int
}

type peerState struct {
	has, offered []bool
	// missing counts pieces not in has; pending those offered and missing.
	missing, pending int
	lastGain         time.Time
	// rate is the pieces it gained in a decaying sum (pieces/s, over
	// rateTau) as of rateAt.
	rate           float64
	joined, rateAt time.Time
	// spare marks the pieces it was offered as spare offers, spareOut
	// counts those still on their way.
	spare    []bool
	spareOut int
	// lastOffer is the hand-out's offer count when this peer was last
	// offered a piece: a piece that arrives goes to the peer that waited
	// longest, so arriving pieces spread over the fleet.
	lastOffer int
}

// rateTau is the time constant of a peer's gain rate: some pieces'
// worth at a host's link rate, so one piece more or less moves it little.
const rateTau = 2 * time.Second

// starvedBelow is the share of the best rate under which a peer counts
// as short of supply.
const starvedBelow = 0.85

// rateNow is the peer's gain rate decayed to now.
func (p *peerState) rateNow(now time.Time) float64 {
	return p.rate * math.Exp(-now.Sub(p.rateAt).Seconds()/rateTau.Seconds())
}

// gained adds k pieces to the peer's rate and returns the rate once it
// counts (a full rateTau after the peer joined, else 0).
func (p *peerState) gained(k int, now time.Time) float64 {
	p.rate = p.rateNow(now) + float64(k)/rateTau.Seconds()
	p.rateAt = now
	if now.Sub(p.joined) < rateTau {
		return 0
	}
	return p.rate
}

// offer is one piece to advertise to one peer.
type offer struct{ peer, piece int }

// newHandout is the policy for a stored blob: every piece is held.
func newHandout(pieces, window int, patience time.Duration) *handout {
	h := newGrowingHandout(pieces, window, patience)
	for i := range h.held {
		h.held[i] = true
	}
	h.unheld = 0
	return h
}

// newGrowingHandout is the policy for a blob still arriving from the
// origin: no piece is held until hold says so.
func newGrowingHandout(pieces, window int, patience time.Duration) *handout {
	return &handout{
		window:   max(window, 1),
		patience: patience,
		avail:    make([]int, pieces),
		inflight: make([]int, pieces),
		peers:    map[int]*peerState{},
		held:     make([]bool, pieces),
		heldAt:   make([]time.Time, pieces),
		unheld:   pieces,
	}
}

// hold records that the seeder has a piece now, and offers it to the
// peer with room in its window that waited longest for an offer (the
// fewest pending first), unless a peer already has it or the whole blob is
// elsewhere. One peer gets it: the others trade for it, as for any piece.
func (h *handout) hold(piece int, now time.Time) []offer {
	if piece < 0 || piece >= len(h.held) || h.held[piece] {
		return nil
	}
	h.held[piece], h.heldAt[piece] = true, now
	h.unheld--
	if h.elsewhere || h.avail[piece] > 0 {
		return nil
	}
	best, bestID := (*peerState)(nil), 0
	for _, id := range slices.Sorted(maps.Keys(h.peers)) {
		p := h.peers[id]
		if p.has[piece] || p.pending >= h.window {
			continue
		}
		if best == nil || p.pending < best.pending || (p.pending == best.pending && p.lastOffer < best.lastOffer) {
			best, bestID = p, id
		}
	}
	if best == nil {
		// Every peer's window is full: the piece goes out as one frees
		// (topUp), front first like the rest.
		return nil
	}
	return []offer{h.give(bestID, best, piece)}
}

// join registers a peer that has nothing yet and returns its first offers.
func (h *handout) join(peer int, now time.Time) []offer {
	n := len(h.avail)
	h.peers[peer] = &peerState{has: make([]bool, n), offered: make([]bool, n), spare: make([]bool, n), missing: n, lastGain: now, joined: now, rateAt: now}
	return h.topUp(peer, nil)
}

// have records that a peer verified pieces (a have message, or the bits
// of its bitfield) and returns what to offer it next.
func (h *handout) have(peer int, pieces []int, now time.Time) []offer {
	p := h.peers[peer]
	if p == nil {
		return nil
	}
	newPieces := 0
	for _, i := range pieces {
		if i < 0 || i >= len(h.avail) || p.has[i] {
			continue
		}
		newPieces++
		p.has[i] = true
		p.missing--
		p.lastGain = now
		h.avail[i]++
		if p.offered[i] {
			p.pending--
			h.inflight[i]--
			if p.spare[i] {
				h.spareArrived(p)
			}
		}
	}
	h.bestRate = max(h.bestRate, p.gained(newPieces, now))
	return h.spareFor(peer, p, now, h.topUp(peer, nil))
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
	if p.spareOut > 0 {
		h.spareFed--
	}
	var out []offer
	for id := range h.peers {
		out = h.topUp(id, out)
	}
	return out
}

// hasAll reports whether a peer has said it has every piece.
func (h *handout) hasAll(peer int) bool {
	p := h.peers[peer]
	return p != nil && p.missing == 0
}

// offered reports whether a peer may request the piece: one it was
// offered, which the seeder therefore holds.
func (h *handout) offered(peer, piece int) bool {
	p := h.peers[peer]
	return p != nil && piece >= 0 && piece < len(p.offered) && p.offered[piece]
}

// tick offers one more piece to each peer that has waited out its patience
// with nothing offered and nothing gained. Only pieces held for a patience
// count: a peer that had nothing to gain because the origin had not sent
// it yet was not left waiting, and its neighbours are about to trade the
// newest piece to it. Other peers get spare offers if they are short of
// supply: a rate falls between haves, so it is looked at here too.
func (h *handout) tick(now time.Time) []offer {
	var out []offer
	// In peer order, so the outcome does not depend on map iteration.
	for _, id := range slices.Sorted(maps.Keys(h.peers)) {
		p := h.peers[id]
		if p.missing == 0 {
			continue
		}
		if p.pending > 0 || now.Sub(p.lastGain) < h.patience {
			out = h.spareFor(id, p, now, out)
			continue
		}
		if i := h.rarest(p, now, h.patience); i >= 0 {
			p.lastGain = now
			out = append(out, h.give(id, p, i))
		}
	}
	return out
}

// topUp offers the peer held pieces no one has or is getting, front first
// (a client streams the blob from the start), until its window is full.
func (h *handout) topUp(peer int, out []offer) []offer {
	p := h.peers[peer]
	if h.elsewhere {
		return out
	}
	for i := 0; i < len(h.avail) && p.pending < h.window; i++ {
		if h.held[i] && !p.has[i] && !p.offered[i] && h.avail[i] == 0 && h.inflight[i] == 0 {
			out = append(out, h.give(peer, p, i))
		}
	}
	return out
}

// spareFor fills the window of a peer short of supply with the rarest
// pieces it lacks, when spare offers are on. Also once the blob is
// complete elsewhere: a peer left behind is what they are for.
func (h *handout) spareFor(peer int, p *peerState, now time.Time, out []offer) []offer {
	if !h.spare || h.unheld > 0 || h.bestRate == 0 || p.rateNow(now) >= starvedBelow*h.bestRate {
		return out
	}
	if p.spareOut == 0 && h.spareFed >= h.spareRoom() {
		return out
	}
	for p.pending < h.window {
		i := h.rarest(p, now, 0)
		if i < 0 {
			break
		}
		out = append(out, h.give(peer, p, i))
		p.spare[i] = true
		if p.spareOut == 0 {
			h.spareFed++
		}
		p.spareOut++
	}
	return out
}

// spareRoom is how many peers the seeder can feed at once at the best
// rate a peer has gained at: at least one, so a peer left behind on
// equal links is still fed.
func (h *handout) spareRoom() int {
	perPeer := h.bestRate * h.pieceLen
	if perPeer <= 0 || h.seederRate <= perPeer {
		return 1
	}
	return int(h.seederRate / perPeer)
}

// spareArrived is a spare piece verified at its peer.
func (h *handout) spareArrived(p *peerState) {
	p.spareOut--
	if p.spareOut == 0 {
		h.spareFed--
	}
}

// rarest is the piece held for at least age (any held piece for 0) that
// the peer lacks and was not offered, that the fewest peers have or are
// getting, or -1.
func (h *handout) rarest(p *peerState, now time.Time, age time.Duration) int {
	best := -1
	for i := range h.avail {
		if !h.held[i] || (age > 0 && now.Sub(h.heldAt[i]) < age) || p.has[i] || p.offered[i] {
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
	p.lastOffer = h.offers
	return offer{peer: peer, piece: piece}
}
