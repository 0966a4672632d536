// Package torrentstore is anacrolix/torrent storage for one blob, backed by
// the blob store.
//
// A blob already in the store is seeded straight from its file, every piece
// reported complete without hashing: the store only holds blobs that passed
// their digest check. A blob on its way in is written into a Partial (the
// mirror's flight), which owns the file and the record of its verified
// bytes; piece completion lives here, in memory (never sqlite: its cost
// grows with the piece count squared), and every piece that passes its
// check is reported to the Partial. Once the caller committed the Partial,
// Promote switches reads to the stored file so the torrent keeps seeding
// after the Partial's file is closed.
//
// The pieces of a blob on its way in are checked against Hashes, the real
// SHA-1s learned from the tracker as its seeder reads the origin, never
// against the torrent's own piece hashes: a blob's torrent is made before
// its bytes exist, and carries placeholders (torrentmeta.ForBlob). A piece
// whose hash is not known yet is never complete, so it is neither served
// from the verified prefix nor relayed to peers.
package torrentstore

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
)

// ErrReadOnly is returned for a write to a blob that is already stored.
var ErrReadOnly = errors.New("stored blob is read-only")

// Partial is where a download's pieces go: the blob's file, with the one
// record of which bytes are verified.
type Partial interface {
	io.ReaderAt
	// WriteAt writes a piece before its check.
	io.WriterAt
	// PieceChecked says the piece [off, end) passed its check.
	PieceChecked(off, end int64)
	// Verified is how far from the start the checked pieces reach.
	Verified() int64
}

// Blob is the storage of one blob's torrent. It implements
// storage.ClientImpl; give it to exactly one torrent (AddTorrentOpts.Storage).
type Blob struct {
	store  *store.Store
	digest digest.Digest

	mu sync.RWMutex
	// Exactly one of partial and file is set until Close: partial while
	// the blob arrives, file once reading from the store.
	partial  Partial
	file     *os.File
	info     *metainfo.Info
	complete []bool
	closed   bool
	// hashes are what pieces are checked against; nil for a stored blob,
	// which is never checked.
	hashes *Hashes
}

// Stored opens storage that seeds blob d from the store.
func Stored(s *store.Store, d digest.Digest) (*Blob, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", d, err)
	}
	return &Blob{store: s, digest: d, file: f}, nil
}

// InFlight opens storage that writes blob d into p, its pieces checked
// against h (one hash per piece of the torrent). The caller keeps p open
// until Promote or Close returned: the torrent uploads from it.
func InFlight(s *store.Store, d digest.Digest, p Partial, h *Hashes) *Blob {
	return &Blob{store: s, digest: d, partial: p, hashes: h}
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
	if b.partial != nil && (b.hashes == nil || b.hashes.pieces() != info.NumPieces()) {
		return storage.TorrentImpl{}, fmt.Errorf("torrent of %s has %d pieces, and no table of their hashes", b.digest, info.NumPieces())
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

// Promote switches reads to the stored blob after the partial was
// committed; from then on the partial is not touched.
func (b *Blob) Promote() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.partial == nil {
		return nil
	}
	if v := b.partial.Verified(); v != b.info.Length {
		return fmt.Errorf("promote %s: only %d of %d bytes verified", b.digest, v, b.info.Length)
	}
	f, err := b.store.Open(b.digest)
	if err != nil {
		return fmt.Errorf("promote %s: %w", b.digest, err)
	}
	b.partial, b.file = nil, f
	return nil
}

// Close lets go of the partial or closes the stored file. Further reads
// and writes fail.
func (b *Blob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.partial = nil
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
	case b.partial != nil:
		return b.partial.ReadAt(p, off)
	default:
		return 0, fmt.Errorf("read %s: %w", b.digest, os.ErrClosed)
	}
}

func (b *Blob) writeAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.partial != nil:
		return b.partial.WriteAt(p, off)
	case b.file != nil:
		return 0, fmt.Errorf("write %s: %w", b.digest, ErrReadOnly)
	default:
		return 0, fmt.Errorf("write %s: %w", b.digest, os.ErrClosed)
	}
}

// setComplete records a piece's check, and tells the partial of a piece
// that passed. A piece that fails a later check is not taken back from
// the partial: readers may already have its bytes, and they were verified
// when they were read.
func (b *Blob) setComplete(i int, complete bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.complete[i] = complete
	if b.partial == nil || !complete {
		return
	}
	p := b.info.Piece(i)
	b.partial.PieceChecked(p.Offset(), p.Offset()+p.Length())
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

func (b *Blob) piece(mp metainfo.Piece) storage.PieceImpl {
	p := piece{blob: b, off: mp.Offset(), len: mp.Length(), index: mp.Index()}
	if b.hashes == nil {
		return p
	}
	want, _ := mp.V1Hash().AsTuple()
	return checkedPiece{piece: p, want: want}
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

// errHashUnknown fails the check of a piece whose hash has not come yet.
// The client takes an error from SelfHash as trouble reading storage: the
// piece stays incomplete and no peer is blamed. Pieces are asked for only
// once their hash is known, so this is a piece a peer sent unasked.
var errHashUnknown = errors.New("piece hash not known yet")

// checkedPiece is a piece of a blob on its way in, which the client checks
// through SelfHash.
type checkedPiece struct {
	piece
	// want is the piece's hash in the torrent: what the client takes from
	// SelfHash as "the bytes are right".
	want metainfo.Hash
}

// SelfHash checks the piece against the hash learned for it, and answers
// the torrent's own hash for the piece only when the bytes match: the
// client compares what this returns with the torrent's hash, which for a
// blob's torrent is a placeholder no bytes hash to. Bytes that do not match
// get anything else, so the piece fails its check, and a peer that alone
// sent it is banned, as with the client's own hashing. (The client's smart
// ban, which finds the liar among several senders block by block, reads
// the piece itself, and so does not run for storage that hashes its own.)
func (p checkedPiece) SelfHash() (metainfo.Hash, error) {
	learned, ok := p.blob.hashes.Get(p.index)
	if !ok {
		return metainfo.Hash{}, fmt.Errorf("check piece %d of %s: %w", p.index, p.blob.digest, errHashUnknown)
	}
	h := sha1.New()
	if _, err := p.WriteTo(h); err != nil {
		return metainfo.Hash{}, fmt.Errorf("check piece %d of %s: %w", p.index, p.blob.digest, err)
	}
	var sum metainfo.Hash
	h.Sum(sum[:0])
	if sum != learned {
		wrong := p.want
		wrong[0] ^= 0xff
		return wrong, nil
	}
	return p.want, nil
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
