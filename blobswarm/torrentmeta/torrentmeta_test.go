package torrentmeta

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

func blob(seed uint64, size int) ([]byte, digest.Digest) {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, digest.FromBytes(b)
}

func TestBuildIsDeterministic(t *testing.T) {
	b, d := blob(1, 700<<10)
	info1, ih1, err := Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Another node reads the same blob in other chunk sizes.
	info2, ih2, err := Build(d, iotest.HalfReader(bytes.NewReader(b)), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if ih1 != ih2 || !bytes.Equal(info1, info2) {
		t.Fatalf("same bytes gave infohashes %s and %s", ih1, ih2)
	}
	if got := metainfo.HashBytes(info1); got != ih1 {
		t.Fatalf("infohash %s is not the hash of the info bytes (%s)", ih1, got)
	}

	other, d2 := blob(2, len(b))
	_, ih3, err := Build(d2, bytes.NewReader(other), int64(len(other)))
	if err != nil {
		t.Fatal(err)
	}
	if ih3 == ih1 {
		t.Fatal("different blobs share an infohash")
	}
}

func TestBuildDescribesTheBlob(t *testing.T) {
	b, d := blob(3, 600<<10+5)
	infoBytes, _, err := Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(infoBytes, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != d.Encoded() || info.Length != int64(len(b)) || info.PieceLength != 256<<10 {
		t.Fatalf("info = name %q length %d piece length %d", info.Name, info.Length, info.PieceLength)
	}
	// The piece hashes must check the blob's bytes: the last one covers the
	// short tail.
	for i := range info.NumPieces() {
		p := info.Piece(i)
		if want := metainfo.HashBytes(b[p.Offset() : p.Offset()+p.Length()]); p.V1Hash().Unwrap() != want {
			t.Fatalf("piece %d hash does not match the blob", i)
		}
	}
}

func TestPieceLengthTable(t *testing.T) {
	prev := int64(0)
	for _, size := range []int64{1, 1 << 20, 16 << 20, 16<<20 + 1, 64 << 20, 256 << 20, 1 << 30, 1<<30 + 1, 4 << 30, 50 << 30} {
		pl := PieceLength(size)
		if pl < 16<<10 || pl&(pl-1) != 0 {
			t.Errorf("size %d: piece length %d is not a power of two of at least one 16 KiB chunk", size, pl)
		}
		if pl < prev {
			t.Errorf("size %d: piece length %d shrinks from %d", size, pl, prev)
		}
		prev = pl
	}
	if PieceLength(16<<20) == PieceLength(16<<20+1) {
		t.Error("16 MiB boundary does not change the table entry")
	}
	if got := PieceLength(8 << 30); got != 4<<20 {
		t.Errorf("GiB blobs get %d pieces, want 4 MiB", got)
	}
}

func TestBuildRejectsWrongInput(t *testing.T) {
	b, d := blob(4, 100<<10)
	tests := map[string]struct {
		r    io.Reader
		size int64
		d    digest.Digest
	}{
		"short reader": {bytes.NewReader(b[:len(b)-1]), int64(len(b)), d},
		"wrong digest": {bytes.NewReader(b), int64(len(b)), digest.FromString("other")},
		"empty":        {bytes.NewReader(nil), 0, digest.FromBytes(nil)},
		"bad digest":   {bytes.NewReader(b), int64(len(b)), "sha256:xyz"},
		"failing read": {iotest.ErrReader(errors.New("disk gone")), int64(len(b)), d},
	}
	for name, tc := range tests {
		if _, _, err := Build(tc.d, tc.r, tc.size); err == nil {
			t.Errorf("%s: Build succeeded", name)
		}
	}
}

func TestParseAcceptsWhatBuildMakes(t *testing.T) {
	b, d := blob(5, 300<<10)
	infoBytes, _, err := Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := Parse(infoBytes, d)
	if err != nil {
		t.Fatal(err)
	}
	if info.Length != int64(len(b)) || info.NumPieces() != 2 {
		t.Fatalf("parsed length %d, %d pieces", info.Length, info.NumPieces())
	}
}

func TestParseRejects(t *testing.T) {
	b, d := blob(6, 300<<10)
	good, _, err := Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(good, &info); err != nil {
		t.Fatal(err)
	}
	encode := func(mod func(*metainfo.Info)) []byte {
		i := info
		mod(&i)
		return bencode.MustMarshal(i)
	}
	private := true
	tests := map[string]struct {
		infoBytes []byte
		want      string
	}{
		"garbage":          {[]byte("not bencode"), "decode info dict"},
		"truncated":        {good[:len(good)-3], "decode info dict"},
		"trailing bytes":   {append(append([]byte{}, good...), 'x'), "decode info dict"},
		"other name":       {encode(func(i *metainfo.Info) { i.Name = "x" }), "name"},
		"multi-file":       {encode(func(i *metainfo.Info) { i.Files = []metainfo.FileInfo{{Length: 1, Path: []string{"a"}}} }), "single-file"},
		"odd piece length": {encode(func(i *metainfo.Info) { i.PieceLength = 100 << 10 }), "piece length"},
		"tiny pieces":      {encode(func(i *metainfo.Info) { i.PieceLength = 8 << 10 }), "piece length"},
		"huge pieces":      {encode(func(i *metainfo.Info) { i.PieceLength = 32 << 20; i.Pieces = i.Pieces[:20] }), "piece length"},
		"missing hash":     {encode(func(i *metainfo.Info) { i.Pieces = i.Pieces[:20] }), "piece hashes"},
		"extra field":      {encode(func(i *metainfo.Info) { i.Private = &private }), "not the one this blob builds"},
		"zero length":      {encode(func(i *metainfo.Info) { i.Length = 0 }), "empty"},
		"negative length":  {encode(func(i *metainfo.Info) { i.Length = -5 }), "empty"},
		"list not dict":    {[]byte("li1ee"), "decode info dict"},
		"digest of other":  {good, "name"},
		"huge string size": {[]byte("d4:name99999999999:x"), "decode info dict"},
	}
	for name, tc := range tests {
		dd := d
		if name == "digest of other" {
			dd = digest.FromString("other")
		}
		_, err := Parse(tc.infoBytes, dd)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

// FuzzParse feeds arbitrary info bytes; whatever Parse accepts must be a
// torrent the node can safely add: the blob's name, a length, and one hash
// per piece, encoded exactly as Build encodes it.
func FuzzParse(f *testing.F) {
	b, d := blob(7, 40<<10)
	good, _, err := Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, infoBytes []byte) {
		info, err := Parse(infoBytes, d)
		if err != nil {
			return
		}
		if pl := info.PieceLength; info.Name != d.Encoded() || info.Length <= 0 || pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
			t.Fatalf("accepted info name %q length %d piece length %d", info.Name, info.Length, info.PieceLength)
		}
		if n := int64(info.NumPieces()); n != (info.Length+info.PieceLength-1)/info.PieceLength {
			t.Fatalf("accepted %d piece hashes for %d bytes", n, info.Length)
		}
		if !bytes.Equal(bencode.MustMarshal(info), infoBytes) {
			t.Fatal("accepted non-canonical info bytes")
		}
	})
}
