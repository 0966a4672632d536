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

// PieceLength is the piece length for a blob of the given size. Only the
// tracker's seeder builds torrents, so only it uses this table; nodes
// accept any piece length Parse allows, so a table changed in a new
// version gives new blobs new infohashes without splitting a fleet whose
// tracker and mirrors are upgraded at different times.
//
// Small pieces give a short time to first byte (a reader waits for a whole
// piece to verify) and let peers trade early: a peer can pass a piece on
// only once it has all of it, and with few large pieces every peer asks the
// seeder for the same ones (Kraken needed 256 KiB pieces to get peers
// trading a 64 MiB image on 100 Mbit/s links). Large pieces cost less per
// byte. Measured one seeder to one leecher over loopback (swarm package's
// BenchmarkDownload, 64 KiB requests, leecher CPU per GB including the
// final sha256 and fsync; plain HTTP into the store took 2.9-3.6 s/GB):
//
//	256 MiB blob:  256 KiB pieces  64-120 MB/s, 6.4-9.4 CPU-s/GB
//	               1 MiB pieces   230-240 MB/s, 4.0-4.2 CPU-s/GB
//	               4 MiB pieces   236-254 MB/s, 3.6-3.9 CPU-s/GB
//	1 GiB blob:    1 MiB pieces        118 MB/s, 6.3 CPU-s/GB
//	               4 MiB pieces        171 MB/s, 4.1 CPU-s/GB
//
// In a fleet the cost per byte is what binds: 8 hosts on 100 Mbit/s links
// emulated on 2 cores (BENCHMARKS.md, section 5) finished a 64 MiB image
// of two 32 MiB layers at the same time with 1 MiB pieces as with 256 KiB
// ones, with the fleet's processes using 55-66% of the machine instead of
// 71%. With the seeder handing each piece to one peer (superseed), a piece
// passes on as soon as it verifies, so 32 of them per layer are enough to
// trade. So only small blobs, where a 1 MiB piece would be most of the
// blob, keep 256 KiB pieces (up to 64 of them); big ones get 4 MiB, never
// fewer than 64 pieces.
//
// Then the mirrors stopped fetching in order and capped their uploads
// below their links, and the time a piece takes to reach its first holder
// became what a rollout waits for at the end: the seeder offers each peer
// two pieces at a time, so the fleet's last pieces are two per host in
// flight when the seeder's link goes quiet. Halving the 1 MiB class (8 x
// 128 MiB at 100 Mbit/s, BENCHMARKS.md 5e) took all-done from 14.1-14.5 s
// to 13.5-13.9 s for 4-7 more points of the machine; 256 KiB gave
// 12.8-13.0 s for 10-14 points more, too much CPU per byte for fast links.
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
