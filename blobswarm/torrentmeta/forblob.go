package torrentmeta

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

// ForBlob is the torrent of a blob whose bytes have not all arrived: a
// function of the digest and the size alone, so the tracker has it as soon
// as the origin says how big the blob is, and every replica and every
// restart builds the same one. Its piece hashes are placeholders (see
// Placeholder); the real SHA-1 of each piece comes from the tracker as its
// seeder reads the origin (PieceHasher), and a node reports a piece's
// placeholder to its BitTorrent client only once the piece's bytes match
// the real hash. So the swarm can start with the origin's first bytes,
// while the tracker stays the root of trust for every piece.
func ForBlob(d digest.Digest, size int64) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("torrent for blob: %w", err)
	}
	if size <= 0 {
		return nil, fmt.Errorf("torrent for %s: %w", d, ErrEmpty)
	}
	info := metainfo.Info{Name: d.Encoded(), Length: size, PieceLength: PieceLength(size)}
	n := int((size + info.PieceLength - 1) / info.PieceLength)
	info.Pieces = make([]byte, 0, n*metainfo.HashSize)
	for i := range n {
		p := Placeholder(d, i)
		info.Pieces = append(info.Pieces, p[:]...)
	}
	b, err := encode(&info)
	if err != nil {
		return nil, fmt.Errorf("encode info dict of %s: %w", d, err)
	}
	return b, nil
}

// Placeholder is piece i's hash in blob d's ForBlob torrent: distinct per
// piece and per blob, and never the SHA-1 of the piece's bytes, which no
// one knows when the torrent is made.
func Placeholder(d digest.Digest, i int) [20]byte {
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], uint64(i))
	return sha1.Sum(append([]byte("blobswarm placeholder "+d.String()+" "), idx[:]...))
}

// IsForBlob reports whether infoBytes is d's ForBlob torrent of its
// length: the pieces of such a torrent are checked against hashes from the
// tracker, not against the info dictionary.
func IsForBlob(infoBytes []byte, d digest.Digest, length int64) bool {
	want, err := ForBlob(d, length)
	return err == nil && string(want) == string(infoBytes)
}

// PieceHasher computes the SHA-1 of each piece of a blob as its bytes go
// by in order, calling each with the piece's index and hash as soon as the
// piece is whole.
type PieceHasher struct {
	pieceLength, size int64
	each              func(i int, sum [20]byte)
	h                 hash.Hash
	seen              int64 // bytes written so far
	next              int   // index of the piece being hashed
}

// NewPieceHasher hashes a blob of size bytes cut into pieces of
// pieceLength (the last one shorter).
func NewPieceHasher(pieceLength, size int64, each func(i int, sum [20]byte)) *PieceHasher {
	return &PieceHasher{pieceLength: pieceLength, size: size, each: each, h: sha1.New()}
}

// Write hashes b; bytes past the blob's size are an error.
func (p *PieceHasher) Write(b []byte) (int, error) {
	if int64(len(b)) > p.size-p.seen {
		return 0, fmt.Errorf("piece hasher: %d bytes past the blob's %d", int64(len(b))-(p.size-p.seen), p.size)
	}
	n := len(b)
	for len(b) > 0 {
		end := min(int64(p.next+1)*p.pieceLength, p.size)
		take := min(int64(len(b)), end-p.seen)
		p.h.Write(b[:take])
		p.seen += take
		b = b[take:]
		if p.seen == end {
			var sum [20]byte
			p.h.Sum(sum[:0])
			p.h.Reset()
			p.each(p.next, sum)
			p.next++
		}
	}
	return n, nil
}

// Pieces is how many pieces are whole and hashed.
func (p *PieceHasher) Pieces() int { return p.next }

// PieceSums is the real SHA-1 of each piece of blob d (size bytes from r),
// 20 bytes each, in order: what the tracker streams for its ForBlob torrent.
func PieceSums(d digest.Digest, r io.Reader, size int64) ([]byte, error) {
	infoBytes, _, err := Build(d, r, size)
	if err != nil {
		return nil, err
	}
	info, err := Parse(infoBytes, d)
	if err != nil {
		return nil, err
	}
	return info.Pieces, nil
}
