package announce

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// reflectedAnswer is the answer as anacrolix/torrent's bencode and krpc
// types encode it: the reference the hand-written encoding must match
// byte for byte, so that no client sees a different answer.
type reflectedAnswer struct {
	Interval    int32                     `bencode:"interval"`
	MinInterval int32                     `bencode:"min interval"`
	Complete    int                       `bencode:"complete"`
	Incomplete  int                       `bencode:"incomplete"`
	Peers       krpc.CompactIPv4NodeAddrs `bencode:"peers"`
	Peers6      krpc.CompactIPv6NodeAddrs `bencode:"peers6,omitempty"`
}

func reflected(a answer) reflectedAnswer {
	r := reflectedAnswer{Interval: a.interval, MinInterval: a.minInterval, Complete: a.complete, Incomplete: a.incomplete}
	for _, p := range a.peers {
		na := krpc.NodeAddr{IP: p.Addr.Addr().AsSlice(), Port: int(p.Addr.Port())}
		if p.Addr.Addr().Is4() {
			r.Peers = append(r.Peers, na)
		} else {
			r.Peers6 = append(r.Peers6, na)
		}
	}
	return r
}

// randomAddr is an IPv4, IPv4-mapped IPv6 or IPv6 address.
func randomAddr(r *rand.Rand) netip.Addr {
	var a [16]byte
	for i := range a {
		a[i] = byte(r.Uint32())
	}
	switch r.IntN(3) {
	case 0:
		return netip.AddrFrom4([4]byte(a[:4]))
	case 1:
		return netip.AddrFrom16(netip.AddrFrom4([4]byte(a[:4])).As16())
	default:
		return netip.AddrFrom16(a)
	}
}

func TestAnswerEncodesAsReflectedBencode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		a := answer{
			interval:    int32(r.IntN(4000)),
			minInterval: int32(r.IntN(4000)),
			complete:    r.IntN(3) * r.IntN(100000),
			incomplete:  r.IntN(3) * r.IntN(100000),
		}
		for range r.IntN(3) * r.IntN(60) {
			a.peers = append(a.peers, peerstore.Peer{Addr: netip.AddrPortFrom(randomAddr(r), uint16(r.Uint32()))})
		}
		want, err := bencode.Marshal(reflected(a))
		if err != nil {
			t.Fatal(err)
		}
		if got := a.appendBencode([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			var addrs []netip.AddrPort
			for _, p := range a.peers {
				addrs = append(addrs, p.Addr)
			}
			t.Fatalf("answer with peers %v encodes as\n%q, want\n%q", addrs, got, want)
		}
	}
}

func TestFailureEncodesAsReflectedBencode(t *testing.T) {
	for _, reason := range []string{"", "peer address not allowed", "info_hash must be 20 bytes, got 3\x00\xff"} {
		want, err := bencode.Marshal(struct {
			Reason string `bencode:"failure reason"`
		}{reason})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFailure(nil, reason); !bytes.Equal(got, want) {
			t.Errorf("failure %q encodes as %q, want %q", reason, got, want)
		}
	}
}
