package announce_test

import (
	"bytes"
	"context"
	"maps"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/tracker"
	"github.com/redis/go-redis/v9"

	"github.com/blobswarm/blobswarm/tracker/announce"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

func TestBadRequestsFailAndStoreNothing(t *testing.T) {
	valid := func() url.Values { return query(testIH, peerID(1), 6881, 100) }
	with := func(key, value string) string {
		q := valid()
		q.Set(key, value)
		return q.Encode()
	}
	without := func(key string) string {
		q := valid()
		q.Del(key)
		return q.Encode()
	}
	tests := []struct {
		name, rawQuery, reason string
	}{
		{"no query", "", "info_hash is missing"},
		{"missing info_hash", without("info_hash"), "info_hash is missing"},
		{"short info_hash", with("info_hash", string(testIH[:19])), "info_hash must be 20 bytes, got 19"},
		{"long info_hash", with("info_hash", string(testIH[:])+"x"), "info_hash must be 20 bytes, got 21"},
		{"hex info_hash", with("info_hash", strings.Repeat("ab", 20)), "info_hash must be 20 bytes, got 40"},
		{"bad escape", "info_hash=%zz&" + without("info_hash"), "malformed query"},
		{"semicolon", "foo=1;bar=2&" + valid().Encode(), "malformed query"},
		{"missing peer_id", without("peer_id"), "peer_id is missing"},
		{"short peer_id", with("peer_id", "-TT"), "peer_id must be 20 bytes"},
		{"missing port", without("port"), "port must be"},
		{"zero port", with("port", "0"), "port must be"},
		{"port too big", with("port", "65536"), "port must be"},
		{"word port", with("port", "http"), "port must be"},
		{"missing left", without("left"), "left is missing"},
		{"word left", with("left", "lots"), "left must be a byte count"},
		{"negative left", with("left", "-1"), "left must be a byte count"},
		{"word uploaded", with("uploaded", "x"), "uploaded must be a byte count"},
		{"word downloaded", with("downloaded", "1e6"), "downloaded must be a byte count"},
		{"unknown event", with("event", "paused"), `unknown event "paused"`},
		{"word numwant", with("numwant", "all"), "numwant must be a number"},
	}
	e := newEnv(t, announce.Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.get(t, tc.rawQuery)
			reason, _ := d["failure reason"].(string)
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("failure reason %q, want it to say %q", reason, tc.reason)
			}
			if _, ok := d["peers"]; ok {
				t.Errorf("failure answer lists peers: %v", d)
			}
		})
	}
	if n := e.store.writes.Load(); n != 0 {
		t.Errorf("bad requests made %d store writes", n)
	}
	if got := counter(t, e.reg, "blobswarm_tracker_announce_failures_total", "reason", "bad_request"); got != float64(len(tests)) {
		t.Errorf("bad_request failures counted %v, want %d", got, len(tests))
	}
}

// The answer is read back both byte by byte against BEP 23 and through
// anacrolix/torrent's own tracker client, the one the mirrors use.
func TestCompactAnswer(t *testing.T) {
	e := newEnv(t, announce.Config{})
	v4seeder := peerstore.Peer{ID: peerID(1), Addr: netip.MustParseAddrPort("10.0.0.1:1001")}
	v4leecher := peerstore.Peer{ID: peerID(2), Addr: netip.MustParseAddrPort("10.0.0.2:1002"), Left: 50}
	v6seeder := peerstore.Peer{ID: peerID(3), Addr: netip.MustParseAddrPort("[fd00::3]:1003")}
	e.seed(t, testIH, v4seeder, v4leecher, v6seeder)

	d := e.announceOK(t, query(testIH, peerID(9), 6881, 100))
	wantPeers := []byte{10, 0, 0, 1, 0x03, 0xe9, 10, 0, 0, 2, 0x03, 0xea} // seeder first
	if got := []byte(d["peers"].(string)); !bytes.Equal(got, wantPeers) {
		t.Errorf("peers = % x, want % x", got, wantPeers)
	}
	wantPeers6 := append(netip.MustParseAddr("fd00::3").AsSlice(), 0x03, 0xeb)
	if got := []byte(d["peers6"].(string)); !bytes.Equal(got, wantPeers6) {
		t.Errorf("peers6 = % x, want % x", got, wantPeers6)
	}
	for key, want := range map[string]int64{"interval": 5, "min interval": 5, "complete": 2, "incomplete": 2} {
		if got, _ := d[key].(int64); got != want {
			t.Errorf("%s = %v, want %d", key, d[key], want)
		}
	}

	res, err := tracker.Announce{
		TrackerUrl: e.url,
		Request: tracker.AnnounceRequest{
			InfoHash: testIH, PeerId: peerID(9), Port: 6881, Left: 0, NumWant: -1, Event: tracker.Completed,
		},
		Context: context.Background(),
	}.Do()
	if err != nil {
		t.Fatalf("anacrolix tracker client: %v", err)
	}
	got := make(map[netip.AddrPort]bool)
	for _, p := range res.Peers {
		ap, ok := p.ToNetipAddrPort()
		if !ok {
			t.Fatalf("client decoded an unusable peer %v", p)
		}
		got[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
	}
	want := map[netip.AddrPort]bool{v4seeder.Addr: true, v4leecher.Addr: true, v6seeder.Addr: true}
	if !maps.Equal(got, want) || len(res.Peers) != len(want) {
		t.Fatalf("client got peers %v, want %v", res.Peers, want)
	}
	if res.Seeders != 3 || res.Leechers != 1 || res.Interval != 5 {
		t.Errorf("client got %d seeders, %d leechers, interval %d; want 3, 1, 5", res.Seeders, res.Leechers, res.Interval)
	}
}

// decodePeers reads a compact IPv4 peer list.
func decodePeers(t *testing.T, d map[string]any) []netip.AddrPort {
	t.Helper()
	b := []byte(d["peers"].(string))
	if len(b)%6 != 0 {
		t.Fatalf("compact peers of %d bytes", len(b))
	}
	var out []netip.AddrPort
	for ; len(b) > 0; b = b[6:] {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])))
	}
	return out
}

func TestHandOutOrder(t *testing.T) {
	e := newEnv(t, announce.Config{})
	self := peerstore.Peer{ID: peerID(0), Addr: netip.MustParseAddrPort("127.0.0.1:6881"), Left: 1 << 30}
	// A stale entry of the requester under an id it used before.
	stale := peerstore.Peer{ID: peerID(99), Addr: self.Addr}
	seeders := map[netip.AddrPort]bool{}
	for i := range 3 {
		p := peerstore.Peer{ID: peerID(10 + i), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 7000)}
		seeders[p.Addr] = true
		e.seed(t, testIH, p)
	}
	var leechers []netip.AddrPort // by what they still need, least first
	for i := range 8 {
		p := peerstore.Peer{ID: peerID(20 + i), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(i)}), 7000), Left: 1 << (4 * i)}
		leechers = append(leechers, p.Addr)
		e.seed(t, testIH, p)
	}
	e.seed(t, testIH, stale, self)

	q := query(testIH, self.ID, self.Addr.Port(), self.Left)
	q.Set("numwant", "5")
	got := decodePeers(t, e.announceOK(t, q))
	if len(got) != 5 {
		t.Fatalf("handed out %d peers, want numwant 5: %v", len(got), got)
	}
	for i, ap := range got[:3] {
		if !seeders[ap] {
			t.Errorf("peer %d is %v, want the seeders first", i, ap)
		}
	}
	if got[3] != leechers[0] || got[4] != leechers[1] {
		t.Errorf("after the seeders came %v, want the two most complete leechers %v", got[3:], leechers[:2])
	}
	for _, ap := range got {
		if ap == self.Addr {
			t.Errorf("requester handed its own address")
		}
	}
}

func TestPeerCountCaps(t *testing.T) {
	e := newEnv(t, announce.Config{MaxPeers: 4})
	for i := range 10 {
		e.seed(t, testIH, peerstore.Peer{ID: peerID(10 + i), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 7000)})
	}
	for numwant, want := range map[string]int{"": 4, "-1": 4, "100": 4, "2": 2, "0": 0} {
		q := query(testIH, peerID(1), 6881, 1)
		if numwant != "" {
			q.Set("numwant", numwant)
		}
		d := e.announceOK(t, q)
		if got := len(decodePeers(t, d)); got != want {
			t.Errorf("numwant %q with MaxPeers 4: %d peers, want %d", numwant, got, want)
		}
		if d["complete"] != int64(10) || d["incomplete"] != int64(1) {
			t.Errorf("numwant %q: complete %v incomplete %v, want 10 and 1", numwant, d["complete"], d["incomplete"])
		}
	}
	if got := counter(t, e.reg, "blobswarm_tracker_peers_handed_out_total", "", ""); got != 4+4+4+2 {
		t.Errorf("peers handed out counted %v, want 14", got)
	}
}

func TestStoppedRemovesPeer(t *testing.T) {
	e := newEnv(t, announce.Config{})
	other := peerstore.Peer{ID: peerID(2), Addr: netip.MustParseAddrPort("10.0.0.2:7000")}
	e.seed(t, testIH, other)
	q := query(testIH, peerID(1), 6881, 10)
	q.Set("event", "started")
	e.announceOK(t, q)
	if s, l, _ := e.store.Counts(context.Background(), testIH); s != 1 || l != 1 {
		t.Fatalf("after started: %d seeders %d leechers, want 1 and 1", s, l)
	}

	q.Set("event", "stopped")
	d := e.announceOK(t, q)
	if got := decodePeers(t, d); len(got) != 0 {
		t.Errorf("a stopping peer was handed %v", got)
	}
	peers, err := e.store.Peers(context.Background(), testIH, 10, nil)
	if err != nil || len(peers) != 1 || peers[0] != other {
		t.Errorf("after stopped the swarm is %v (%v), want only %v", peers, err, other)
	}
	for event, want := range map[string]float64{"started": 1, "stopped": 1, "none": 0, "completed": 0} {
		if got := counter(t, e.reg, "blobswarm_tracker_announces_total", "event", event); got != want {
			t.Errorf("announces{event=%q} = %v, want %v", event, got, want)
		}
	}
}

func TestPeerFilterRefuses(t *testing.T) {
	tenOnly := netip.MustParsePrefix("10.0.0.0/8")
	e := newEnv(t, announce.Config{PeerFilter: tenOnly.Contains})
	d := e.get(t, query(testIH, peerID(1), 6881, 10).Encode())
	if d["failure reason"] != "peer address not allowed" {
		t.Errorf("announce from 127.0.0.1 answered %v, want a refusal", d)
	}
	if n := e.store.writes.Load(); n != 0 {
		t.Errorf("refused announce made %d store writes", n)
	}
	if got := counter(t, e.reg, "blobswarm_tracker_announce_failures_total", "reason", "refused"); got != 1 {
		t.Errorf("refusals counted %v, want 1", got)
	}
}

func TestIPParameter(t *testing.T) {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	tests := []struct {
		name    string
		trusted []netip.Prefix
		ip      string
		want    netip.Addr
	}{
		{"ignored from untrusted source", []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, "10.1.2.3", netip.MustParseAddr("127.0.0.1")},
		{"ignored by default", nil, "10.1.2.3", netip.MustParseAddr("127.0.0.1")},
		{"honoured from trusted source", []netip.Prefix{loopback}, "10.1.2.3", netip.MustParseAddr("10.1.2.3")},
		{"v4-mapped unmapped", []netip.Prefix{loopback}, "::ffff:10.1.2.3", netip.MustParseAddr("10.1.2.3")},
		{"DNS name ignored", []netip.Prefix{loopback}, "host.example", netip.MustParseAddr("127.0.0.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, announce.Config{TrustedSources: tc.trusted})
			q := query(testIH, peerID(1), 6881, 10)
			q.Set("ip", tc.ip)
			e.announceOK(t, q)
			peers, err := e.store.Peers(context.Background(), testIH, 10, nil)
			if err != nil || len(peers) != 1 {
				t.Fatalf("swarm %v (%v), want the one peer", peers, err)
			}
			if want := netip.AddrPortFrom(tc.want, 6881); peers[0].Addr != want {
				t.Errorf("stored address %v, want %v", peers[0].Addr, want)
			}
		})
	}
}

// With its store unreachable the tracker still answers like a tracker.
func TestStoreDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	e := newEnvWithStore(t, peerstore.NewRedis(client, peerstore.RedisOptions{}), announce.Config{})
	d := e.get(t, query(testIH, peerID(1), 6881, 10).Encode())
	if d["failure reason"] != "tracker storage unavailable" {
		t.Errorf("answer %v, want a storage failure", d)
	}
	if got := counter(t, e.reg, "blobswarm_tracker_announce_failures_total", "reason", "store"); got != 1 {
		t.Errorf("store failures counted %v, want 1", got)
	}
}
