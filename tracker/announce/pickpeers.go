package announce

import (
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
	want = min(want, len(pool))
	// A counting sort by rank, in place (an American flag sort): with only
	// 65 ranks it costs a few passes over the pool, where a comparison
	// sort cost a tenth of the tracker's time.
	var count, next, end [65]int
	for i := range pool {
		count[rank(pool[i])]++
	}
	for r, n := range count {
		next[r] = end[max(r-1, 0)]
		end[r] = next[r] + n
	}
	for r := range count {
		for i := next[r]; i < end[r]; i = next[r] {
			to := rank(pool[i])
			if to != r {
				pool[i], pool[next[to]] = pool[next[to]], pool[i]
			}
			next[to]++
		}
	}
	// Each rank's run gets a partial Fisher-Yates shuffle of the places
	// handed out: the same random order as shuffling the whole pool before
	// a stable sort, at the cost of only the peers returned.
	for r := range count {
		for i := end[r] - count[r]; i < min(end[r], want); i++ {
			j := i + rand.IntN(end[r]-i)
			pool[i], pool[j] = pool[j], pool[i]
		}
	}
	return pool[:want]
}

// rank is 0 for a seeder and grows with what a leecher still needs.
func rank(p peerstore.Peer) int {
	return bits.Len64(uint64(p.Left))
}
