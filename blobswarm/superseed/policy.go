package superseed

import "time"

// Policy is the seeder's hand-out policy for one blob arriving from the
// origin, for replaying a rollout without a network: the fleet simulator
// (integration/swarmsim) drives the very rules the server runs, so what it
// predicts rests on the product's seeder, not on a second copy of it.
type Policy struct{ h *handout }

// Offer is one piece advertised to one peer.
type Offer struct{ Peer, Piece int }

// NewPolicy is the policy of a growing blob of the given pieces of
// pieceLen bytes, offering each peer window pieces at a time (at least
// one), with the server's patience and spare offers (Config.Spare).
func NewPolicy(pieces int, pieceLen int64, window int, patience time.Duration, spare bool) *Policy {
	h := newGrowingHandout(pieces, window, patience)
	h.spare, h.pieceLen = spare, float64(pieceLen)
	return &Policy{h: h}
}

// SetSeederRate says how fast the seeder's link has shown it can send,
// in bytes/s (the server measures it every second).
func (p *Policy) SetSeederRate(r float64) { p.h.seederRate = r }

// Hold says the seeder has the piece now (Growing.Have).
func (p *Policy) Hold(piece int, now time.Time) []Offer { return exported(p.h.hold(piece, now)) }

// Join registers a peer that connected with nothing.
func (p *Policy) Join(peer int, now time.Time) []Offer { return exported(p.h.join(peer, now)) }

// Have says the peer verified the pieces.
func (p *Policy) Have(peer int, pieces []int, now time.Time) []Offer {
	return exported(p.h.have(peer, pieces, now))
}

// Leave forgets a peer that disconnected.
func (p *Policy) Leave(peer int) []Offer { return exported(p.h.leave(peer)) }

// Tick lets time pass (the server calls it every TickEvery).
func (p *Policy) Tick(now time.Time) []Offer { return exported(p.h.tick(now)) }

// SetElsewhere says whether some peer the seeder is not connected to has
// the whole blob (the server asks the tracker's peer store on every tick).
func (p *Policy) SetElsewhere(v bool) { p.h.elsewhere = v }

func exported(offers []offer) []Offer {
	out := make([]Offer, len(offers))
	for i, o := range offers {
		out[i] = Offer{Peer: o.peer, Piece: o.piece}
	}
	return out
}
