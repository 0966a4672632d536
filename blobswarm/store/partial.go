package store

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/durable"
)

// ErrDigestMismatch means the bytes received do not hash to the digest they
// were fetched for; such a blob is discarded, never stored.
var ErrDigestMismatch = errors.New("content does not match digest")

// Partial is a blob being received, and the one record of how much of it
// is final: the verified prefix, bytes [0, Verified()) that no write will
// change and that readers may already have.
//
// Bytes come in one of two ways. A source whose bytes are final as they
// arrive (an origin's in-order stream) uses Write, which extends the
// prefix and hashes the bytes on the way, without reading them back. A
// source whose bytes are checked only later (torrent pieces, at any
// offset) uses WriteAt, then Advance once checked bytes reach the prefix;
// the hash follows the prefix in the background, off the caller's path
// (torrent storage advances from anacrolix's piece hashers, and hashing a
// long prefix there would hold back the pieces after it). Either way
// Check (Commit's first step) only hashes what the hash has not reached,
// and it alone judges: a hash that could not keep up just leaves it more
// to read. Concurrent ReadAt is safe.
type Partial struct {
	store  *Store
	digest digest.Digest
	f      *os.File

	mu       sync.Mutex
	verified int64
	next     int64 // where Write goes: the end of the prefix, or less after Rewind
	hashing  bool  // a goroutine is bringing the hash up to the prefix
	finished bool  // Check or Abort ran: the bytes are judged or gone
	checked  bool  // they matched the digest, and Commit has yet to store them
	// room is held against the store's quota for size bytes, until
	// the blob is stored or given up (settle).
	room     Reservation
	roomSize int64

	// hashMu guards the hash apart from mu: hashing takes long, and
	// Advance must not wait for it.
	hashMu sync.Mutex
	hash   hash.Hash // covers bytes [0, hashed), hashed <= verified
	hashed int64
}

// NewPartial creates an empty temp file for the blob d.
func (s *Store) NewPartial(d digest.Digest) (*Partial, error) {
	f, err := os.CreateTemp(s.tmpDir(), d.Encoded()+"-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", d, err)
	}
	return &Partial{store: s, digest: d, f: f, hash: d.Algorithm().Hash()}, nil
}

// Digest is the digest the bytes must match.
func (p *Partial) Digest() digest.Digest { return p.digest }

// Verified is the length of the final prefix: where another source can
// take over.
func (p *Partial) Verified() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.verified
}

// Write puts final bytes at the end of the verified prefix (or where Rewind
// left off) and hashes them on the way.
func (p *Partial) Write(b []byte) (int, error) {
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	p.mu.Lock()
	off := p.next
	p.mu.Unlock()
	// The hash must cover the bytes as stored: rewriting hashed bytes
	// starts it over, and a prefix that Advance made final is hashed
	// before these bytes can follow it.
	if off < p.hashed {
		p.hash.Reset()
		p.hashed = 0
	}
	p.hashTo(off)
	var n int
	var err error
	if p.hashed == off {
		n, err = p.writeHashing(b, off)
	} else {
		n, err = p.f.WriteAt(b, off)
	}
	p.mu.Lock()
	p.next = off + int64(n)
	p.verified = max(p.verified, p.next)
	p.mu.Unlock()
	return n, err
}

// writeHashing writes b at off, the end of the hashed bytes, and hashes
// it meanwhile on another core: on the origin's path the copy into the
// page cache and sha256 cost about the same, and one after the other they
// held a cold miss to half the origin's speed (BENCHMARKS.md 1b). A short
// write leaves the hash covering bytes the file lacks, so it starts over
// and Check reads the file. Call with hashMu held.
func (p *Partial) writeHashing(b []byte, off int64) (int, error) {
	hashed := make(chan struct{})
	go func() {
		p.hash.Write(b)
		close(hashed)
	}()
	n, err := p.f.WriteAt(b, off)
	<-hashed
	if n < len(b) {
		p.hash.Reset()
		p.hashed = 0
		return n, err
	}
	p.hashed += int64(n)
	return n, err
}

// Rewind makes the next Write start at offset 0 again, for a source that
// can only send the whole blob. The prefix stays final for readers; the
// hash is of the bytes written again.
func (p *Partial) Rewind() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = 0
}

// WriteAt writes bytes that are not final yet (a torrent piece before its
// check), beyond the verified prefix.
func (p *Partial) WriteAt(b []byte, off int64) (int, error) { return p.f.WriteAt(b, off) }

// Advance makes bytes [0, n) final, once they passed their check, and
// says whether the prefix grew. It never shrinks: readers may already have
// the bytes.
func (p *Partial) Advance(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n <= p.verified {
		return false
	}
	p.verified = n
	p.next = max(p.next, n)
	if !p.hashing && !p.finished {
		p.hashing = true
		go p.hashVerified()
	}
	return true
}

// hashVerified brings the hash up to the verified prefix until it stops
// growing, the partial is finished, or the file cannot be read (Check
// then reads it all again and says why).
func (p *Partial) hashVerified() {
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	for {
		p.mu.Lock()
		to := p.verified
		if p.finished || p.hashed >= to {
			p.hashing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if !p.hashTo(to) {
			p.mu.Lock()
			p.hashing = false
			p.mu.Unlock()
			return
		}
	}
}

// hashTo hashes the file up to n and says whether it got there; a read
// error starts the hash over. Call with hashMu held.
func (p *Partial) hashTo(n int64) bool {
	if n <= p.hashed {
		return true
	}
	if _, err := io.Copy(p.hash, io.NewSectionReader(p.f, p.hashed, n-p.hashed)); err != nil {
		p.hash.Reset()
		p.hashed = 0
		return false
	}
	p.hashed = n
	return true
}

// ReadAt reads what has been written so far.
func (p *Partial) ReadAt(b []byte, off int64) (int, error) { return p.f.ReadAt(b, off) }

// Open opens the file again for one reader, with a file position of its
// own for sendfile. It fails once the file was stored or discarded.
func (p *Partial) Open() (*os.File, error) { return os.Open(p.f.Name()) }

// NoSpaceError says the disk has no room for a blob; nothing of it stays.
type NoSpaceError struct {
	Digest digest.Digest
	Size   int64
	Err    error
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("no disk space left for blob %s (%d bytes): %v", e.Digest, e.Size, e.Err)
}

func (e *NoSpaceError) Unwrap() error { return e.Err }

// Reserve gives the partial its final size, reserved first against the
// store's quota (which may refuse it: nothing is then written), and,
// where the filesystem can, allocates the blocks now: a full disk then
// fails the fetch before a client is told the blob is coming, not in the
// middle of its body. A second Reserve of another size (a source that
// takes over) holds the new size instead.
func (p *Partial) Reserve(size int64) error {
	if err := p.reserveRoom(size); err != nil {
		return err
	}
	err := allocate(p.f, size)
	if errors.Is(err, syscall.ENOSPC) {
		return &NoSpaceError{Digest: p.digest, Size: size, Err: err}
	}
	if err != nil {
		return fmt.Errorf("reserve %d bytes for %s: %w", size, p.digest, err)
	}
	return nil
}

func (p *Partial) reserveRoom(size int64) error {
	q := p.store.quota
	p.mu.Lock()
	held := p.room != nil && p.roomSize == size
	p.mu.Unlock()
	if q == nil || held {
		return nil
	}
	r, err := q.Reserve(p.digest, size)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.room
	p.room, p.roomSize = r, size
	p.mu.Unlock()
	if old != nil {
		old.Release()
	}
	return nil
}

// settle ends the partial's hold on the quota: the blob was stored, or
// nothing was.
func (p *Partial) settle(stored bool) {
	p.mu.Lock()
	r := p.room
	p.room = nil
	p.mu.Unlock()
	switch {
	case r == nil:
	case stored:
		r.Stored()
	default:
		r.Release()
	}
}

// Check hashes what the hash has not reached and compares the content
// with the digest. On a mismatch the partial is discarded and
// ErrDigestMismatch returned. The bytes must not change after it.
func (p *Partial) Check() error {
	p.mu.Lock()
	finished := p.finished
	p.finished = true
	p.mu.Unlock()
	if finished {
		return errors.New("partial already checked or aborted")
	}
	// A hashing goroutine sees finished and stops at its next turn.
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	h := p.hash
	if _, err := io.Copy(h, io.NewSectionReader(p.f, p.hashed, 1<<62)); err != nil {
		os.Remove(p.f.Name())
		p.settle(false)
		return fmt.Errorf("hash %s: %w", p.digest, err)
	}
	if got := digest.NewDigest(p.digest.Algorithm(), h); got != p.digest {
		os.Remove(p.f.Name())
		p.settle(false)
		return fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, p.digest, got)
	}
	p.mu.Lock()
	p.checked = true
	p.mu.Unlock()
	return nil
}

// Commit checks the content against the digest, unless Check did, makes
// it durable and moves it into the store. On a mismatch the partial is
// discarded and ErrDigestMismatch returned. The file stays open for
// readers either way; Close releases it.
func (p *Partial) Commit() error {
	err := p.commit()
	p.settle(err == nil)
	return err
}

func (p *Partial) commit() error {
	p.mu.Lock()
	checked := p.checked
	p.checked = false // a second Commit fails in Check
	p.mu.Unlock()
	if !checked {
		if err := p.Check(); err != nil {
			return err
		}
	}
	if err := p.f.Sync(); err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("sync %s: %w", p.digest, err)
	}
	final := p.store.Path(p.digest)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("create blob directory: %w", err)
	}
	if err := os.Rename(p.f.Name(), final); err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("store %s: %w", p.digest, err)
	}
	// A blob that was served must survive a power loss as the same
	// complete file.
	return durable.SyncDir(filepath.Dir(final))
}

// Abort discards the partial file and the room it held; a no-op after
// Check or Commit.
func (p *Partial) Abort() {
	p.mu.Lock()
	abort := !p.finished
	p.finished = true
	p.mu.Unlock()
	if abort {
		os.Remove(p.f.Name())
		p.settle(false)
	}
}

// Close releases the file handle. Call it after Commit or Abort once no
// reader needs the bytes any more.
func (p *Partial) Close() error { return p.f.Close() }
