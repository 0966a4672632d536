package peerstore

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// MemoryOptions configures NewMemory. The zero value is ready to use.
type MemoryOptions struct {
	// SweepInterval is how often an Announce also drops the expired peers of
	// every swarm, not only of the one it reads. Default one minute.
	SweepInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is a Store for a single tracker process.
//
// Every call costs what it returns (and a log of the swarm's size), not
// the size of the swarm: peers sit in two slices (seeders, leechers) that
// Peers samples from in place, and expire through a heap ordered by
// expiry, so an announce into a swarm of 2,000 costs about what one into a
// swarm of 20 does. (Copying and shuffling the
// whole swarm per announce made 2,000-peer swarms answer 5x slower.)
//
// Expired peers are dropped when their swarm is read, and by a sweep of
// all swarms that piggybacks on Announce once per SweepInterval. Memory
// only grows through Announce, so sweeping there bounds it without a
// background goroutine to start and stop.
type Memory struct {
	now        func() time.Time
	sweepEvery time.Duration

	mu        sync.Mutex
	swarms    map[InfoHash]*memorySwarm
	nextSweep time.Time
}

// memorySwarm is one swarm's peers, each in byID, in its group and in the
// expiry heap.
type memorySwarm struct {
	byID   map[PeerID]*memorySlot
	groups [2][]*memorySlot // by Seeder(): leechers, seeders
	expiry expiryHeap
}

type memorySlot struct {
	peer    Peer
	expires time.Time
	index   int // in groups[group(peer)]
	queued  int // in expiry
}

func group(p Peer) int {
	if p.Seeder() {
		return 1
	}
	return 0
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		now:        opts.Now,
		sweepEvery: opts.SweepInterval,
		swarms:     make(map[InfoHash]*memorySwarm),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.sweepEvery <= 0 {
		m.sweepEvery = time.Minute
	}
	return m
}

// Announce implements Store.
func (m *Memory) Announce(_ context.Context, ih InfoHash, p Peer, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
		m.nextSweep = now.Add(m.sweepEvery)
	}
	s := m.swarms[ih]
	if s == nil {
		s = &memorySwarm{byID: make(map[PeerID]*memorySlot)}
		m.swarms[ih] = s
	}
	expires := now.Add(ttl)
	if slot := s.byID[p.ID]; slot != nil {
		if group(slot.peer) != group(p) {
			s.unlink(slot)
			slot.peer = p
			s.link(slot)
		}
		slot.peer, slot.expires = p, expires
		heap.Fix(&s.expiry, slot.queued)
	} else {
		slot := &memorySlot{peer: p, expires: expires}
		s.byID[p.ID] = slot
		s.link(slot)
		heap.Push(&s.expiry, slot)
	}
	return nil
}

// Remove implements Store.
func (m *Memory) Remove(_ context.Context, ih InfoHash, id PeerID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.swarms[ih]
	if s == nil {
		return nil
	}
	if slot := s.byID[id]; slot != nil {
		s.drop(slot)
	}
	if len(s.byID) == 0 {
		delete(m.swarms, ih)
	}
	return nil
}

// Peers implements Store: seeders first, a uniform sample of whichever
// group does not fit whole.
func (m *Memory) Peers(_ context.Context, ih InfoHash, limit int) ([]Peer, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.prune(ih, now)
	if s == nil {
		return nil, nil
	}
	out := make([]Peer, 0, min(limit, len(s.byID)))
	out = s.sample(1, limit, out)
	return s.sample(0, limit-len(out), out), nil
}

// Counts implements Store.
func (m *Memory) Counts(_ context.Context, ih InfoHash) (seeders, leechers int, err error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.prune(ih, now)
	if s == nil {
		return 0, 0, nil
	}
	return len(s.groups[1]), len(s.groups[0]), nil
}

// prune drops the expired peers of one swarm and returns it, or nil once
// it is empty. m.mu must be held.
func (m *Memory) prune(ih InfoHash, now time.Time) *memorySwarm {
	s := m.swarms[ih]
	if s == nil {
		return nil
	}
	for len(s.expiry) > 0 && !s.expiry[0].expires.After(now) {
		s.drop(s.expiry[0])
	}
	if len(s.byID) == 0 {
		delete(m.swarms, ih)
		return nil
	}
	return s
}

// sweep prunes every swarm. m.mu must be held.
func (m *Memory) sweep(now time.Time) {
	for ih := range m.swarms {
		m.prune(ih, now)
	}
}

// sample appends up to n peers of group g chosen at random: a partial
// Fisher-Yates shuffle of the group's slice, which is in no order anyway.
func (s *memorySwarm) sample(g, n int, out []Peer) []Peer {
	slots := s.groups[g]
	n = min(n, len(slots))
	for i := range n {
		j := i + rand.IntN(len(slots)-i)
		slots[i], slots[j] = slots[j], slots[i]
		slots[i].index, slots[j].index = i, j
		out = append(out, slots[i].peer)
	}
	return out
}

func (s *memorySwarm) link(slot *memorySlot) {
	g := group(slot.peer)
	slot.index = len(s.groups[g])
	s.groups[g] = append(s.groups[g], slot)
}

// unlink takes the slot out of its group by moving the group's last slot
// into its place.
func (s *memorySwarm) unlink(slot *memorySlot) {
	g := group(slot.peer)
	last := s.groups[g][len(s.groups[g])-1]
	s.groups[g][slot.index], last.index = last, slot.index
	s.groups[g][len(s.groups[g])-1] = nil
	s.groups[g] = s.groups[g][:len(s.groups[g])-1]
}

func (s *memorySwarm) drop(slot *memorySlot) {
	s.unlink(slot)
	heap.Remove(&s.expiry, slot.queued)
	delete(s.byID, slot.peer.ID)
}

// expiryHeap orders a swarm's peers by when they expire.
type expiryHeap []*memorySlot

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].queued, h[j].queued = i, j
}
func (h *expiryHeap) Push(x any) {
	slot := x.(*memorySlot)
	slot.queued = len(*h)
	*h = append(*h, slot)
}
func (h *expiryHeap) Pop() any {
	old := *h
	slot := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return slot
}
