package announce

import (
	"math/bits"
	"math/rand/v2"

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
	var count, next, end [65]int // by rank
	kept := pool[:0]
	for _, p := range pool {
		if p.ID != self.ID && p.Addr != self.Addr {
			kept = append(kept, p)
			count[rank(p)]++
		}
	}
	pool, want = kept, min(want, len(kept))
	// A counting sort by rank, in place (an American flag sort), as far as
	// the answer reaches: with only 65 ranks it costs a pass over the pool,
	// where a comparison sort cost a tenth of the tracker's time.
	for r, n := range count {
		next[r] = end[max(r-1, 0)]
		end[r] = next[r] + n
	}
	for r := range count {
		begin := end[r] - count[r]
		if begin >= want {
			break
		}
		for i := next[r]; i < end[r]; i = next[r] {
			to := rank(pool[i])
			if to != r {
				pool[i], pool[next[to]] = pool[next[to]], pool[i]
			}
			next[to]++
		}
		// A partial Fisher-Yates shuffle of the run's places handed out:
		// the same random order as shuffling the whole pool before a
		// stable sort, at the cost of only the peers returned.
		for i := begin; i < min(end[r], want); i++ {
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
