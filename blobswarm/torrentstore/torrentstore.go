// Package torrentstore is anacrolix/torrent storage for one blob, backed by
// the blob store.
//
// A blob already in the store is seeded straight from its file, every piece
// reported complete without hashing: the store only holds blobs that passed
// their digest check. A blob on its way in is written into the partial file
// of its flight; piece completion lives in memory (never sqlite: its cost
// grows with the piece count squared), and every verified piece moves the
// flight's readable prefix forward. Once the partial is committed, Promote
// switches reads to the stored file so the torrent keeps seeding after the
// flight's file is closed.
package torrentstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
)

// ErrReadOnly is returned for a write to a blob that is already stored.
var ErrReadOnly = errors.New("stored blob is read-only")

// Blob is the storage of one blob's torrent. It implements
// storage.ClientImpl; give it to exactly one torrent (AddTorrentOpts.Storage).
type Blob struct {
	store  *store.Store
	digest digest.Digest

	mu sync.RWMutex
	// Exactly one of fl and file is set until Close: fl while bytes go to
	// the flight's partial (we hold a reference so the file stays open),
	// file once reading from the store.
	fl       *flight.Flight
	file     *os.File
	info     *metainfo.Info
	complete []bool
	closed   bool
}

// Stored opens storage that seeds blob d from the store.
func Stored(s *store.Store, d digest.Digest) (*Blob, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", d, err)
	}
	return &Blob{store: s, digest: d, file: f}, nil
}

// InFlight opens storage that writes blob d into the flight's partial. It
// holds a reference on the flight until Promote or Close.
func InFlight(s *store.Store, d digest.Digest, fl *flight.Flight) (*Blob, error) {
	if fl.Partial().Digest() != d {
		return nil, fmt.Errorf("flight is for %s, not %s", fl.Partial().Digest(), d)
	}
	if !fl.Acquire() {
		return nil, fmt.Errorf("download %s: flight already over", d)
	}
	return &Blob{store: s, digest: d, fl: fl}, nil
}

// OpenTorrent binds the storage to the blob's torrent.
func (b *Blob) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	if info.Name != b.digest.Encoded() || info.IsDir() {
		return storage.TorrentImpl{}, fmt.Errorf("torrent %q is not blob %s", info.Name, b.digest)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.info != nil {
		return storage.TorrentImpl{}, errors.New("blob storage already bound to a torrent")
	}
	if b.file != nil {
		fi, err := b.file.Stat()
		if err != nil {
			return storage.TorrentImpl{}, fmt.Errorf("stat %s: %w", b.digest, err)
		}
		if fi.Size() != info.Length {
			return storage.TorrentImpl{}, fmt.Errorf("stored %s is %d bytes, torrent says %d", b.digest, fi.Size(), info.Length)
		}
	}
	b.info = info
	b.complete = make([]bool, info.NumPieces())
	if b.file != nil {
		for i := range b.complete {
			b.complete[i] = true
		}
	}
	return storage.TorrentImpl{
		Piece:     b.piece,
		Close:     b.Close,
		NewReader: b.newReader,
	}, nil
}

// Promote switches reads to the stored blob after the partial was committed
// and gives the flight its reference back.
func (b *Blob) Promote() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fl == nil {
		return nil
	}
	if v := b.fl.Verified(); v != b.info.Length {
		return fmt.Errorf("promote %s: only %d of %d bytes verified", b.digest, v, b.info.Length)
	}
	f, err := b.store.Open(b.digest)
	if err != nil {
		return fmt.Errorf("promote %s: %w", b.digest, err)
	}
	b.fl.Release()
	b.fl, b.file = nil, f
	return nil
}

// Close releases the flight reference or the stored file. Further reads
// fail.
func (b *Blob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.fl != nil {
		b.fl.Release()
		b.fl = nil
	}
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}

// ReadAt reads the blob's bytes from wherever they are now.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.file != nil:
		return b.file.ReadAt(p, off)
	case b.fl != nil:
		return b.fl.Partial().ReadAt(p, off)
	default:
		return 0, fmt.Errorf("read %s: %w", b.digest, os.ErrClosed)
	}
}

func (b *Blob) writeAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.fl != nil:
		return b.fl.Partial().WriteAt(p, off)
	case b.file != nil:
		return 0, fmt.Errorf("write %s: %w", b.digest, ErrReadOnly)
	default:
		return 0, fmt.Errorf("write %s: %w", b.digest, os.ErrClosed)
	}
}

// setComplete records a piece's check and extends the flight's verified
// prefix over the run of complete pieces that now follows it. The prefix
// itself is the flight's alone; a piece that fails a later check does not
// shrink it: readers may already have its bytes, and they were verified
// when they were read.
func (b *Blob) setComplete(i int, complete bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.complete[i] = complete
	if b.fl == nil || !complete {
		return
	}
	next := int(b.fl.Verified() / b.info.PieceLength)
	for next < len(b.complete) && b.complete[next] {
		next++
	}
	b.fl.Advance(min(int64(next)*b.info.PieceLength, b.info.Length))
}

func (b *Blob) isComplete(i int) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.complete[i]
}

func (b *Blob) newReader() storage.TorrentReader { return torrentReader{b} }

// torrentReader reads the whole blob for uploads and hashing; Close must
// not close the blob itself.
type torrentReader struct{ *Blob }

func (torrentReader) Close() error { return nil }

func (b *Blob) piece(p metainfo.Piece) storage.PieceImpl {
	return piece{blob: b, off: p.Offset(), len: p.Length(), index: p.Index()}
}

type piece struct {
	blob     *Blob
	off, len int64
	index    int
}

func (p piece) ReadAt(b []byte, off int64) (int, error) { return p.blob.ReadAt(b, p.off+off) }

func (p piece) WriteAt(b []byte, off int64) (int, error) { return p.blob.writeAt(b, p.off+off) }

// hashBuffers are used to feed pieces to the hasher: with io.Copy's 32 KiB
// a 4 MiB piece costs 128 reads.
var hashBuffers = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// WriteTo feeds the piece to the hasher.
func (p piece) WriteTo(w io.Writer) (int64, error) {
	buf := hashBuffers.Get().(*[256 << 10]byte)
	defer hashBuffers.Put(buf)
	return io.CopyBuffer(w, io.NewSectionReader(p.blob, p.off, p.len), buf[:])
}

func (p piece) MarkComplete() error {
	p.blob.setComplete(p.index, true)
	return nil
}

func (p piece) MarkNotComplete() error {
	p.blob.setComplete(p.index, false)
	return nil
}

func (p piece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: p.blob.isComplete(p.index)}
}
