package peerstore

import (
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
// Expired peers are dropped lazily when their swarm is read, and by a sweep
// of all swarms that piggybacks on Announce once per SweepInterval. Memory
// only grows through Announce, so sweeping there bounds it without a
// background goroutine to start and stop.
type Memory struct {
	now        func() time.Time
	sweepEvery time.Duration

	mu        sync.Mutex
	swarms    map[InfoHash]map[PeerID]memoryEntry
	nextSweep time.Time
}

type memoryEntry struct {
	peer    Peer
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		now:        opts.Now,
		sweepEvery: opts.SweepInterval,
		swarms:     make(map[InfoHash]map[PeerID]memoryEntry),
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
	swarm := m.swarms[ih]
	if swarm == nil {
		swarm = make(map[PeerID]memoryEntry)
		m.swarms[ih] = swarm
	}
	swarm[p.ID] = memoryEntry{peer: p, expires: now.Add(ttl)}
	return nil
}

// Remove implements Store.
func (m *Memory) Remove(_ context.Context, ih InfoHash, id PeerID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if swarm := m.swarms[ih]; swarm != nil {
		delete(swarm, id)
		if len(swarm) == 0 {
			delete(m.swarms, ih)
		}
	}
	return nil
}

// Peers implements Store.
func (m *Memory) Peers(_ context.Context, ih InfoHash, limit int) ([]Peer, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := m.now()
	var seeders, leechers []Peer
	m.mu.Lock()
	for _, e := range m.prune(ih, now) {
		if e.peer.Seeder() {
			seeders = append(seeders, e.peer)
		} else {
			leechers = append(leechers, e.peer)
		}
	}
	m.mu.Unlock()
	return pick(seeders, leechers, limit), nil
}

// Counts implements Store.
func (m *Memory) Counts(_ context.Context, ih InfoHash) (seeders, leechers int, err error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.prune(ih, now) {
		if e.peer.Seeder() {
			seeders++
		} else {
			leechers++
		}
	}
	return seeders, leechers, nil
}

// prune drops the expired peers of one swarm and returns what is left.
// m.mu must be held.
func (m *Memory) prune(ih InfoHash, now time.Time) map[PeerID]memoryEntry {
	swarm := m.swarms[ih]
	for id, e := range swarm {
		if !e.expires.After(now) {
			delete(swarm, id)
		}
	}
	if swarm != nil && len(swarm) == 0 {
		delete(m.swarms, ih)
	}
	return swarm
}

// sweep prunes every swarm. m.mu must be held.
func (m *Memory) sweep(now time.Time) {
	for ih := range m.swarms {
		m.prune(ih, now)
	}
}

// pick returns up to limit peers, seeders before leechers, choosing at random
// within whichever group does not fit whole.
func pick(seeders, leechers []Peer, limit int) []Peer {
	if len(seeders) >= limit {
		shuffle(seeders)
		return seeders[:limit]
	}
	shuffle(leechers)
	return append(seeders, leechers[:min(limit-len(seeders), len(leechers))]...)
}

func shuffle(peers []Peer) {
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
}
