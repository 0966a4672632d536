package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

func TestPickFillPrefersPiecesNoPeerHolds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	if _, ok := pickFill(nil, r); ok {
		t.Fatal("picked a piece when none is missing")
	}
	missing := []missingPiece{
		{index: 0, held: true, arriving: true},
		{index: 1, held: true},
		{index: 2},
		{index: 3, held: true},
		{index: 4},
	}
	seen := map[int]int{}
	for range 1000 {
		i, ok := pickFill(missing, r)
		if !ok {
			t.Fatal("picked nothing")
		}
		seen[i]++
	}
	if seen[2]+seen[4] != 1000 {
		t.Fatalf("picks %v: want only pieces 2 and 4, which no peer holds", seen)
	}
	// Spread, so hosts filling together fetch different pieces.
	if seen[2] < 400 || seen[4] < 400 {
		t.Fatalf("picks %v: want about half each", seen)
	}
	if i, _ := pickFill(missing[:2], r); i != 1 {
		t.Fatalf("picked %d among held pieces: want 1, which nobody has started to send", i)
	}
	if i, _ := pickFill(missing[:1], r); i != 0 {
		t.Fatalf("picked %d: want the only missing piece", i)
	}
}

// evenPiece is a piece that is there only if its index is even.
type evenPiece struct {
	storage.PieceImpl
	even bool
}

func (p evenPiece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: p.even}
}

// countingOrigin serves ranges of b and counts the bytes it sent.
type countingOrigin struct {
	data []byte
	sent atomic.Int64
	// corrupt flips the first byte of every answer.
	corrupt bool
}

func (o *countingOrigin) read(_ context.Context, off, n int64) (io.ReadCloser, error) {
	b := bytes.Clone(o.data[off : off+n])
	if o.corrupt {
		b[0] ^= 0xff
	}
	o.sent.Add(n)
	return io.NopCloser(bytes.NewReader(b)), nil
}

// A peer that holds half the pieces and then nothing more: the stalled
// download takes the other half from the origin, piece by piece, and
// keeps the half the peer gave.
func TestStalledDownloadFillsMissingPiecesFromOrigin(t *testing.T) {
	b := newBlob(t, 5, 4<<20) // 16 pieces of 256 KiB
	half := plainPeer(t, otherIP, b, func(blob *torrentstore.Blob) storage.ClientImpl {
		return wrapped{blob, func(mp metainfo.Piece, p storage.PieceImpl) storage.PieceImpl { return evenPiece{p, mp.Index()%2 == 0} }}
	})
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: 300 * time.Millisecond})
	leecher.bootstrap = []netip.AddrPort{half.addr}
	origin := &countingOrigin{data: b.data}

	fl, done := downloadWith(t, leecher, leecherStore, b, b.allHashes(), origin.read)
	if !fl.Acquire() {
		t.Fatal("flight over before the reader came")
	}
	defer fl.Release()
	checkStreamed(t, fl, done, b)
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s", got)
	}
	// The peer is the only one: all the leecher downloaded came from it.
	fromPeer := leecher.Stats().Downloaded
	t.Logf("from the peer %d bytes, from the origin %d of %d", fromPeer, origin.sent.Load(), len(b.data))
	if fromPeer != int64(len(b.data))/2 {
		t.Errorf("the peer sent %d bytes, want its half, %d", fromPeer, len(b.data)/2)
	}
	if got, want := origin.sent.Load(), int64(len(b.data))/2; got != want {
		t.Errorf("the origin sent %d bytes, want only the missing half, %d", got, want)
	}
}

// An origin whose bytes fail the piece hash ends the download with an
// error and nothing is stored.
func TestFillFromOriginChecksPieces(t *testing.T) {
	b := newBlob(t, 6, 1<<20)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: 200 * time.Millisecond})
	origin := &countingOrigin{data: b.data, corrupt: true}

	_, done := downloadWith(t, leecher, leecherStore, b, b.allHashes(), origin.read)
	err := <-done
	if err == nil {
		t.Fatal("a download filled with corrupt bytes succeeded")
	}
	t.Log(err)
	if origin.sent.Load() == 0 {
		t.Fatal("the origin was never asked; the test proves nothing")
	}
	if _, err := leecherStore.Stat(b.digest); err == nil {
		t.Fatal("a blob filled with corrupt bytes was stored")
	}
	if n := len(leecher.Stats().Torrents); n != 0 {
		t.Fatalf("%d torrents left after a failed download", n)
	}
	// And a failing origin ends it too, instead of hanging.
	failing := func(context.Context, int64, int64) (io.ReadCloser, error) { return nil, errors.New("origin down") }
	_, done = downloadWith(t, leecher, leecherStore, b, b.allHashes(), failing)
	if err := <-done; err == nil {
		t.Fatal("a download with neither peers nor origin succeeded")
	}
}
