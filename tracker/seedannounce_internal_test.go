package tracker

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

func peerID(prefix string) peerstore.PeerID {
	var id peerstore.PeerID
	copy(id[:], prefix+"0123456789abcdefghij")
	return id
}

// Only a mirror that has the whole blob lets the seeder step back: its own
// listing does not, and neither does a stranger that claims left=0.
func TestMirrorHasAllCountsOnlyCompleteMirrors(t *testing.T) {
	ctx := context.Background()
	store := peerstore.NewMemory(peerstore.MemoryOptions{})
	ih := metainfo.HashBytes([]byte("blob"))
	add := func(prefix string, port uint16, left int64) {
		t.Helper()
		p := peerstore.Peer{ID: peerID(prefix), Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), Left: left}
		if err := store.Announce(ctx, ih, p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		what   string
		prefix string
		left   int64
		want   bool
	}{
		{"the seeder itself", peerid.SeederPrefix, 0, false},
		{"a mirror still downloading", peerid.MirrorPrefix, 100, false},
		{"another client claiming every piece", "-GT0003-", 0, false},
		{"a mirror with every piece", peerid.MirrorPrefix, 0, true},
	}
	for i, s := range steps {
		add(s.prefix, uint16(6881+i), s.left)
		if got := mirrorHasAll(store, ih); got != s.want {
			t.Fatalf("after %s: mirrorHasAll = %v, want %v", s.what, got, s.want)
		}
	}
}
