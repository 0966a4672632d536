package peerstore

import (
	"container/heap"
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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
// Each swarm has its own lock, so announces into different swarms do not
// wait for one another, nor for a sweep.
//
// Expired peers are dropped when their swarm is read, and by a sweep of
// all swarms that piggybacks on Announce once per SweepInterval. Memory
// only grows through Announce, so sweeping there bounds it without a
// background goroutine to start and stop.
type Memory struct {
	now        func() time.Time
	sweepEvery time.Duration
	nextSweep  atomic.Int64 // Unix nanoseconds

	mu     sync.RWMutex // guards the map, not the swarms in it
	swarms map[InfoHash]*memorySwarm
}

// memorySwarm is one swarm's peers, each in byID, in its group and in the
// expiry heap.
type memorySwarm struct {
	ih InfoHash
	mu sync.Mutex
	// gone is set once the swarm, emptied, is out of Memory.swarms: whoever
	// locks it after that looks its infohash up again.
	gone   bool
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
	m.nextSweep.Store(math.MinInt64)
	return m
}

// lock returns the swarm of ih locked, creating it if create is set, or
// nil if there is none.
func (m *Memory) lock(ih InfoHash, create bool) *memorySwarm {
	for {
		m.mu.RLock()
		s := m.swarms[ih]
		m.mu.RUnlock()
		if s == nil {
			if !create {
				return nil
			}
			m.mu.Lock()
			if s = m.swarms[ih]; s == nil {
				s = &memorySwarm{ih: ih, byID: make(map[PeerID]*memorySlot)}
				m.swarms[ih] = s
			}
			m.mu.Unlock()
		}
		s.mu.Lock()
		if !s.gone {
			return s
		}
		s.mu.Unlock()
	}
}

// Announce implements Store.
func (m *Memory) Announce(_ context.Context, ih InfoHash, p Peer, ttl time.Duration) error {
	now := m.now()
	if next := m.nextSweep.Load(); now.UnixNano() >= next && m.nextSweep.CompareAndSwap(next, now.Add(m.sweepEvery).UnixNano()) {
		m.sweep(now)
	}
	s := m.lock(ih, true)
	defer s.mu.Unlock()
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
	s := m.lock(ih, false)
	if s == nil {
		return nil
	}
	defer s.mu.Unlock()
	if slot := s.byID[id]; slot != nil {
		s.drop(slot)
	}
	m.forgetIfEmpty(s)
	return nil
}

// Peers implements Store: seeders first, a uniform sample of whichever
// group does not fit whole.
func (m *Memory) Peers(_ context.Context, ih InfoHash, limit int, dst []Peer) ([]Peer, error) {
	if limit <= 0 {
		return dst, nil
	}
	now := m.now()
	s := m.lock(ih, false)
	if s == nil {
		return dst, nil
	}
	defer s.mu.Unlock()
	if !m.prune(s, now) {
		return dst, nil
	}
	n := len(dst)
	dst = slices.Grow(dst, min(limit, len(s.byID)))
	dst = s.sample(1, limit, dst)
	return s.sample(0, limit-(len(dst)-n), dst), nil
}

// Counts implements Store.
func (m *Memory) Counts(_ context.Context, ih InfoHash) (seeders, leechers int, err error) {
	now := m.now()
	s := m.lock(ih, false)
	if s == nil {
		return 0, 0, nil
	}
	defer s.mu.Unlock()
	if !m.prune(s, now) {
		return 0, 0, nil
	}
	return len(s.groups[1]), len(s.groups[0]), nil
}

// prune drops the expired peers of a locked swarm and reports whether any
// are left.
func (m *Memory) prune(s *memorySwarm, now time.Time) bool {
	for len(s.expiry) > 0 && !s.expiry[0].expires.After(now) {
		s.drop(s.expiry[0])
	}
	return !m.forgetIfEmpty(s)
}

// forgetIfEmpty takes a locked swarm without peers out of the map.
func (m *Memory) forgetIfEmpty(s *memorySwarm) bool {
	if len(s.byID) > 0 {
		return false
	}
	m.mu.Lock()
	delete(m.swarms, s.ih)
	m.mu.Unlock()
	s.gone = true
	return true
}

// sweep prunes every swarm, one at a time.
func (m *Memory) sweep(now time.Time) {
	m.mu.RLock()
	all := slices.Collect(maps.Values(m.swarms))
	m.mu.RUnlock()
	for _, s := range all {
		s.mu.Lock()
		if !s.gone {
			m.prune(s, now)
		}
		s.mu.Unlock()
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
