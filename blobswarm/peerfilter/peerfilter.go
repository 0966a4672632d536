// Package peerfilter says which networks peers may come from, for the
// mirrors' BitTorrent client, the seeder and the tracker's announces.
package peerfilter

import "net/netip"

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
