package seeder

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// job is one fetch of a blob: what askers wait on. Its torrent is set once
// the origin says the blob's size, its piece hashes grow as the bytes
// arrive, and it ends with the fetch's outcome; every change wakes the
// waiters (changed, as in blobswarm/flight).
type job struct {
	ref oci.Blob
	// finished is when the fetch ended; Seeder.mu guards it.
	finished time.Time

	// mu guards the rest, apart from the seeder's lock: pieces arrive
	// many times a second, and waiters of one blob need not wait on the
	// seeder's other blobs.
	mu      sync.Mutex
	info    []byte
	pieces  int
	sums    []byte // hashes of pieces [0, len/20), in order
	last    [sumSize]byte
	done    bool
	err     error
	changed chan struct{} // closed and replaced on every change
}

func newJob(ref oci.Blob) *job { return &job{ref: ref, changed: make(chan struct{})} }

func (j *job) notifyLocked() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// start records the blob's torrent and piece count.
func (j *job) start(info []byte, pieces int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.info, j.pieces = info, pieces
	// Room for every hash up front: a reader's slice of the hashes known
	// so far then shares the array that later hashes are appended to.
	j.sums = make([]byte, 0, pieces*sumSize)
	j.notifyLocked()
}

// hashed records piece i's hash; pieces come in order. The last piece's is
// withheld until release: fetch hands it out once the blob is checked
// against its digest, stored and published, so a pieces stream that ends
// cleanly is one of a blob every replica can answer for, and the stream of
// bytes that fail the digest always breaks.
func (j *job) hashed(i int, sum [sumSize]byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i == j.pieces-1 {
		j.last = sum
		return
	}
	j.sums = append(j.sums, sum[:]...)
	j.notifyLocked()
}

// release hands out the last piece's hash.
func (j *job) release() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sums = append(j.sums, j.last[:]...)
	j.notifyLocked()
}

// finish records the fetch's outcome.
func (j *job) finish(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.done, j.err = true, err
	j.notifyLocked()
}

// state is the torrent once known, the fetch's error once it failed, and
// a channel closed at the next change.
func (j *job) state() (info []byte, err error, changed <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done && j.err != nil {
		return nil, j.err, j.changed
	}
	return j.info, nil, j.changed
}

// torrent is the blob's info bytes and piece count; set once state
// returned the info bytes.
func (j *job) torrent() ([]byte, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.info, j.pieces
}

// allHashes is every piece's hash, the withheld last one's included, once
// all are known.
func (j *job) allHashes() []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append(slices.Clip(j.sums), j.last[:]...)
}

// hashesFrom waits until piece from's hash is known, and returns it and
// those after it known by then; see Hashes.Next.
func (j *job) hashesFrom(ctx context.Context, from int) ([]byte, error) {
	for {
		j.mu.Lock()
		sums, done, err, changed := j.sums, j.done, j.err, j.changed
		j.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case len(sums) > from*sumSize:
			return sums[from*sumSize:], nil
		case done:
			return nil, errors.New("fetch ended before its last piece")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}
