package torrentstore

import (
	"sync"

	"github.com/anacrolix/torrent/metainfo"
)

// Hashes is what a node knows of the real SHA-1 of each piece of a blob
// on its way in: learned from the tracker as its seeder reads the origin,
// or, once the tracker is gone, from the origin's own bytes. A hash once
// learned stays: pieces may have been checked against it already.
type Hashes struct {
	mu      sync.Mutex
	sums    []metainfo.Hash
	known   []bool
	changed chan struct{} // closed and replaced by every Learn that adds a hash
}

// NewHashes is a table for a torrent of n pieces, none of them known.
func NewHashes(n int) *Hashes {
	return &Hashes{sums: make([]metainfo.Hash, n), known: make([]bool, n), changed: make(chan struct{})}
}

func (h *Hashes) pieces() int { return len(h.sums) }

// Learn records piece i's hash and says whether it is new; a piece outside
// the torrent or already known is left as it is.
func (h *Hashes) Learn(i int, sum [20]byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < 0 || i >= len(h.sums) || h.known[i] {
		return false
	}
	h.sums[i], h.known[i] = sum, true
	close(h.changed)
	h.changed = make(chan struct{})
	return true
}

// Get returns piece i's hash, if known.
func (h *Hashes) Get(i int) (metainfo.Hash, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < 0 || i >= len(h.sums) {
		return metainfo.Hash{}, false
	}
	return h.sums[i], h.known[i]
}

// Changed is closed when the next hash is learned: take it before looking
// at the table, and nothing learned after the look is missed.
func (h *Hashes) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}
