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

// Partial is a blob being received. Bytes arrive either in order (Write,
// hashed on the way) or at any offset (WriteAt, as torrent pieces do; the
// caller then hashes the prefix it knows is final with HashPrefix as it
// grows, and Commit hashes whatever is left). Concurrent ReadAt is safe.
type Partial struct {
	store  *Store
	digest digest.Digest
	f      *os.File

	mu       sync.Mutex
	hash     hash.Hash // covers bytes [0, hashed)
	hashed   int64
	written  int64 // next offset for Write
	finished bool
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

// File exposes the temp file for readers and for storage that writes pieces.
func (p *Partial) File() *os.File { return p.f }

// Write appends in order and hashes on the way. Writing again from an
// offset already hashed (the origin taking over from the swarm) starts the
// hash over: the bytes hashed must be the bytes stored.
func (p *Partial) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, err := p.f.WriteAt(b, p.written)
	if p.written < p.hashed {
		p.hash.Reset()
		p.hashed = 0
	}
	if p.written == p.hashed {
		p.hash.Write(b[:n])
		p.hashed += int64(n)
	}
	p.written += int64(n)
	return n, err
}

// Resume makes the next Write append right after the hashed prefix (the
// verified bytes a swarm download left) and returns its length, so another
// source can fetch only the rest.
func (p *Partial) Resume() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = p.hashed
	return p.hashed
}

// Rewind makes the next Write start at the beginning again, for a source
// that can only send the whole blob.
func (p *Partial) Rewind() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = 0
}

// WriteAt writes at any offset, beyond what HashPrefix was told is final.
func (p *Partial) WriteAt(b []byte, off int64) (int, error) { return p.f.WriteAt(b, off) }

// HashPrefix hashes the file up to n bytes, which the caller knows are
// final (verified torrent pieces), so that Commit only hashes the rest:
// the blob's hash is computed while it downloads, not after.
func (p *Partial) HashPrefix(n int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n <= p.hashed {
		return nil
	}
	if _, err := io.Copy(p.hash, io.NewSectionReader(p.f, p.hashed, n-p.hashed)); err != nil {
		p.hash.Reset()
		p.hashed = 0
		return fmt.Errorf("hash %s: %w", p.digest, err)
	}
	p.hashed = n
	return nil
}

// ReadAt reads what has been written so far.
func (p *Partial) ReadAt(b []byte, off int64) (int, error) { return p.f.ReadAt(b, off) }

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

// Reserve gives the partial its final size and, where the filesystem can,
// allocates the blocks now: a full disk then fails the fetch before a
// client is told the blob is coming, not in the middle of its body.
func (p *Partial) Reserve(size int64) error {
	err := allocate(p.f, size)
	if errors.Is(err, syscall.ENOSPC) {
		return &NoSpaceError{Digest: p.digest, Size: size, Err: err}
	}
	if err != nil {
		return fmt.Errorf("reserve %d bytes for %s: %w", size, p.digest, err)
	}
	return nil
}

// Commit verifies the content against the digest, makes it durable and moves
// it into the store. On a mismatch the partial is discarded and
// ErrDigestMismatch returned. The file stays open for readers either way;
// Close releases it.
func (p *Partial) Commit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return errors.New("partial already committed or aborted")
	}
	p.finished = true
	h := p.hash
	if _, err := io.Copy(h, io.NewSectionReader(p.f, p.hashed, 1<<62)); err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("hash %s: %w", p.digest, err)
	}
	if got := digest.NewDigest(p.digest.Algorithm(), h); got != p.digest {
		os.Remove(p.f.Name())
		return fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, p.digest, got)
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

// Abort discards the partial file; a no-op after Commit.
func (p *Partial) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.finished = true
		os.Remove(p.f.Name())
	}
}

// Close releases the file handle. Call it after Commit or Abort once no
// reader needs the bytes any more.
func (p *Partial) Close() error { return p.f.Close() }
