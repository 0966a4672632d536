package announce

import (
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/anacrolix/torrent/tracker"
)

var binaryIH = [20]byte{0xab, '+', ' ', '%', '&', '=', 0, 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4}

func TestParseAnnounce(t *testing.T) {
	pid := [20]byte([]byte("-lt2060-abcdefghijkl"))
	tests := []struct {
		name, raw string
		want      Request
	}{{
		name: "libtorrent escapes, + as space",
		raw:  "info_hash=%AB%2B+%25%26%3D%00%FF%124Vx%9A%BC%DE%F0%01%02%03%04&peer_id=-lt2060-abcdefghijkl&port=6881&uploaded=10&downloaded=20&left=0&event=completed&numwant=200&compact=1&no_peer_id=1",
		want: Request{InfoHash: binaryIH, PeerID: pid, Port: 6881, Uploaded: 10, Downloaded: 20, Event: tracker.Completed, NumWant: 200},
	}, {
		name: "optional fields absent, ip twice",
		raw:  "info_hash=%AB%2B%20%25%26%3D%00%FF%124Vx%9A%BC%DE%F0%01%02%03%04&peer_id=-lt2060-abcdefghijkl&port=1&left=5&ip=not-an-ip&ip=%3A%3Affff%3A10.0.0.1&ip=10.9.9.9",
		want: Request{InfoHash: binaryIH, PeerID: pid, Port: 1, Left: 5, NumWant: -1, IP: netip.MustParseAddr("10.0.0.1")},
	}, {
		name: "negative numwant means default",
		raw:  "info_hash=%AB%2B%20%25%26%3D%00%FF%124Vx%9A%BC%DE%F0%01%02%03%04&peer_id=-lt2060-abcdefghijkl&port=65535&left=1&event=stopped&numwant=-7",
		want: Request{InfoHash: binaryIH, PeerID: pid, Port: 65535, Left: 1, Event: tracker.Stopped, NumWant: -1},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnnounce(tc.raw)
			if err != nil {
				t.Fatalf("ParseAnnounce: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseAnnounce =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// encode writes r back as a query, the way a client would send it.
func encode(r Request) string {
	q := url.Values{
		"info_hash":  {string(r.InfoHash[:])},
		"peer_id":    {string(r.PeerID[:])},
		"port":       {strconv.Itoa(int(r.Port))},
		"uploaded":   {strconv.FormatInt(r.Uploaded, 10)},
		"downloaded": {strconv.FormatInt(r.Downloaded, 10)},
		"left":       {strconv.FormatInt(r.Left, 10)},
		"numwant":    {strconv.Itoa(r.NumWant)},
	}
	if r.Event != tracker.None {
		q.Set("event", r.Event.String())
	}
	if r.IP.IsValid() {
		q.Set("ip", r.IP.String())
	}
	return q.Encode()
}

// Whatever the parser accepts is a usable announce, and survives being sent
// again.
func FuzzParseAnnounce(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := ParseAnnounce(raw)
		if err != nil {
			return
		}
		if r.Port == 0 || r.Left < 0 || r.Uploaded < 0 || r.Downloaded < 0 || r.NumWant < -1 {
			t.Fatalf("ParseAnnounce(%q) accepted %+v", raw, r)
		}
		if r.IP.Is4In6() {
			t.Fatalf("ParseAnnounce(%q) kept a v4-mapped ip %v", raw, r.IP)
		}
		again, err := ParseAnnounce(encode(r))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", r, err)
		}
		if again != r {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", r, again)
		}
	})
}
