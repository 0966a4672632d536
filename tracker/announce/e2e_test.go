package announce_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/blobswarm/blobswarm/tracker/announce"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// newTorrentClient starts a client that can only meet peers through a
// tracker: no DHT, no PEX, no uTP, listening on loopback.
func newTorrentClient(t *testing.T, dir string) *torrent.Client {
	t.Helper()
	store := storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: storage.NewMapPieceCompletion(),
	})
	cfg := torrent.NewDefaultClientConfig()
	cfg.SetListenAddr("127.0.0.1:0")
	cfg.DataDir = dir
	cfg.DefaultStorage = store
	cfg.Seed = true
	cfg.NoDHT = true
	cfg.DisablePEX = true
	cfg.DisableUTP = true
	cfg.DisableIPv6 = true
	cfg.DisableWebtorrent = true
	cfg.DisableWebseeds = true
	cfg.NoDefaultPortForwarding = true
	// The default 1 MiB stalls an uploader against a leecher's outstanding
	// requests (FIELD-NOTES).
	cfg.MaxAllocPeerRequestDataPerConn = 1024 * 16 << 10
	cfg.Slogger = slog.New(slog.DiscardHandler)
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatalf("torrent client: %v", err)
	}
	t.Cleanup(func() {
		cl.Close()
		store.Close()
	})
	return cl
}

func TestClientsMeetThroughTracker(t *testing.T) {
	e := newEnv(t, announce.Config{Interval: time.Second})
	// Room for the leecher's second announce, a minute after its first
	// (anacrolix's floor): on a loaded machine a first connection to the
	// seeder can fail, and the next chance to hear of it is that announce.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	data := make([]byte, 2<<20+777)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data) // never fails
	info := metainfo.Info{Name: "blob", PieceLength: 64 << 10, Length: int64(len(data))}
	if err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi := metainfo.MetaInfo{InfoBytes: infoBytes}
	ih := mi.HashInfoBytes()
	trackers := [][]string{{e.url}}

	seedDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(seedDir, info.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	seeder := newTorrentClient(t, seedDir)
	st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes})
	if err := st.VerifyData(); err != nil {
		t.Fatalf("seeder verifying its data: %v", err)
	}
	if missing := st.BytesMissing(); missing != 0 {
		t.Fatalf("seeder misses %d bytes of its own data", missing)
	}
	// The client announces again only a minute later, so the seeder must be
	// in the swarm before the leecher's first announce.
	st.AddTrackers(trackers)
	waitForCounts(ctx, t, e.store, ih, 1, 0)

	leechDir := t.TempDir()
	leecher := newTorrentClient(t, leechDir)
	lt, _ := leecher.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes})
	lt.AddTrackers(trackers)
	lt.DownloadAll()
	select {
	case <-lt.Complete().On():
	case <-ctx.Done():
		t.Fatalf("leecher stuck with %d of %d bytes missing", lt.BytesMissing(), len(data))
	}

	got, err := os.ReadFile(filepath.Join(leechDir, info.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("leecher's copy differs from the seeder's %d bytes", len(data))
	}
	if n := counter(t, e.reg, "blobswarm_tracker_peers_handed_out_total", "", ""); n < 1 {
		t.Errorf("tracker handed out %v peers, yet the leecher found the seeder", n)
	}
}

func waitForCounts(ctx context.Context, t *testing.T, s peerstore.Store, ih peerstore.InfoHash, seeders, leechers int) {
	t.Helper()
	for {
		gotS, gotL, err := s.Counts(ctx, ih)
		if err != nil {
			t.Fatal(err)
		}
		if gotS == seeders && gotL == leechers {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("swarm has %d seeders and %d leechers, want %d and %d", gotS, gotL, seeders, leechers)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
