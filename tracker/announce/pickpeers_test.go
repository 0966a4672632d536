package announce

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

func testPeer(n int, left int64) peerstore.Peer {
	return peerstore.Peer{
		ID:   peerstore.PeerID{byte(n)},
		Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}), 7000),
		Left: left,
	}
}

func TestPickPeersExcludesRequester(t *testing.T) {
	self := testPeer(1, 500)
	sameID := self
	sameID.Addr = netip.MustParseAddrPort("10.9.9.9:1")
	sameAddr := testPeer(2, 0)
	sameAddr.Addr = self.Addr
	others := []peerstore.Peer{testPeer(3, 0), testPeer(4, 7)}
	pool := append([]peerstore.Peer{sameID, sameAddr}, others...)

	got := pickPeers(pool, self, 10)
	if len(got) != 2 || !slices.Contains(got, others[0]) || !slices.Contains(got, others[1]) {
		t.Errorf("pickPeers = %v, want only %v", got, others)
	}
}

func TestPickPeersOrdersByCompletion(t *testing.T) {
	pool := []peerstore.Peer{testPeer(1, 1<<20), testPeer(2, 0), testPeer(3, 1<<10), testPeer(4, 1<<30), testPeer(5, 0)}
	got := pickPeers(pool, testPeer(9, 1), 4)
	if len(got) != 4 {
		t.Fatalf("pickPeers gave %d peers, want 4", len(got))
	}
	if !got[0].Seeder() || !got[1].Seeder() {
		t.Errorf("pickPeers = %v, want the two seeders first", got)
	}
	if got[2].Left != 1<<10 || got[3].Left != 1<<20 {
		t.Errorf("pickPeers = %v, want leechers by least left, the furthest behind left out", got)
	}
}

// Peers of equal rank must not come in the same order to every requester,
// or the first few of them would be dialled by the whole fleet.
func TestPickPeersShufflesEqualRanks(t *testing.T) {
	// 1000 and 1023 bytes left rank alike; 0 (seeders) ranks first.
	base := []peerstore.Peer{testPeer(1, 1000), testPeer(2, 1023), testPeer(3, 0), testPeer(4, 0), testPeer(5, 0)}
	firstSeeder := map[peerstore.PeerID]bool{}
	firstLeecher := map[peerstore.PeerID]bool{}
	for range 50 {
		got := pickPeers(slices.Clone(base), testPeer(9, 1), 5)
		firstSeeder[got[0].ID] = true
		firstLeecher[got[3].ID] = true
		if got[3].Seeder() || !got[2].Seeder() {
			t.Fatalf("pickPeers = %v, want the three seeders first", got)
		}
	}
	if len(firstSeeder) < 2 || len(firstLeecher) < 2 {
		t.Errorf("in 50 answers the first seeder was always one of %d and the first leecher one of %d", len(firstSeeder), len(firstLeecher))
	}
}

// In pools of every size, with any mix of ranks, the answer is the most
// complete peers of the pool in order of rank, each once.
func TestPickPeersTakesTheMostComplete(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		pool := make([]peerstore.Peer, r.IntN(250))
		for i := range pool {
			// Lefts from 0 to 2^40, so that many ranks occur, some of them often.
			pool[i] = testPeer(i, int64(r.IntN(3))*(int64(1)<<r.IntN(40)+r.Int64N(1000)))
		}
		want := r.IntN(60)
		self := peerstore.Peer{ID: peerstore.PeerID{1, 1}, Addr: netip.MustParseAddrPort("10.9.9.9:1")}
		got := pickPeers(slices.Clone(pool), self, want)
		if len(got) != min(want, len(pool)) {
			t.Fatalf("%d peers from a pool of %d for want %d", len(got), len(pool), want)
		}
		if !slices.IsSortedFunc(got, func(a, b peerstore.Peer) int { return rank(a) - rank(b) }) {
			t.Fatalf("answer not in order of rank: %v", got)
		}
		handed := map[peerstore.PeerID]bool{}
		for _, p := range got {
			if handed[p.ID] || !slices.Contains(pool, p) {
				t.Fatalf("answer %v repeats a peer or holds one not in the pool", got)
			}
			handed[p.ID] = true
		}
		for _, p := range pool {
			if len(got) > 0 && !handed[p.ID] && rank(p) < rank(got[len(got)-1]) {
				t.Fatalf("left out %v (rank %d) but handed out %v", p, rank(p), got[len(got)-1])
			}
		}
	}
}
