// Package torrentmeta turns a blob into its BitTorrent v1 info dictionary.
//
// The mapping is a pure function of the blob's bytes: name = digest hex,
// single file, piece length from a fixed table, no creation date or other
// free fields. Every node that holds a blob therefore computes the same
// infohash, and a node can check that what a tracker sent is exactly what it
// would have built itself.
package torrentmeta

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

// PieceLength is the tracker's piece-length table: small pieces for small
// blobs (peers trade early, a short time to first byte), large ones for big
// blobs (less CPU per byte); BENCHMARKS.md, section 2a, has the measurements.
// Nodes accept any length Parse allows, so a new table splits no fleet.
func PieceLength(size int64) int64 {
	switch {
	case size <= 16<<20:
		return 256 << 10
	case size <= 256<<20:
		return 512 << 10
	default:
		return 4 << 20
	}
}

// Scheme chooses the piece length for a blob size. PieceLength is the one
// the tracker uses; other schemes exist to measure alternatives.
type Scheme func(size int64) int64

// The piece lengths Parse accepts: powers of two from one 16 KiB chunk to
// 16 MiB, the range any version's table may use.
const (
	MinPieceLength = 16 << 10
	MaxPieceLength = 16 << 20
)

// ErrEmpty is returned for a zero-length blob: it has no pieces, so there is
// nothing to share; serve it directly.
var ErrEmpty = errors.New("empty blob has no torrent")

// Build reads exactly size bytes of blob d from r and returns the bencoded
// info dictionary and its infohash, with piece lengths from PieceLength.
func Build(d digest.Digest, r io.Reader, size int64) ([]byte, metainfo.Hash, error) {
	return Scheme(PieceLength).Build(d, r, size)
}

// Build is Build with this scheme's piece lengths. The bytes must match d:
// a torrent named after a digest it does not carry would poison the swarm.
func (s Scheme) Build(d digest.Digest, r io.Reader, size int64) ([]byte, metainfo.Hash, error) {
	if err := d.Validate(); err != nil {
		return nil, metainfo.Hash{}, fmt.Errorf("build torrent: %w", err)
	}
	if size <= 0 {
		return nil, metainfo.Hash{}, fmt.Errorf("build torrent for %s: %w", d, ErrEmpty)
	}
	info := metainfo.Info{Name: d.Encoded(), Length: size, PieceLength: s(size)}
	verifier := d.Verifier()
	read := &countingWriter{w: verifier}
	pieces, err := metainfo.GeneratePieces(io.TeeReader(io.LimitReader(r, size), read), info.PieceLength, nil)
	if err != nil {
		return nil, metainfo.Hash{}, fmt.Errorf("hash pieces of %s: %w", d, err)
	}
	if read.n != size {
		return nil, metainfo.Hash{}, fmt.Errorf("build torrent for %s: got %d bytes, want %d: %w", d, read.n, size, io.ErrUnexpectedEOF)
	}
	if !verifier.Verified() {
		return nil, metainfo.Hash{}, fmt.Errorf("build torrent for %s: bytes do not match the digest", d)
	}
	info.Pieces = pieces
	infoBytes, err := encode(&info)
	if err != nil {
		return nil, metainfo.Hash{}, fmt.Errorf("encode info dict of %s: %w", d, err)
	}
	return infoBytes, metainfo.HashBytes(infoBytes), nil
}

// Parse decodes info bytes a tracker sent for blob d and checks they
// describe that blob the way Build would with some scheme: its name and
// length, a piece length Parse accepts, one hash per piece, the canonical
// encoding.
func Parse(infoBytes []byte, d digest.Digest) (metainfo.Info, error) {
	var info metainfo.Info
	if err := d.Validate(); err != nil {
		return info, fmt.Errorf("parse torrent: %w", err)
	}
	if err := bencode.Unmarshal(infoBytes, &info); err != nil {
		return info, fmt.Errorf("decode info dict for %s: %w", d, err)
	}
	if err := check(&info, d); err != nil {
		return info, fmt.Errorf("info dict for %s: %w", d, err)
	}
	// Any field Build never writes (private, source, v2 file tree, ...) and
	// any non-canonical encoding shows up as a difference here.
	canonical, err := encode(&info)
	if err != nil || !bytes.Equal(canonical, infoBytes) {
		return info, fmt.Errorf("info dict for %s is not the one this blob builds", d)
	}
	return info, nil
}

func check(info *metainfo.Info, d digest.Digest) error {
	switch {
	case info.Name != d.Encoded():
		return fmt.Errorf("name %q is not the digest hex", info.Name)
	case len(info.Files) != 0 || info.HasV2():
		return errors.New("not a single-file v1 torrent")
	case info.Length <= 0:
		return fmt.Errorf("length %d: %w", info.Length, ErrEmpty)
	case info.PieceLength < MinPieceLength || info.PieceLength > MaxPieceLength || info.PieceLength&(info.PieceLength-1) != 0:
		return fmt.Errorf("piece length %d: want a power of two from %d to %d", info.PieceLength, MinPieceLength, MaxPieceLength)
	}
	want := (info.Length + info.PieceLength - 1) / info.PieceLength * metainfo.HashSize
	if int64(len(info.Pieces)) != want {
		return fmt.Errorf("%d bytes of piece hashes, want %d", len(info.Pieces), want)
	}
	return nil
}

// encode writes the only fields a blob torrent has, in bencode's canonical
// (sorted) form.
func encode(info *metainfo.Info) ([]byte, error) {
	return bencode.Marshal(metainfo.Info{
		Name: info.Name, Length: info.Length, PieceLength: info.PieceLength, Pieces: info.Pieces,
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
