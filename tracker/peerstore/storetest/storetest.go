// Package storetest is the conformance suite every peerstore.Store passes.
package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// Clock is a clock that moves only when told to, so expiry is tested without
// sleeping.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// NewStore returns an empty store that reads the time from now.
type NewStore func(t *testing.T, now func() time.Time) peerstore.Store

// Run checks the behaviour callers of a peerstore.Store rely on. Each subtest
// gets its own store.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s peerstore.Store, clock *Clock)
	}{
		{"Empty", testEmpty},
		{"AnnounceAndList", testAnnounceAndList},
		{"Expiry", testExpiry},
		{"Update", testUpdate},
		{"Remove", testRemove},
		{"Isolation", testIsolation},
		{"Limit", testLimit},
		{"AppendsToDst", testAppendsToDst},
		{"Concurrent", testConcurrent},
		{"ConcurrentEmptying", testConcurrentEmptying},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &Clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			tc.fn(t, newStore(t, clock.Now), clock)
		})
	}
}

var (
	ih1 = peerstore.InfoHash{1, 1, 1}
	ih2 = peerstore.InfoHash{2, 2, 2}
)

// peer returns a distinct peer for each n.
func peer(n int, left int64) peerstore.Peer {
	return peerstore.Peer{
		ID:   peerstore.PeerID{'p', byte(n >> 8), byte(n)},
		Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}), uint16(6881+n)),
		Left: left,
	}
}

func announce(t *testing.T, s peerstore.Store, ih peerstore.InfoHash, ttl time.Duration, peers ...peerstore.Peer) {
	t.Helper()
	for _, p := range peers {
		if err := s.Announce(context.Background(), ih, p, ttl); err != nil {
			t.Fatalf("Announce(%x, %v): %v", ih[:3], p, err)
		}
	}
}

func peersOf(t *testing.T, s peerstore.Store, ih peerstore.InfoHash, limit int) []peerstore.Peer {
	t.Helper()
	got, err := s.Peers(context.Background(), ih, limit, nil)
	if err != nil {
		t.Fatalf("Peers(%x, %d): %v", ih[:3], limit, err)
	}
	if len(got) > limit {
		t.Fatalf("Peers(%x, %d) returned %d peers", ih[:3], limit, len(got))
	}
	return got
}

// wantPeers checks that the swarm lists exactly want.
func wantPeers(t *testing.T, s peerstore.Store, ih peerstore.InfoHash, want ...peerstore.Peer) {
	t.Helper()
	got := peersOf(t, s, ih, len(want)+10)
	if err := sameSet(got, want); err != nil {
		t.Fatalf("Peers(%x): %v\ngot  %v\nwant %v", ih[:3], err, got, want)
	}
}

func sameSet(got, want []peerstore.Peer) error {
	seen := make(map[peerstore.Peer]bool, len(got))
	for _, p := range got {
		if seen[p] {
			return fmt.Errorf("%v listed twice", p)
		}
		seen[p] = true
	}
	for _, p := range want {
		if !seen[p] {
			return fmt.Errorf("%v missing", p)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d peers, want %d", len(got), len(want))
	}
	return nil
}

func wantCounts(t *testing.T, s peerstore.Store, ih peerstore.InfoHash, seeders, leechers int) {
	t.Helper()
	gotS, gotL, err := s.Counts(context.Background(), ih)
	if err != nil {
		t.Fatalf("Counts(%x): %v", ih[:3], err)
	}
	if gotS != seeders || gotL != leechers {
		t.Fatalf("Counts(%x) = %d seeders, %d leechers; want %d, %d", ih[:3], gotS, gotL, seeders, leechers)
	}
}

func testEmpty(t *testing.T, s peerstore.Store, _ *Clock) {
	wantPeers(t, s, ih1)
	wantCounts(t, s, ih1, 0, 0)
	if err := s.Remove(context.Background(), ih1, peer(1, 0).ID); err != nil {
		t.Fatalf("Remove from an unknown swarm: %v", err)
	}
}

func testAnnounceAndList(t *testing.T, s peerstore.Store, _ *Clock) {
	v6 := peer(3, 1<<40)
	v6.Addr = netip.MustParseAddrPort("[fd00::3]:7000")
	want := []peerstore.Peer{peer(1, 0), peer(2, 12345), v6}
	announce(t, s, ih1, time.Minute, want...)
	wantPeers(t, s, ih1, want...)
	wantCounts(t, s, ih1, 1, 2)
}

func testExpiry(t *testing.T, s peerstore.Store, clock *Clock) {
	short, long, renewed := peer(1, 10), peer(2, 20), peer(3, 0)
	announce(t, s, ih1, 10*time.Second, short, renewed)
	announce(t, s, ih1, time.Minute, long)

	clock.Advance(8 * time.Second)
	announce(t, s, ih1, 10*time.Second, renewed)
	clock.Advance(4 * time.Second)
	wantPeers(t, s, ih1, long, renewed)
	wantCounts(t, s, ih1, 1, 1)

	clock.Advance(time.Hour)
	wantPeers(t, s, ih1)
	wantCounts(t, s, ih1, 0, 0)

	// Expired peers must not take the places of live ones.
	var stale, live []peerstore.Peer
	for i := range 5 {
		stale = append(stale, peer(10+i, 0))
		live = append(live, peer(20+i, 100))
	}
	announce(t, s, ih1, time.Second, stale...)
	announce(t, s, ih1, time.Minute, live...)
	clock.Advance(2 * time.Second)
	for _, p := range peersOf(t, s, ih1, 3) {
		if p.Seeder() {
			t.Fatalf("expired seeder %v listed", p)
		}
	}
	wantCounts(t, s, ih1, 0, 5)

	// A peer that comes back after expiring is listed again.
	announce(t, s, ih1, time.Minute, short)
	wantPeers(t, s, ih1, append(live, short)...)
}

func testUpdate(t *testing.T, s peerstore.Store, _ *Clock) {
	p := peer(1, 4096)
	announce(t, s, ih1, time.Minute, p)
	wantCounts(t, s, ih1, 0, 1)

	// Finished downloading, and listening somewhere else now.
	p.Left = 0
	p.Addr = netip.MustParseAddrPort("10.9.9.9:9999")
	announce(t, s, ih1, time.Minute, p)
	wantPeers(t, s, ih1, p)
	wantCounts(t, s, ih1, 1, 0)

	p.Left = 1
	announce(t, s, ih1, time.Minute, p)
	wantPeers(t, s, ih1, p)
	wantCounts(t, s, ih1, 0, 1)
}

func testRemove(t *testing.T, s peerstore.Store, _ *Clock) {
	a, b, c := peer(1, 0), peer(2, 5), peer(3, 6)
	announce(t, s, ih1, time.Minute, a, b, c)
	ctx := context.Background()
	for _, id := range []peerstore.PeerID{a.ID, b.ID, a.ID} {
		if err := s.Remove(ctx, ih1, id); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	wantPeers(t, s, ih1, c)
	wantCounts(t, s, ih1, 0, 1)
}

func testIsolation(t *testing.T, s peerstore.Store, _ *Clock) {
	a1, b := peer(1, 0), peer(2, 7)
	a2, c := peer(1, 99), peer(3, 0)
	a2.Addr = netip.MustParseAddrPort("10.8.8.8:8888")
	announce(t, s, ih1, time.Minute, a1, b)
	announce(t, s, ih2, time.Minute, a2, c)
	wantPeers(t, s, ih1, a1, b)
	wantPeers(t, s, ih2, a2, c)
	wantCounts(t, s, ih1, 1, 1)
	wantCounts(t, s, ih2, 1, 1)

	if err := s.Remove(context.Background(), ih1, a1.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	wantPeers(t, s, ih1, b)
	wantPeers(t, s, ih2, a2, c)
}

func testLimit(t *testing.T, s peerstore.Store, _ *Clock) {
	var seeders, leechers []peerstore.Peer
	for i := range 3 {
		seeders = append(seeders, peer(i, 0))
	}
	for i := range 10 {
		leechers = append(leechers, peer(100+i, int64(i+1)))
	}
	announce(t, s, ih1, time.Minute, append(seeders, leechers...)...)

	if got := peersOf(t, s, ih1, 0); len(got) != 0 {
		t.Fatalf("Peers(limit 0) = %v", got)
	}
	wantPeers(t, s, ih1, append(seeders, leechers...)...)

	two := peersOf(t, s, ih1, 2)
	if len(two) != 2 || !two[0].Seeder() || !two[1].Seeder() || two[0] == two[1] {
		t.Fatalf("Peers(limit 2) = %v, want 2 distinct seeders", two)
	}

	seenLeechers := make(map[peerstore.Peer]bool)
	for range 30 {
		got := peersOf(t, s, ih1, 5)
		if len(got) != 5 {
			t.Fatalf("Peers(limit 5) returned %d peers", len(got))
		}
		var gotSeeders []peerstore.Peer
		for _, p := range got {
			if p.Seeder() {
				gotSeeders = append(gotSeeders, p)
			} else {
				seenLeechers[p] = true
			}
		}
		if err := sameSet(gotSeeders, seeders); err != nil {
			t.Fatalf("Peers(limit 5) must include every seeder: %v", err)
		}
	}
	for p := range seenLeechers {
		if p.Left < 1 || p.Left > 10 || p != leechers[p.Left-1] {
			t.Fatalf("Peers returned a leecher never announced: %v", p)
		}
	}
	// 30 choices of 2 leechers out of 10 that always hit the same pair
	// would mean every caller gets the same subset.
	if len(seenLeechers) <= 2 {
		t.Fatalf("30 calls of Peers(limit 5) chose among only %d leechers", len(seenLeechers))
	}
}

func testConcurrent(t *testing.T, s peerstore.Store, _ *Clock) {
	const workers, each = 8, 25
	ctx := context.Background()
	concurrently(workers, func(w int) {
		for i := range each {
			p := peer(w*each+i, 1000)
			if err := s.Announce(ctx, ih1, p, time.Minute); err != nil {
				t.Errorf("Announce: %v", err)
				return
			}
			if i%2 == 0 {
				p.Left = 0
				if err := s.Announce(ctx, ih1, p, time.Minute); err != nil {
					t.Errorf("Announce: %v", err)
					return
				}
			}
			if _, err := s.Peers(ctx, ih1, 10, nil); err != nil {
				t.Errorf("Peers: %v", err)
				return
			}
			if _, _, err := s.Counts(ctx, ih1); err != nil {
				t.Errorf("Counts: %v", err)
				return
			}
		}
	})
	if t.Failed() {
		return
	}
	var want []peerstore.Peer
	seeders := 0
	for n := range workers * each {
		left := int64(1000)
		if n%each%2 == 0 {
			left = 0
			seeders++
		}
		want = append(want, peer(n, left))
	}
	wantPeers(t, s, ih1, want...)
	wantCounts(t, s, ih1, seeders, len(want)-seeders)
}

// Peers appends to the slice it is given and leaves what it held; the
// limit counts only what it appends.
func testAppendsToDst(t *testing.T, s peerstore.Store, _ *Clock) {
	live := []peerstore.Peer{peer(1, 0), peer(2, 5)}
	announce(t, s, ih1, time.Minute, live...)
	held := peer(50, 7)
	for limit, want := range map[int]int{10: 2, 1: 1, 0: 0} {
		dst := make([]peerstore.Peer, 1, 8)
		dst[0] = held
		got, err := s.Peers(context.Background(), ih1, limit, dst)
		if err != nil {
			t.Fatalf("Peers: %v", err)
		}
		if len(got) != 1+want || got[0] != held {
			t.Fatalf("Peers(limit %d) onto [%v] = %v, want it kept and %d peers after it", limit, held, got, want)
		}
		for _, p := range got[1:] {
			if !slices.Contains(live, p) {
				t.Fatalf("Peers(limit %d) appended %v, never announced", limit, p)
			}
		}
	}
}

// While other callers keep emptying a swarm, and so ending it, a peer
// announced into it is listed until it leaves.
func testConcurrentEmptying(t *testing.T, s peerstore.Store, _ *Clock) {
	const workers, each = 8, 200
	ctx := context.Background()
	concurrently(workers, func(w int) {
		p := peer(w, 1000)
		for range each {
			if err := s.Announce(ctx, ih1, p, time.Minute); err != nil {
				t.Errorf("Announce: %v", err)
				return
			}
			peers, err := s.Peers(ctx, ih1, workers, nil)
			if err != nil {
				t.Errorf("Peers: %v", err)
				return
			}
			if !slices.Contains(peers, p) {
				t.Errorf("swarm %v lacks %v, announced and not yet removed", peers, p)
				return
			}
			if err := s.Remove(ctx, ih1, p.ID); err != nil {
				t.Errorf("Remove: %v", err)
				return
			}
		}
	})
}

// concurrently runs fn for each of n workers at once and waits for all.
func concurrently(n int, fn func(w int)) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() { fn(w) })
	}
	wg.Wait()
}
