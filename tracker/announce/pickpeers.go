package announce

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// pickPeers chooses up to want peers of pool for self: never self (by id, nor
// an older entry at its address), seeders first, then leechers that need the
// least. It reorders pool.
//
// Leechers rank by the power of two of what they still need, not by the exact
// byte count: in a fleet that started together nearly every leecher has a
// different count, and an exact order would send every requester to the same
// few leechers. Peers of equal rank come in random order.
func pickPeers(pool []peerstore.Peer, self peerstore.Peer, want int) []peerstore.Peer {
	pool = slices.DeleteFunc(pool, func(p peerstore.Peer) bool {
		return p.ID == self.ID || p.Addr == self.Addr
	})
	slices.SortFunc(pool, func(a, b peerstore.Peer) int {
		return cmp.Compare(rank(a), rank(b))
	})
	want = min(want, len(pool))
	// Each run of equal rank gets a partial Fisher-Yates shuffle of the
	// places handed out: the same random order as shuffling the pool before
	// a stable sort, at the cost of only the peers returned.
	for start := 0; start < want; {
		end := start + 1
		for end < len(pool) && rank(pool[end]) == rank(pool[start]) {
			end++
		}
		for i := start; i < min(end, want); i++ {
			j := i + rand.IntN(end-i)
			pool[i], pool[j] = pool[j], pool[i]
		}
		start = end
	}
	return pool[:want]
}

// rank is 0 for a seeder and grows with what a leecher still needs.
func rank(p peerstore.Peer) int {
	return bits.Len64(uint64(p.Left))
}
