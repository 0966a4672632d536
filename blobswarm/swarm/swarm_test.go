package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/superseed"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

// Each node gets its own loopback address, so peers can be told apart and
// banning one does not ban the others.
const (
	leecherIP = "127.0.0.1"
	seederIP  = "127.0.0.2"
	otherIP   = "127.0.0.3"
)

// testBlob is a blob with its torrent as the tracker hands it out
// (torrentmeta.ForBlob) and the real hashes of its pieces, which the
// tracker streams.
type testBlob struct {
	data      []byte
	digest    digest.Digest
	infoBytes []byte
	sums      [][20]byte
}

func newBlob(t testing.TB, seed uint64, size int) testBlob {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < size; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	d := digest.FromBytes(b)
	infoBytes, err := torrentmeta.ForBlob(d, int64(size))
	if err != nil {
		t.Fatal(err)
	}
	var sums [][20]byte
	h := torrentmeta.NewPieceHasher(torrentmeta.PieceLength(int64(size)), int64(size), func(_ int, sum [20]byte) { sums = append(sums, sum) })
	h.Write(b)
	return testBlob{b, d, infoBytes, sums}
}

// allHashes gives every piece hash of b at once, as the tracker does for
// a blob its seeder has whole.
func (b testBlob) allHashes() PieceHashes {
	return func(_ context.Context, got func(int, [20]byte)) error {
		for i, sum := range b.sums {
			got(i, sum)
		}
		return nil
	}
}

// pieceLength is the length of b's pieces but the last.
func (b testBlob) pieceLength() int64 { return torrentmeta.PieceLength(int64(len(b.data))) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newSwarm(t testing.TB, ip string, cfg Config) (*Swarm, *store.Store) {
	t.Helper()
	st := openStore(t)
	cfg.ListenAddr = net.JoinHostPort(ip, "0")
	s, err := New(cfg, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, st
}

func addr(s interface{ ListenPort() int }, ip string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(s.ListenPort()))
}

func putBlob(t testing.TB, st *store.Store, b testBlob) {
	t.Helper()
	p, err := st.NewPartial(b.digest)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write(b.data); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

// seeder starts a tracker's seeder at ip that seeds b from its store.
func seeder(t testing.TB, ip string, b testBlob) *superseed.Server {
	t.Helper()
	st := openStore(t)
	putBlob(t, st, b)
	s, err := superseed.New(superseed.Config{ListenAddr: net.JoinHostPort(ip, "0")}, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Seed(b.digest, b.infoBytes); err != nil {
		t.Fatal(err)
	}
	return s
}

func storedBytes(t testing.TB, st *store.Store, d digest.Digest) []byte {
	t.Helper()
	f, err := st.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// download runs the mirror's side of a swarm fetch, every piece hash known
// at once: a flight over a new partial, Download, then commit and seed on
// success (drop when the commit fails). It returns the download's error.
func download(t testing.TB, s *Swarm, st *store.Store, b testBlob) (*flight.Flight, <-chan error) {
	t.Helper()
	return downloadWith(t, s, st, b, b.allHashes(), nil)
}

// downloadWith is download with the piece hashes from hashes, and a source
// for the pieces the swarm does not deliver.
func downloadWith(t testing.TB, s *Swarm, st *store.Store, b testBlob, hashes PieceHashes, fill RangeSource) (*flight.Flight, <-chan error) {
	t.Helper()
	p, err := st.NewPartial(b.digest)
	if err != nil {
		t.Fatal(err)
	}
	fl := flight.New(-1)
	fl.Begin(p)
	done := make(chan error, 1)
	go func() {
		defer fl.Release()
		dl, err := s.Download(t.Context(), b.digest, b.infoBytes, nil, fl, hashes, fill)
		if err == nil {
			if err = fl.Commit(); err != nil {
				dl.Drop()
			}
		}
		if err != nil {
			fl.Abort()
			fl.Finish(err)
			done <- err
			return
		}
		fl.Finish(nil)
		done <- dl.Seed()
	}()
	return fl, done
}

// checkStreamed reads the blob from the flight as a client would and waits
// for the download: both must succeed and the bytes be the blob's.
func checkStreamed(t testing.TB, fl *flight.Flight, done <-chan error, b testBlob) {
	t.Helper()
	streamed, err := io.ReadAll(fl.NewReader(t.Context(), 0, int64(len(b.data))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(streamed, b.data) {
		t.Fatal("a reader saw bytes that are not the blob")
	}
}

// waitFor polls a condition that the swarm reaches on its own.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestDownloadStreamsCommitsAndSeeds(t *testing.T) {
	b := newBlob(t, 1, 5<<20) // 20 pieces of 256 KiB
	src := seeder(t, seederIP, b)
	// Past its 1 s burst the rate limit holds the leecher below half the
	// blob for a while: time enough to see where the first bytes came.
	leecher, leecherStore := newSwarm(t, leecherIP, Config{DownloadRate: 2 << 20})
	leecher.bootstrap = []netip.AddrPort{addr(src, seederIP)}

	fl, done := download(t, leecher, leecherStore, b)
	if !fl.Acquire() {
		t.Fatal("flight over before the reader came")
	}
	var streamed bytes.Buffer
	first := make([]byte, 1)
	r := fl.NewReader(t.Context(), 0, int64(len(b.data)))
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	// Pieces from the front come first, so the reader streams while the
	// rest of the blob arrives.
	st := leecher.Stats()
	if len(st.Torrents) != 1 || st.Torrents[0].Completed >= st.Torrents[0].Length/2 {
		t.Fatalf("reader got its first byte only once half the blob was in: %+v", st.Torrents)
	}
	streamed.Write(first)
	if _, err := io.Copy(&streamed, r); err != nil {
		t.Fatal(err)
	}
	fl.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(streamed.Bytes(), b.data) {
		t.Fatal("streamed bytes differ from the blob")
	}
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s, want %s", got, b.digest)
	}
	if fl.Acquire() {
		t.Fatal("the partial is still open after Seed")
	}
	// The seeder is the only peer, told apart by its peer ID.
	st = leecher.Stats()
	if st.Downloaded != int64(len(b.data)) || st.FromSeeders != st.Downloaded {
		t.Errorf("Downloaded = %d, FromSeeders = %d, want %d from the seeder", st.Downloaded, st.FromSeeders, len(b.data))
	}
	if got := src.Stats().Uploaded; got < int64(len(b.data)) {
		t.Errorf("seeder uploaded %d bytes, want at least %d", got, len(b.data))
	}

	// The partial's file is closed now; a third node can still get the
	// blob from the leecher alone, from its stored file.
	third, thirdStore := newSwarm(t, otherIP, Config{})
	third.bootstrap = []netip.AddrPort{addr(leecher, leecherIP)}
	uploaded := leecher.Stats().Uploaded
	_, done = download(t, third, thirdStore, b)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := third.Stats(); st.Downloaded != int64(len(b.data)) || st.FromSeeders != 0 {
		t.Errorf("third node got %d bytes, %d of them from seeders, want all %d from the leecher",
			st.Downloaded, st.FromSeeders, len(b.data))
	}
	if got := leecher.Stats().Uploaded - uploaded; got < int64(len(b.data)) {
		t.Errorf("the leecher uploaded %d bytes to the third node, want at least %d", got, len(b.data))
	}

	leecher.Drop(b.digest)
	if n := len(leecher.Stats().Torrents); n != 0 {
		t.Fatalf("%d torrents after Drop", n)
	}
}

// wrapped serves a stored blob through wrap's pieces.
type wrapped struct {
	*torrentstore.Blob
	wrap func(metainfo.Piece, storage.PieceImpl) storage.PieceImpl
}

func (w wrapped) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	ti, err := w.Blob.OpenTorrent(ctx, info, ih)
	if err != nil {
		return ti, err
	}
	piece := ti.Piece
	ti.Piece = func(p metainfo.Piece) storage.PieceImpl { return w.wrap(p, piece(p)) }
	ti.NewReader = nil // read through the pieces
	return ti, nil
}

// flipped serves a piece with every byte flipped.
type flipped struct{ storage.PieceImpl }

func (f flipped) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.PieceImpl.ReadAt(b, off)
	for i := range b[:n] {
		b[i] ^= 0xff
	}
	return n, err
}

// corruptPeer runs a plain client at ip whose storage lies about b.
func corruptPeer(t *testing.T, ip string, b testBlob) plainClient {
	t.Helper()
	return plainPeer(t, ip, b, func(blob *torrentstore.Blob) storage.ClientImpl {
		return wrapped{blob, func(_ metainfo.Piece, p storage.PieceImpl) storage.PieceImpl { return flipped{p} }}
	})
}

// plainClient is a peer that is not a Swarm: its own counters say what it
// sent.
type plainClient struct {
	addr netip.AddrPort
	cl   *torrent.Client
}

// uploaded counts the piece bytes it sent.
func (p plainClient) uploaded() int64 {
	st := p.cl.Stats()
	return st.BytesWrittenData.Int64()
}

// plainPeer runs a plain client at ip that offers b from the storage wrap
// makes of the stored blob.
func plainPeer(t *testing.T, ip string, b testBlob, wrap func(*torrentstore.Blob) storage.ClientImpl) plainClient {
	t.Helper()
	st := openStore(t)
	putBlob(t, st, b)
	blob, err := torrentstore.Stored(st, b.digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ListenAddr: net.JoinHostPort(ip, "0")}.withDefaults()
	cc, err := cfg.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cc.Slogger = testLogger(t)
	cl, err := torrent.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  metainfo.HashBytes(b.infoBytes),
		InfoBytes: b.infoBytes,
		Storage:   wrap(blob),
	})
	return plainClient{addr: netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(cl.LocalPort())), cl: cl}
}

func TestCorruptPeerIsBannedAndBlobStillCompletes(t *testing.T) {
	b := newBlob(t, 2, 2<<20)
	liar := corruptPeer(t, otherIP, b)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{})
	leecher.bootstrap = []netip.AddrPort{liar.addr}

	fl, done := download(t, leecher, leecherStore, b)
	if !fl.Acquire() {
		t.Fatal("flight over before the reader came")
	}
	defer fl.Release()
	// The liar is the only peer: its first bad piece gets it banned.
	waitFor(t, "the corrupt peer to be banned", func() bool {
		return slices.Contains(leecher.Stats().Banned, liar.addr.Addr())
	})
	honest := seeder(t, seederIP, b)
	if err := leecher.addPeers(b.digest, addr(honest, seederIP)); err != nil {
		t.Fatal(err)
	}
	checkStreamed(t, fl, done, b)
	if liar.uploaded() == 0 {
		t.Fatal("the corrupt peer never sent anything; the test proves nothing")
	}
	var stored []digest.Digest
	if err := leecherStore.Walk(func(d digest.Digest, _ int64) error {
		stored = append(stored, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0] != b.digest {
		t.Fatalf("store holds %v, want only %s", stored, b.digest)
	}
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s", got)
	}
}

func TestAllowListFiltersBothDirections(t *testing.T) {
	b := newBlob(t, 3, 1<<20)
	src := seeder(t, seederIP, b)
	// Something listening outside the allow-list, counting who dials it.
	outside, err := net.Listen("tcp", net.JoinHostPort(otherIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	dialed := make(chan struct{}, 100)
	go func() {
		for {
			c, err := outside.Accept()
			if err != nil {
				return
			}
			dialed <- struct{}{}
			c.Close()
		}
	}()
	leecher, leecherStore := newSwarm(t, leecherIP, Config{AllowedPeers: []netip.Prefix{
		netip.MustParsePrefix(leecherIP + "/32"),
		netip.MustParsePrefix(seederIP + "/32"),
	}})
	leecher.bootstrap = []netip.AddrPort{netip.MustParseAddrPort(outside.Addr().String()), addr(src, seederIP)}
	_, done := download(t, leecher, leecherStore, b)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(dialed) != 0 {
		t.Fatal("the leecher dialed a peer outside its allow-list")
	}

	// Incoming: the same BitTorrent handshake is answered from an allowed
	// address and refused from another.
	ih := metainfo.HashBytes(b.infoBytes)
	handshake := func(from string) error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.DialContext(t.Context(), "tcp", addr(leecher, leecherIP).String())
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = pp.Handshake(ctx, c, &ih, [20]byte{1}, pp.PeerExtensionBits{})
		return err
	}
	if err := handshake(seederIP); err != nil {
		t.Fatalf("handshake from an allowed address: %v", err)
	}
	if err := handshake(otherIP); err == nil {
		t.Fatal("handshake from outside the allow-list was answered")
	}
}

func TestAllowListLookup(t *testing.T) {
	a := allowList(Config{}.withDefaults().AllowedPeers)
	for ip, blocked := range map[string]bool{
		"10.1.2.3":         false,
		"172.31.255.255":   false,
		"172.32.0.1":       true,
		"192.168.7.7":      false,
		"127.0.0.9":        false,
		"::ffff:127.0.0.1": false,
		"::1":              false,
		"fd00::5":          false,
		"8.8.8.8":          true,
		"2001:db8::1":      true,
	} {
		if _, got := a.Lookup(net.ParseIP(ip)); got != blocked {
			t.Errorf("%s: blocked = %v, want %v", ip, got, blocked)
		}
	}
}

func TestDownloadGivesUp(t *testing.T) {
	b := newBlob(t, 4, 1<<20)
	s, st := newSwarm(t, leecherIP, Config{StallTimeout: 200 * time.Millisecond})

	_, done := download(t, s, st, b) // no peers at all
	if err := <-done; !errors.Is(err, ErrStalled) {
		t.Fatalf("download without peers: %v, want ErrStalled", err)
	}

	p, err := st.NewPartial(b.digest)
	if err != nil {
		t.Fatal(err)
	}
	fl := flight.New(-1)
	fl.Begin(p)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Download(ctx, b.digest, b.infoBytes, nil, fl, b.allHashes(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled download: %v", err)
	}
	// The failed download keeps nothing open: the caller's release is the
	// last.
	fl.Abort()
	fl.Release()
	if fl.Acquire() {
		t.Fatal("failed download still holds the flight")
	}
	if n := len(s.Stats().Torrents); n != 0 {
		t.Fatalf("%d torrents left after failed downloads", n)
	}

	if _, err := s.Download(t.Context(), b.digest, []byte("garbage"), nil, fl, b.allHashes(), nil); err == nil {
		t.Fatal("download with garbage info bytes started")
	}
}

// A blob larger than the library's default cap on unverified bytes
// (64 MiB) still comes from a super-seeder, which offers only two pieces
// at a time: with the cap, the library considered only the first 64 MiB
// of pieces in its order, those no peer had came first, and the offered
// ones were never asked for until the stall timer went off.
func TestBlobOverSixtyFourMiBComesFromASuperSeeder(t *testing.T) {
	b := newBlob(t, 5, 72<<20)
	src := seeder(t, seederIP, b)
	leecher, leecherStore := newSwarm(t, leecherIP, Config{StallTimeout: 5 * time.Second})
	leecher.bootstrap = []netip.AddrPort{addr(src, seederIP)}
	_, done := download(t, leecher, leecherStore, b)
	if err := <-done; err != nil {
		t.Fatalf("a %d MiB blob from a super-seeder: %v", len(b.data)>>20, err)
	}
	if got := digest.FromBytes(storedBytes(t, leecherStore, b.digest)); got != b.digest {
		t.Fatalf("stored blob hashes to %s, want %s", got, b.digest)
	}
	if got := leecher.Stats().FromSeeders; got != int64(len(b.data)) {
		t.Errorf("received %d bytes from the seeder, want %d", got, len(b.data))
	}
}

// A blob found in the store (a restarted node) is seeded under the torrent
// its digest and size make, the one the tracker hands out: nothing about
// it needs to be kept beside the store.
func TestSeedsAStoredBlobUnderItsTorrent(t *testing.T) {
	b := newBlob(t, 10, 1<<20)
	restarted, st := newSwarm(t, seederIP, Config{})
	putBlob(t, st, b)
	if err := restarted.Seed(b.digest, nil); err != nil {
		t.Fatal(err)
	}
	leecher, leecherStore := newSwarm(t, leecherIP, Config{})
	leecher.bootstrap = []netip.AddrPort{addr(restarted, seederIP)}
	_, done := download(t, leecher, leecherStore, b)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := leecher.Stats().Downloaded; got != int64(len(b.data)) {
		t.Errorf("received %d bytes from the restarted node, want %d", got, len(b.data))
	}

	empty := digest.FromBytes(nil)
	putBlob(t, st, testBlob{digest: empty})
	if err := restarted.Seed(empty, nil); !errors.Is(err, torrentmeta.ErrEmpty) {
		t.Fatalf("seeding an empty blob: %v, want ErrEmpty", err)
	}
}

// A tracker that answers an announce without end does not fill the node's
// memory: the library reads an answer whole, so the node hangs up after a
// megabyte.
func TestEndlessTrackerAnswerIsCutShort(t *testing.T) {
	const endless = 64 << 20
	wrote := make(chan int64, 1)
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("d"), 32<<10)
		var n int64
		for n < endless {
			k, err := w.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		select {
		case wrote <- n:
		default:
		}
	}))
	t.Cleanup(tracker.Close)
	b := newBlob(t, 9, 1<<20)
	s, st := newSwarm(t, leecherIP, Config{StallTimeout: time.Minute})
	p, err := st.NewPartial(b.digest)
	if err != nil {
		t.Fatal(err)
	}
	fl := flight.New(-1)
	fl.Begin(p)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Download(ctx, b.digest, b.infoBytes, []string{tracker.URL + "/announce"}, fl, b.allHashes(), nil)
	}()
	n := <-wrote
	cancel()
	<-done
	fl.Abort()
	fl.Release()
	if n >= endless {
		t.Fatalf("the node read all %d MiB of the tracker's answer", n>>20)
	}
}
