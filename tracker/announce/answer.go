package announce

import (
	"strconv"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// answer is a successful announce answer.
//
// It is bencoded by hand rather than through anacrolix/torrent's bencode
// and krpc compact peer types: those reflect over every peer and allocate
// several times per peer, which cost a quarter of the tracker's CPU under
// load. anacrolix/torrent's HttpResponse would also always send "failure
// reason" (some clients treat its mere presence as a failure) and has no
// "min interval".
type answer struct {
	interval    int32 // seconds
	minInterval int32 // seconds
	complete    int
	incomplete  int
	// peers go out compact: the IPv4 ones in "peers" (BEP 23), the others
	// in "peers6" (BEP 7), which is left out when there are none.
	peers []peerstore.Peer
}

// appendBencode appends the answer as a bencoded dictionary, keys in the
// sorted order bencoding requires.
func (a answer) appendBencode(b []byte) []byte {
	v4 := 0
	for _, p := range a.peers {
		if p.Addr.Addr().Is4() {
			v4++
		}
	}
	v6 := len(a.peers) - v4
	b = append(b, 'd')
	b = appendInt(appendString(b, "complete"), int64(a.complete))
	b = appendInt(appendString(b, "incomplete"), int64(a.incomplete))
	b = appendInt(appendString(b, "interval"), int64(a.interval))
	b = appendInt(appendString(b, "min interval"), int64(a.minInterval))
	b = appendCompact(appendString(b, "peers"), a.peers, v4, true)
	if v6 > 0 {
		b = appendCompact(appendString(b, "peers6"), a.peers, v6, false)
	}
	return append(b, 'e')
}

// appendCompact appends, as one bencoded string, the n peers of peers
// whose address is (is4) or is not IPv4: each its address then its port,
// big-endian.
func appendCompact(b []byte, peers []peerstore.Peer, n int, is4 bool) []byte {
	size := 18
	if is4 {
		size = 6
	}
	b = append(strconv.AppendInt(b, int64(n*size), 10), ':')
	for _, p := range peers {
		ip := p.Addr.Addr()
		if ip.Is4() != is4 {
			continue
		}
		if is4 {
			a := ip.As4()
			b = append(b, a[:]...)
		} else {
			a := ip.As16()
			b = append(b, a[:]...)
		}
		b = append(b, byte(p.Addr.Port()>>8), byte(p.Addr.Port()))
	}
	return b
}

// appendFailure appends a failure answer: a dictionary of only the reason.
func appendFailure(b []byte, reason string) []byte {
	b = append(b, 'd')
	b = appendString(appendString(b, "failure reason"), reason)
	return append(b, 'e')
}

func appendString(b []byte, s string) []byte {
	b = append(strconv.AppendInt(b, int64(len(s)), 10), ':')
	return append(b, s...)
}

func appendInt(b []byte, n int64) []byte {
	b = append(b, 'i')
	return append(strconv.AppendInt(b, n, 10), 'e')
}
