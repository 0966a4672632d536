package torrentstore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
)

// A blob of 4 pieces and a bit, so the last piece is short, with its
// torrent as the tracker hands it out.
func testBlob(t *testing.T) ([]byte, digest.Digest, *metainfo.Info) {
	t.Helper()
	b := make([]byte, 4*(256<<10)+1000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	d := digest.FromBytes(b)
	infoBytes, err := torrentmeta.ForBlob(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		t.Fatal(err)
	}
	return b, d, &info
}

// allKnown is a table with the real hash of every piece of b.
func allKnown(b []byte, info *metainfo.Info) *Hashes {
	h := NewHashes(info.NumPieces())
	for i := range info.NumPieces() {
		p := info.Piece(i)
		h.Learn(i, sha1.Sum(b[p.Offset():p.Offset()+p.Length()]))
	}
	return h
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readable is what a flight reader gets right now, without waiting.
func readable(t *testing.T, fl *flight.Flight, size int64) []byte {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := io.ReadAll(fl.NewReader(ctx, 0, size))
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return got
}

// lettingGo is a Partial that fails the test when the storage uses it
// after it was to let go of it (Promote or Close).
type lettingGo struct {
	Partial
	t    *testing.T
	gone atomic.Bool
}

func (l *lettingGo) check(what string) {
	if l.gone.Load() {
		l.t.Errorf("%s on the partial after the storage let go of it", what)
	}
}

func (l *lettingGo) ReadAt(b []byte, off int64) (int, error) {
	l.check("ReadAt")
	return l.Partial.ReadAt(b, off)
}

func (l *lettingGo) WriteAt(b []byte, off int64) (int, error) {
	l.check("WriteAt")
	return l.Partial.WriteAt(b, off)
}

func (l *lettingGo) PieceChecked(off, end int64) {
	l.check("PieceChecked")
	l.Partial.PieceChecked(off, end)
}

func writePiece(t *testing.T, ti storage.TorrentImpl, info *metainfo.Info, b []byte, i int) {
	t.Helper()
	p := info.Piece(i)
	if _, err := ti.Piece(p).WriteAt(b[p.Offset():p.Offset()+p.Length()], 0); err != nil {
		t.Fatal(err)
	}
}

func TestInFlightAdvancesVerifiedPrefix(t *testing.T) {
	b, d, info := testBlob(t)
	s := openStore(t)
	fl := newFlight(t, s, d)
	if err := fl.Reserve(info.Length); err != nil {
		t.Fatal(err)
	}
	sink := &lettingGo{Partial: fl, t: t}
	blob := InFlight(s, d, sink, allKnown(b, info))
	ti, err := blob.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	pl := info.PieceLength

	// Pieces arrive out of order; readers see only the verified prefix.
	steps := []struct {
		piece    int
		complete bool
		readable int64
	}{
		{2, true, 0},
		{0, true, pl},
		{3, false, pl}, // written but failed its hash: not complete
		{1, true, 3 * pl},
		{3, true, 4 * pl},
		{4, true, info.Length - 1}, // the last byte waits for the digest
	}
	for _, step := range steps {
		writePiece(t, ti, info, b, step.piece)
		p := ti.Piece(info.Piece(step.piece))
		if step.complete {
			err = p.MarkComplete()
		} else {
			err = p.MarkNotComplete()
		}
		if err != nil {
			t.Fatal(err)
		}
		if c := p.Completion(); !c.Ok || c.Complete != step.complete {
			t.Fatalf("piece %d completion %+v after marking %v", step.piece, c, step.complete)
		}
		got := readable(t, fl, info.Length)
		if int64(len(got)) != step.readable || !bytes.Equal(got, b[:len(got)]) {
			t.Fatalf("after piece %d: readers see %d bytes (match %v), want %d", step.piece, len(got), bytes.Equal(got, b[:len(got)]), step.readable)
		}
	}

	// The mirror commits, finishes the flight and lets go of it: the
	// partial's file is closed, and seeding goes on from the store.
	if err := fl.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readable(t, fl, info.Length); !bytes.Equal(got, b) {
		t.Fatalf("after the commit readers see %d bytes (match %v), want the blob", len(got), bytes.Equal(got, b[:len(got)]))
	}
	if err := blob.Promote(); err != nil {
		t.Fatal(err)
	}
	sink.gone.Store(true)
	fl.Finish(nil)
	fl.Release()
	r := ti.NewReader()
	got := make([]byte, len(b))
	if _, err := r.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatalf("read after promote: %v", err)
	}
	if !bytes.Equal(got, b) {
		t.Fatal("seeded bytes differ from the blob")
	}
	if _, err := ti.Piece(info.Piece(0)).WriteAt([]byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to the stored blob: %v", err)
	}
	if err := ti.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPromoteRefusesIncompleteBlob(t *testing.T) {
	b, d, info := testBlob(t)
	s := openStore(t)
	fl := newFlight(t, s, d)
	sink := &lettingGo{Partial: fl, t: t}
	blob := InFlight(s, d, sink, allKnown(b, info))
	ti, err := blob.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if err := blob.Promote(); err == nil {
		t.Fatal("promoted a blob with no verified pieces")
	}
	// Dropping the torrent lets go of the partial: the caller may abort
	// and close it, and the torrent's pieces fail from then on.
	if err := blob.Close(); err != nil {
		t.Fatal(err)
	}
	sink.gone.Store(true)
	fl.Abort()
	fl.Release()
	p := ti.Piece(info.Piece(0))
	if _, err := p.WriteAt([]byte{1}, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := p.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := p.MarkComplete(); err != nil {
		t.Fatal(err)
	}
}

func TestStoredSeedsEveryPieceWithoutHashing(t *testing.T) {
	b, d, info := testBlob(t)
	s := openStore(t)
	storeBlob(t, s, d, b)

	blob, err := Stored(s, d)
	if err != nil {
		t.Fatal(err)
	}
	ti, err := blob.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	for i := range info.NumPieces() {
		p := info.Piece(i)
		if c := ti.Piece(p).Completion(); !c.Ok || !c.Complete {
			t.Fatalf("piece %d completion %+v", i, c)
		}
		// A stored blob has no hashes to check against, and needs none.
		if _, ok := ti.Piece(p).(storage.SelfHashing); ok {
			t.Fatalf("stored piece %d would be checked", i)
		}
		got := make([]byte, p.Length())
		if _, err := ti.Piece(p).ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b[p.Offset():p.Offset()+p.Length()]) {
			t.Fatalf("piece %d bytes differ", i)
		}
	}
}

func TestStoredRejectsOtherTorrents(t *testing.T) {
	b, d, info := testBlob(t)
	s := openStore(t)
	storeBlob(t, s, d, b)

	longer := *info
	longer.Length++
	renamed := *info
	renamed.Name = "other"
	for name, bad := range map[string]*metainfo.Info{"length": &longer, "name": &renamed} {
		blob, err := Stored(s, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := blob.OpenTorrent(context.Background(), bad, metainfo.Hash{}); err == nil {
			t.Errorf("%s: storage accepted a torrent that is not the stored blob", name)
		}
		blob.Close()
	}
	if _, err := Stored(s, digest.FromString("absent")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("seeding an absent blob: %v", err)
	}
}

// A piece on its way in passes the client's check (SelfHash answering the
// torrent's placeholder) only once the hash learned for it matches its
// bytes; before its hash is known the check fails as a read error, which
// blames no peer.
func TestInFlightPiecesCheckAgainstLearnedHashes(t *testing.T) {
	b, d, info := testBlob(t)
	s := openStore(t)
	fl := newFlight(t, s, d)
	defer fl.Release()
	defer fl.Abort()
	if err := fl.Reserve(info.Length); err != nil {
		t.Fatal(err)
	}
	hashes := NewHashes(info.NumPieces())
	blob := InFlight(s, d, fl, hashes)
	ti, err := blob.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	writePiece(t, ti, info, b, 0)
	wrong := bytes.Clone(b)
	wrong[info.Piece(1).Offset()] ^= 0xff
	writePiece(t, ti, info, wrong, 1)

	check := func(i int) (metainfo.Hash, error) {
		return ti.Piece(info.Piece(i)).(storage.SelfHashing).SelfHash()
	}
	placeholder := func(i int) metainfo.Hash { return info.Piece(i).V1Hash().Unwrap() }
	if _, err := check(0); !errors.Is(err, errHashUnknown) {
		t.Fatalf("piece 0 checked before its hash came: %v", err)
	}

	changed := hashes.Changed()
	real0 := sha1.Sum(b[:info.PieceLength])
	if !hashes.Learn(0, real0) {
		t.Fatal("a new hash was not learned")
	}
	select {
	case <-changed:
	default:
		t.Fatal("learning a hash woke no one")
	}
	if sum, err := check(0); err != nil || sum != placeholder(0) {
		t.Fatalf("piece 0 with its hash known: %x, %v; want the placeholder", sum, err)
	}
	if hashes.Learn(0, [20]byte{1}) || hashes.Learn(-1, real0) || hashes.Learn(info.NumPieces(), real0) {
		t.Fatal("a known hash was replaced, or one outside the torrent learned")
	}
	if got, _ := hashes.Get(0); got != real0 {
		t.Fatal("piece 0's hash changed")
	}

	p1 := info.Piece(1)
	hashes.Learn(1, sha1.Sum(b[p1.Offset():p1.Offset()+p1.Length()]))
	if sum, err := check(1); err != nil || sum == placeholder(1) {
		t.Fatalf("piece 1 with wrong bytes: %x, %v; want a plain failure", sum, err)
	}
}

func TestInFlightNeedsAHashPerPiece(t *testing.T) {
	_, d, info := testBlob(t)
	s := openStore(t)
	fl := newFlight(t, s, d)
	defer fl.Release()
	defer fl.Abort()
	for name, h := range map[string]*Hashes{"no table": nil, "a piece short": NewHashes(info.NumPieces() - 1)} {
		if _, err := InFlight(s, d, fl, h).OpenTorrent(context.Background(), info, metainfo.Hash{}); err == nil {
			t.Errorf("%s: the torrent opened", name)
		}
	}
}

// newFlight starts a flight over a new partial of blob d in s.
func newFlight(t *testing.T, s *store.Store, d digest.Digest) *flight.Flight {
	t.Helper()
	partial, err := s.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	fl := flight.New(-1)
	fl.Begin(partial)
	return fl
}

// storeBlob puts b, whose digest is d, in s.
func storeBlob(t *testing.T, s *store.Store, d digest.Digest, b []byte) {
	t.Helper()
	partial, err := s.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := partial.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := partial.Commit(); err != nil {
		t.Fatal(err)
	}
	partial.Close()
}
