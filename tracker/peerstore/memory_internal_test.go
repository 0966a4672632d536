package peerstore

import (
	"context"
	"math/rand/v2"
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

// Announces, seeder changes, removals and expiry in random order leave the
// store agreeing with a plain map of who is live.
func TestMemoryAgreesWithAModel(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := NewMemory(MemoryOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	ih := InfoHash{7}
	type live struct {
		peer    Peer
		expires time.Time
	}
	model := map[PeerID]live{}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 5000 {
		id := PeerID{byte(r.IntN(40))}
		switch op := r.IntN(10); {
		case op < 6:
			p := Peer{ID: id, Addr: netip.MustParseAddrPort("10.0.0.1:6881"), Left: int64(r.IntN(2))}
			ttl := time.Duration(1+r.IntN(20)) * time.Second
			if err := m.Announce(ctx, ih, p, ttl); err != nil {
				t.Fatal(err)
			}
			model[id] = live{p, now.Add(ttl)}
		case op < 7:
			if err := m.Remove(ctx, ih, id); err != nil {
				t.Fatal(err)
			}
			delete(model, id)
		default:
			now = now.Add(time.Duration(r.IntN(3)) * time.Second)
		}
		var seeders, leechers int
		for id, l := range model {
			switch {
			case !l.expires.After(now):
				delete(model, id)
			case l.peer.Seeder():
				seeders++
			default:
				leechers++
			}
		}
		s, l, err := m.Counts(ctx, ih)
		if err != nil {
			t.Fatal(err)
		}
		if s != seeders || l != leechers {
			t.Fatalf("step %d: Counts = %d seeders, %d leechers; want %d, %d", step, s, l, seeders, leechers)
		}
		all, err := m.Peers(ctx, ih, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(model) {
			t.Fatalf("step %d: Peers = %d peers, want %d", step, len(all), len(model))
		}
		for i, p := range all {
			if model[p.ID].peer != p {
				t.Fatalf("step %d: Peers returned %v, want %v", step, p, model[p.ID].peer)
			}
			if i > 0 && p.Seeder() && !all[i-1].Seeder() {
				t.Fatalf("step %d: a seeder after a leecher in %v", step, all)
			}
		}
	}
}
