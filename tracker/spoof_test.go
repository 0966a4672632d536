package tracker_test

import (
	"bufio"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/blobswarm/blobswarm/blobswarm/peerid"
)

// announceAs sends one announce for ih as peer id with left bytes to go, and
// returns the peers handed out.
func (e *env) announceAs(t *testing.T, ih metainfo.Hash, id string, port, left int) []netip.AddrPort {
	t.Helper()
	q := url.Values{
		"info_hash": {string(ih[:])}, "peer_id": {id}, "port": {strconv.Itoa(port)},
		"uploaded": {"0"}, "downloaded": {"0"}, "left": {strconv.Itoa(left)}, "compact": {"1"},
	}
	_, body := get(t, e.url+"/announce?"+q.Encode())
	var a struct {
		Failure string `bencode:"failure reason"`
		Peers   string `bencode:"peers"`
	}
	if err := bencode.Unmarshal(body, &a); err != nil || a.Failure != "" {
		t.Fatalf("announce as %q: %q (%v)", id, body, err)
	}
	var out []netip.AddrPort
	for p := []byte(a.Peers); len(p) >= 6; p = p[6:] {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[:4])), uint16(p[4])<<8|uint16(p[5])))
	}
	return out
}

// An announcer that takes the mirrors' peer-ID prefix and claims the whole
// blob (left=0), without ever showing the seeder a piece, does not make
// the seeder leave a newcomer to the fleet: the newcomer is offered pieces
// at once, not after the seeder's patience (3 s).
func TestSpoofedCompleteMirrorDoesNotSilenceTheSeeder(t *testing.T) {
	e := newEnv(t, time.Minute, nil)
	b, d := e.pushBlob(t, "app", 1000)
	resp, info := get(t, e.metainfoURL(e.origin.Host(), "app", d.String()))
	if resp.StatusCode != 200 {
		t.Fatalf("metainfo: HTTP %d %s", resp.StatusCode, info)
	}
	// The whole stream: the seeder holds every piece.
	if _, sums := get(t, e.piecesURL(e.origin.Host(), "app", d.String(), "0")); len(sums) == 0 {
		t.Fatal("no piece hashes")
	}
	ih := metainfo.HashBytes(info)

	e.announceAs(t, ih, peerid.MirrorPrefix+"spoofer00000", 7001, 0)
	peers := e.announceAs(t, ih, peerid.MirrorPrefix+"newcomer0000", 7002, len(b))
	if len(peers) == 0 {
		t.Fatal("the newcomer was handed no peer")
	}
	var (
		mu      sync.Mutex
		offered []netip.AddrPort
	)
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			if offersWithin(t, p, ih, 2*time.Second) {
				mu.Lock()
				offered = append(offered, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(offered) == 0 {
		t.Fatalf("none of the peers handed out (%v) offered the newcomer a piece within 2s", peers)
	}
}

// offersWithin dials a peer as a newcomer with nothing and reports whether
// it advertises a piece (a have message) within d.
func offersWithin(t *testing.T, to netip.AddrPort, ih metainfo.Hash, d time.Duration) bool {
	nc, err := net.DialTimeout("tcp", to.String(), time.Second)
	if err != nil {
		return false
	}
	defer nc.Close()
	var id [20]byte
	copy(id[:], peerid.MirrorPrefix+"newcomer0000")
	if _, err := pp.Handshake(t.Context(), nc, &ih, id, pp.PeerExtensionBits{}); err != nil {
		return false
	}
	nc.SetReadDeadline(time.Now().Add(d))
	dec := pp.Decoder{R: bufio.NewReader(nc), MaxLength: 1 << 20}
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			return false
		}
		if !m.Keepalive && m.Type == pp.Have {
			return true
		}
	}
}
