package swarm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
)

// completePieces lists the pieces of d's running torrent the client holds
// as verified: those it serves and relays.
func completePieces(s *Swarm, d digest.Digest) []int {
	s.mu.Lock()
	e, ok := s.torrents[d]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	var out []int
	for i := range e.t.NumPieces() {
		if e.t.PieceState(i).Complete {
			out = append(out, i)
		}
	}
	return out
}

// failure is the error a flight ended with, if it ended so.
func failure(fl *flight.Flight) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fl.Wait(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// heldHashes gives b's piece hashes one at a time, each when release
// says so, as a tracker does while its seeder reads the origin; released
// counts them, before each is given.
func heldHashes(b testBlob, release <-chan struct{}, released *atomic.Int64) PieceHashes {
	return func(ctx context.Context, got func(int, [20]byte)) error {
		for i, sum := range b.sums {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			released.Add(1)
			got(i, sum)
		}
		return nil
	}
}

// The seeder holds the whole blob, but its hashes come one by one: no
// piece is verified, served to the reader or relayed before its hash came,
// none is fetched before (it could not be checked), and the blob completes
// once the last hash did. Waiting for a hash longer than the stall timeout
// is no stall: the tracker's seeder is reading the origin for everyone.
func TestPiecesWaitForTheirHashes(t *testing.T) {
	const stall = 250 * time.Millisecond
	b := newBlob(t, 7, 2<<20) // 8 pieces of 256 KiB
	src := seeder(t, seederIP, b)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: stall})
	leecher.bootstrap = []netip.AddrPort{addr(src, seederIP)}
	release := make(chan struct{})
	var released atomic.Int64
	fl, done := downloadWith(t, leecher, leecherStore, b, heldHashes(b, release, &released), nil)
	if !fl.Acquire() {
		t.Fatal("flight over before the reader came")
	}
	defer fl.Release()

	pl, n := b.pieceLength(), len(b.sums)
	// Every step of the verified prefix, as a reader following it sees it.
	followed := make(chan error, 1)
	go func() {
		for v := int64(0); v < int64(len(b.data)); {
			next, err := fl.Progress(t.Context(), v)
			if err != nil {
				followed <- err
				return
			}
			if limit := released.Load() * pl; next > limit {
				followed <- fmt.Errorf("readers may have %d bytes with hashes known for %d", next, limit)
				return
			}
			v = next
		}
		followed <- nil
	}()
	for known := 0; ; known++ {
		// Time for the swarm to run ahead of the hashes, if it would
		// (the seeder sends the whole blob in a few milliseconds), and
		// for the stall timer to go off, if it would (the download has
		// no fill: a stall would end it).
		time.Sleep(stall + 100*time.Millisecond)
		complete := completePieces(leecher, b.digest)
		if ahead := slices.IndexFunc(complete, func(i int) bool { return i >= known }); ahead >= 0 {
			t.Fatalf("piece %d verified with only %d hashes known", complete[ahead], known)
		}
		if known == n {
			break
		}
		select {
		case release <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatalf("hash %d not taken: %v", known, failure(fl))
		}
		deadline := time.Now().Add(10 * time.Second)
		waitFor(t, fmt.Sprintf("piece %d after its hash", known), func() bool {
			if err := failure(fl); err != nil {
				t.Fatalf("download failed with %d of %d hashes known: %v", known+1, n, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("piece %d not verified 10 s after its hash came", known)
			}
			return slices.Contains(completePieces(leecher, b.digest), known)
		})
	}
	checkStreamed(t, fl, done, b)
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s, want %s", got, b.digest)
	}
	st := leecher.Stats()
	if st.Downloaded != int64(len(b.data)) {
		t.Errorf("received %d bytes for a %d-byte blob: pieces were fetched before they could be checked", st.Downloaded, len(b.data))
	}
	if len(st.Banned) != 0 {
		t.Errorf("the honest seeder was banned: %v", st.Banned)
	}
}

// hashesThenLost gives the first k of b's piece hashes, then says the
// tracker cannot be reached any more.
func hashesThenLost(b testBlob, k int) PieceHashes {
	return func(_ context.Context, got func(int, [20]byte)) error {
		for i, sum := range b.sums[:k] {
			got(i, sum)
		}
		return fmt.Errorf("%w: tracker unreachable", ErrHashesLost)
	}
}

// The tracker is gone after half the hashes (its seeder died mid-blob): the
// seeder's pieces with known hashes come from it, and after the stall the
// rest from the origin, each checked against the hash of the origin's own
// bytes. The blob's digest still judges: an origin sending wrong bytes then
// gets nothing stored.
func TestFillHashesTheOriginsPiecesOnceTheHashesStop(t *testing.T) {
	b := newBlob(t, 8, 4<<20) // 16 pieces of 256 KiB
	half := len(b.sums) / 2
	src := seeder(t, seederIP, b)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: 500 * time.Millisecond})
	leecher.bootstrap = []netip.AddrPort{addr(src, seederIP)}
	origin := &countingOrigin{data: b.data}

	fl, done := downloadWith(t, leecher, leecherStore, b, hashesThenLost(b, half), origin.read)
	if !fl.Acquire() {
		t.Fatal("flight over before the reader came")
	}
	checkStreamed(t, fl, done, b)
	fl.Release()
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s", got)
	}
	fromSeeder, fromOrigin := leecher.Stats().Downloaded, origin.sent.Load()
	t.Logf("from the seeder %d bytes, from the origin %d of %d", fromSeeder, fromOrigin, len(b.data))
	// A piece the fill has hashed may also be asked of the seeder while
	// the fill writes it (its hash is known from then on), so the seeder
	// may send a little more; the origin sends exactly the pieces whose
	// hashes never came.
	if want := int64(half) * b.pieceLength(); fromSeeder < want || fromOrigin != int64(len(b.data))-want {
		t.Errorf("the seeder sent %d bytes and the origin %d, want at least the pieces with hashes (%d bytes) from the seeder and exactly the rest from the origin",
			fromSeeder, fromOrigin, want)
	}

	// No seeder now, no hash at all, and an origin that lies.
	other, otherStore := newSwarm(t, otherIP, Config{StallTimeout: 200 * time.Millisecond})
	liar := &countingOrigin{data: b.data, corrupt: true}
	_, done = downloadWith(t, other, otherStore, b, hashesThenLost(b, 0), liar.read)
	if err := <-done; err == nil {
		t.Fatal("a blob filled with the wrong bytes was committed")
	}
	if liar.sent.Load() != int64(len(b.data)) {
		t.Fatalf("the origin sent %d bytes, want the whole blob: the test proves nothing", liar.sent.Load())
	}
	if _, err := otherStore.Stat(b.digest); err == nil {
		t.Fatal("a blob of the wrong bytes was stored")
	}
}

// errFailedBlob is the tracker's word that its seeder failed the blob.
var errFailedBlob = errors.New("origin's bytes do not match the digest")

// A tracker that says the blob failed ends the download at once: nothing
// stored, the origin not asked, the torrent gone.
func TestHashesThatFailTheBlobEndTheDownload(t *testing.T) {
	b := newBlob(t, 9, 2<<20)
	src := seeder(t, seederIP, b)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: time.Minute})
	leecher.bootstrap = []netip.AddrPort{addr(src, seederIP)}
	origin := &countingOrigin{data: b.data}
	failing := func(_ context.Context, got func(int, [20]byte)) error {
		got(0, b.sums[0])
		got(1, b.sums[1])
		return errFailedBlob
	}
	start := time.Now()
	_, done := downloadWith(t, leecher, leecherStore, b, failing, origin.read)
	if err := <-done; !errors.Is(err, errFailedBlob) {
		t.Fatalf("download of a failed blob: %v, want the tracker's error", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the download took %s to fail", took)
	}
	if origin.sent.Load() != 0 {
		t.Error("the origin was asked for pieces of a failed blob")
	}
	if _, err := leecherStore.Stat(b.digest); err == nil {
		t.Fatal("a failed blob was stored")
	}
	if n := len(leecher.Stats().Torrents); n != 0 {
		t.Fatalf("%d torrents left after a failed download", n)
	}
}
