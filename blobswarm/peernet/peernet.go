// Package peernet says who is who in a swarm: the peer-ID prefixes of
// blobswarm's two kinds of node, and the networks peers may come from.
package peernet

import (
	"net/netip"

	"golang.org/x/time/rate"
)

// Peer ID prefixes (BEP 20 style): mirrors count bytes from the tracker's
// seeder apart from bytes from other mirrors by them, since on one host
// every node may share an IP.
const (
	SeederPeerIDPrefix = "-BS01S0-"
	MirrorPeerIDPrefix = "-BS01M0-"
)

// DefaultAllowed are loopback and the private address ranges.
var DefaultAllowed = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
}

// ParseCIDRs parses a peer allow-list as given in configuration. An empty
// list gives nil, which users take as DefaultAllowed.
func ParseCIDRs(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Allowed reports whether a is in one of the networks, or in
// DefaultAllowed when none are given.
func Allowed(networks []netip.Prefix, a netip.Addr) bool {
	if len(networks) == 0 {
		networks = DefaultAllowed
	}
	a = a.Unmap()
	for _, p := range networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// UploadLimiter caps piece data sent to peers at bytesPerSecond, for
// mirrors and the seeder alike. Its burst is 5 ms of the rate, and at
// least largestRequest so that any request it accepts fits: a cap exists
// to keep the host's uplink queue short (a host whose uplink is full
// starves its own downloads, their acknowledgements stuck behind its
// uploads), and a burst of a second's worth, as before, let a capped
// mirror fill that queue anyway.
func UploadLimiter(bytesPerSecond int64, largestRequest int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bytesPerSecond), max(int(bytesPerSecond/200), largestRequest))
}
