package tracker

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/superseed"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

func peerID(prefix string) peerstore.PeerID {
	var id peerstore.PeerID
	copy(id[:], prefix+"0123456789abcdefghij")
	return id
}

// Only a mirror that the seeder saw with the whole blob, and that is still
// listed with it, lets the seeder step back: its own listing does not, nor
// a stranger that claims left=0, nor a mirror's peer ID that announced
// left=0 without ever showing the seeder its pieces.
func TestMirrorHasAllCountsOnlyCompleteMirrors(t *testing.T) {
	ctx := context.Background()
	store := peerstore.NewMemory(peerstore.MemoryOptions{})
	ih := metainfo.HashBytes([]byte("blob"))
	add := func(id peerstore.PeerID, port uint16, left int64) {
		t.Helper()
		p := peerstore.Peer{ID: id, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), Left: left}
		if err := store.Announce(ctx, ih, p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	mirror, spoofer, stranger := peerID(peerid.MirrorPrefix), peerID(peerid.MirrorPrefix+"x"), peerID("-GT0003-")
	steps := []struct {
		what string
		id   peerstore.PeerID
		left int64
		seen []peerstore.PeerID
		want bool
	}{
		{"the seeder itself", peerID(peerid.SeederPrefix), 0, nil, false},
		{"a mirror still downloading", mirror, 100, []peerstore.PeerID{mirror}, false},
		{"another client claiming every piece", stranger, 0, []peerstore.PeerID{stranger}, false},
		{"a mirror's peer ID announcing every piece, never seen with them", spoofer, 0, []peerstore.PeerID{mirror}, false},
		{"a mirror seen with every piece", mirror, 0, []peerstore.PeerID{mirror}, true},
	}
	for i, s := range steps {
		add(s.id, uint16(6881+i), s.left)
		if got := mirrorHasAll(store, ih, s.seen); got != s.want {
			t.Fatalf("after %s: mirrorHasAll = %v, want %v", s.what, got, s.want)
		}
	}
}

// A blob seeded while it arrives is listed in its swarm at once, before
// any mirror announces, and withdrawn when it is dropped, so mirrors stop
// dialing a seeder that no longer has it.
func TestGrowingBlobIsListedUntilDropped(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := superseed.New(superseed.Config{ListenAddr: "127.0.0.1:0"}, st, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	peers := peerstore.NewMemory(peerstore.MemoryOptions{})
	a := &seedAnnouncer{Server: srv, peers: peers, ttl: time.Minute, log: log,
		self: peerstore.Peer{ID: srv.PeerID(), Addr: netip.MustParseAddrPort("127.0.0.1:6881")}}
	d := digest.FromString("a blob")
	info, err := torrentmeta.ForBlob(d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ih := metainfo.HashBytes(info)
	listed := func() bool {
		ps, err := peers.Peers(context.Background(), ih, 10, nil)
		return err == nil && len(ps) == 1 && ps[0].ID == srv.PeerID()
	}

	g, err := a.SeedGrowing(d, info, p)
	if err != nil {
		t.Fatal(err)
	}
	if !listed() {
		t.Fatal("the seeder of a blob arriving is not listed in its swarm")
	}
	g.Drop()
	if listed() {
		t.Fatal("the seeder of a dropped blob is still listed in its swarm")
	}
}
