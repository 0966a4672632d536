package peerstore

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// Swarms nobody reads again must still be freed once their peers expire.
func TestMemorySweepFreesAbandonedSwarms(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := NewMemory(MemoryOptions{SweepInterval: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	p := Peer{ID: PeerID{1}, Addr: netip.MustParseAddrPort("10.0.0.1:6881"), Left: 1}
	for i := range 100 {
		if err := m.Announce(ctx, InfoHash{byte(i)}, p, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.swarms); n != 100 {
		t.Fatalf("%d swarms held, want 100", n)
	}

	now = now.Add(2 * time.Minute)
	if err := m.Announce(ctx, InfoHash{200}, p, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(m.swarms); n != 1 {
		t.Fatalf("%d swarms held after the sweep, want only the live one", n)
	}
}
