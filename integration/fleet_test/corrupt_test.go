package fleet_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/anacrolix/torrent/tracker"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// liarIP is the corrupt peer's own loopback address. Peers are banned by
// IP, and every process of the fleet is on 127.0.0.1.
const liarIP = "127.0.0.66"

// TestCorruptPeer adds a peer that claims every piece of the image and
// serves each byte inverted. The mirrors drop it, get the image from the
// seeder and each other, store nothing corrupt, and no client ever sees a
// wrong byte.
func TestCorruptPeer(t *testing.T) {
	// A capped seeder makes the liar, who answers at once, worth asking.
	f := newFleet(t, fleetOptions{mirrors: fleetSize, trackerArgs: []string{"--upload-rate", strconv.Itoa(8 << 20)}})
	image := f.push(t, "team/app:1", imageLayers, 8<<20)
	liar := newLiar(t)
	for _, b := range image.Blobs() {
		info := awaitMetainfo(t, f, image, b.Digest)
		liar.seed(t, info, liarFile{path: harness.BlobPath(f.trackerData, b.Digest), invert: true})
		liar.announce(t, f.tracker, info)
	}

	liar.checkDropped(t, f, image, "the corrupt peer")
}

// checkDropped pulls the image through every mirror with the liar in the
// swarm and checks what a user would: every pull verified, every blob
// stored whole, no fallback to the origin, which sent each blob once, and
// the liar, who sent pieces, banned.
func (l *liar) checkDropped(t *testing.T, f *fleet, image testimage.Pushed, who string) {
	t.Helper()
	// pull.Image checks every blob against its digest: a wrong byte
	// streamed to a client fails the pull.
	checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
	defer logTraffic(t, f)
	checkOriginServed(t, f, image, 1)
	var banned float64
	for _, m := range f.mirrors {
		checkStored(t, m, image)
		if n := m.Metric(fallbacksMetric); n != 0 {
			t.Errorf("%s fell back to the origin %.0f times", m.name, n)
		}
		banned += m.Metric(bannedMetric)
		t.Logf("%s banned %.0f peers", m.name, m.Metric(bannedMetric))
	}
	stats := l.cl.Stats()
	sent := stats.BytesWrittenData.Int64()
	if sent == 0 {
		t.Fatalf("no mirror took a piece from %s; the test proves nothing", who)
	}
	t.Logf("%s sent %d bytes", who, sent)
	if banned == 0 {
		t.Errorf("%s sent bad pieces and no mirror banned it", who)
	}
}

// awaitMetainfo asks the tracker for blob d's torrent and follows its
// piece hashes to their end, which comes once the tracker's seeder has the
// whole blob checked and stored.
func awaitMetainfo(t *testing.T, f *fleet, image testimage.Pushed, d digest.Digest) []byte {
	t.Helper()
	registry, _, _ := strings.Cut(image.Ref, "/")
	ref := oci.Blob{Registry: registry, Repo: image.Repository, Digest: d}
	c := trackerclient.New([]string{f.tracker.URL()}, trackerclient.Options{Timeout: 30 * time.Second})
	info, err := c.Metainfo(t.Context(), ref)
	if err != nil {
		t.Fatalf("metainfo of %s: %v", d, err)
	}
	parsed, err := torrentmeta.Parse(info, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pieces(t.Context(), ref, 0, parsed.NumPieces(), func(int, [20]byte) {}); err != nil {
		t.Fatalf("piece hashes of %s: %v", d, err)
	}
	return info
}

// liar is a BitTorrent peer in the test process at liarIP.
type liar struct{ cl *torrent.Client }

func newLiar(t *testing.T) *liar {
	t.Helper()
	cc := torrent.NewDefaultClientConfig()
	cc.ListenHost = func(string) string { return liarIP }
	cc.ListenPort = 0
	cc.DisableIPv6 = true
	cc.DataDir = t.TempDir()
	// Peers come from our announce, and the mirrors speak plain TCP.
	cc.NoDHT = true
	cc.DisablePEX = true
	cc.DisableTrackers = true
	cc.DisableUTP = true
	cc.DisableWebtorrent = true
	cc.DisableWebseeds = true
	cc.NoDefaultPortForwarding = true
	cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: true}
	cc.Seed = true
	// The library's default allowance per connection stalls an uploader
	// after a few MiB (see the swarm package's client configuration).
	cc.MaxAllocPeerRequestDataPerConn = 64 << 20
	cc.Slogger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := torrent.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &liar{cl: cl}
}

// seed offers whatever the storage serves under the torrent info.
func (l *liar) seed(t *testing.T, info []byte, st storage.ClientImpl) {
	t.Helper()
	tor, _ := l.cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  metainfo.HashBytes(info),
		InfoBytes: info,
		Storage:   st,
	})
	select {
	case <-tor.GotInfo():
	default:
		t.Fatalf("the corrupt peer could not open its storage %+v", st)
	}
}

// announce tells the tracker, from liarIP, that the liar has the whole
// blob: the tracker hands it out among the first peers.
func (l *liar) announce(t *testing.T, tr *harness.Process, info []byte) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(liarIP)}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := tracker.Announce{
		TrackerUrl:  tr.URL() + api.AnnouncePath,
		DialContext: dialer.DialContext,
		Context:     ctx,
		Request: tracker.AnnounceRequest{
			InfoHash: metainfo.HashBytes(info),
			PeerId:   l.cl.PeerID(),
			Left:     0,
			Port:     uint16(l.cl.LocalPort()),
			Event:    tracker.Started,
			NumWant:  -1,
		},
	}.Do()
	if err != nil {
		t.Fatalf("announce the corrupt peer: %v", err)
	}
}

// liarFile is torrent storage that serves a blob's file, every byte
// inverted if invert is set, and claims to have every piece.
type liarFile struct {
	path   string
	invert bool
}

func (s liarFile) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return storage.TorrentImpl{}, err
	}
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			return liarPiece{io.NewSectionReader(f, p.Offset(), p.Length()), s.invert}
		},
		Close: f.Close,
	}, nil
}

type liarPiece struct {
	*io.SectionReader
	invert bool
}

func (p liarPiece) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.SectionReader.ReadAt(b, off)
	if p.invert {
		for i := range b[:n] {
			b[i] ^= 0xff
		}
	}
	return n, err
}

func (liarPiece) WriteAt([]byte, int64) (int, error) {
	return 0, errors.New("the lying peer never downloads")
}
func (liarPiece) MarkComplete() error    { return nil }
func (liarPiece) MarkNotComplete() error { return nil }
func (liarPiece) Completion() storage.Completion {
	return storage.Completion{Complete: true, Ok: true}
}
