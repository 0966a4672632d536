package torrentmeta

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

func TestForBlobIsAFunctionOfDigestAndSize(t *testing.T) {
	d := digest.FromString("a blob")
	a, err := ForBlob(d, 5<<20+3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ForBlob(d, 5<<20+3)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same blob's torrent differ")
	}
	info, err := Parse(a, d)
	if err != nil {
		t.Fatalf("Parse refuses ForBlob's torrent: %v", err)
	}
	if info.NumPieces() != 21 || info.PieceLength != PieceLength(5<<20+3) {
		t.Fatalf("%d pieces of %d, want 21 of %d", info.NumPieces(), info.PieceLength, PieceLength(5<<20+3))
	}
	if !IsForBlob(a, d, 5<<20+3) || IsForBlob(a, d, 5<<20+4) || IsForBlob(a, digest.FromString("other"), 5<<20+3) {
		t.Fatal("IsForBlob does not tell this blob's torrent from others")
	}
	seen := map[[20]byte]bool{}
	for i := range info.NumPieces() {
		h := info.Piece(i).V1Hash().Unwrap()
		if h != Placeholder(d, i) || seen[h] {
			t.Fatalf("piece %d: hash %x, want its own placeholder", i, h)
		}
		seen[h] = true
	}
	if _, err := ForBlob(d, 0); err == nil {
		t.Fatal("a torrent for an empty blob")
	}
}

// PieceHasher gives the same hashes as a torrent built from the whole blob,
// however the bytes are cut into writes.
func TestPieceHasherMatchesBuild(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	d := digest.FromBytes(data)
	infoBytes, _, err := Build(d, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := Parse(infoBytes, d)
	if sums, err := PieceSums(d, bytes.NewReader(data), int64(len(data))); err != nil || !bytes.Equal(sums, info.Pieces) {
		t.Fatalf("PieceSums = %d bytes, %v; want Build's %d bytes of piece hashes", len(sums), err, len(info.Pieces))
	}
	for _, step := range []int{1 << 20, 4096, 333333, len(data)} {
		var got []metainfo.Hash
		h := NewPieceHasher(info.PieceLength, int64(len(data)), func(i int, sum [20]byte) {
			if i != len(got) {
				t.Fatalf("piece %d hashed after %d", i, len(got))
			}
			got = append(got, sum)
		})
		for off := 0; off < len(data); off += step {
			h.Write(data[off:min(off+step, len(data))])
		}
		if len(got) != info.NumPieces() || h.Pieces() != info.NumPieces() {
			t.Fatalf("writes of %d: %d pieces hashed, want %d", step, len(got), info.NumPieces())
		}
		for i, sum := range got {
			if sum != info.Piece(i).V1Hash().Unwrap() {
				t.Fatalf("writes of %d: piece %d hash differs from Build's", step, i)
			}
		}
		if _, err := h.Write([]byte{0}); err == nil {
			t.Fatal("a byte past the blob was taken")
		}
	}
}
