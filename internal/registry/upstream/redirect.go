package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Where requests to registries may go.
//
// A configured endpoint is reached wherever its URL points: the operator
// named it. Everything else a registry (or a client, with any-registry)
// chooses is checked: redirects, token realms, and registries that are
// allowed without being named. Blob GETs follow redirects (registries
// send 307s to object storage); manifest and token requests follow only
// those that stay on the same scheme, host and port. No redirect leaves
// https for http. Credentials (Authorization) go only to the scheme, host
// and port they were given for; Go's client keeps them for the same host
// name on another port, and for a redirect from https to http.
//
// Connections the configuration does not name may not reach loopback,
// link-local or private addresses (cloud metadata services, the node's
// own ports, the internal network), unless AllowPrivateNetworks is set or
// the endpoint is itself configured at an address of that kind (an IP
// literal, or localhost: a registry on 127.0.0.1 may redirect to another
// port of 127.0.0.1). The address is checked when it is dialled, after
// name resolution, so a name that resolves to a public address when
// looked at and to a private one when connected to is still refused.

// ErrRedirectRefused is a redirect this policy does not follow.
var ErrRedirectRefused = errors.New("redirect refused")

// ErrAddressRefused is a connection to an address the policy does not
// allow for the request.
var ErrAddressRefused = errors.New("address refused")

// maxRedirects is what Go's default policy allows.
const maxRedirects = 10

// hop is what the client tells its transport and redirect policy about a
// request, through its context.
type hop struct {
	// endpoint is the URL credentials were given for.
	endpoint *url.URL
	// named: the configuration names the registry, so its endpoint is
	// reached wherever it points.
	named bool
	// blob requests follow redirects to other hosts.
	blob bool
	// private allows any address; otherwise kind is the one kind of
	// non-public address that unnamed connections may reach.
	private bool
	kind    addrKind
}

type hopKey struct{}

func withHop(ctx context.Context, h *hop) context.Context {
	return context.WithValue(ctx, hopKey{}, h)
}

func hopOf(ctx context.Context) *hop {
	h, _ := ctx.Value(hopKey{}).(*hop)
	return h
}

// origin is a URL's scheme, host and port, the default port spelled out.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func sameOrigin(a, b *url.URL) bool { return origin(a) == origin(b) }

// checkRedirect is the registry requests' redirect policy.
func checkRedirect(req *http.Request, via []*http.Request) error {
	h := hopOf(req.Context())
	return redirectPolicy(req, via, h != nil && h.blob)
}

// checkTokenRedirect is the token requests' redirect policy: same origin
// only, whatever request the token is for.
func checkTokenRedirect(req *http.Request, via []*http.Request) error {
	return redirectPolicy(req, via, false)
}

func redirectPolicy(req *http.Request, via []*http.Request, crossHost bool) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, maxRedirects)
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: %s leaves https", ErrRedirectRefused, req.URL.Redacted())
	}
	first := via[0].URL
	left := !sameOrigin(req.URL, first)
	for _, r := range via[1:] {
		left = left || !sameOrigin(r.URL, first)
	}
	if !left {
		return nil
	}
	if !crossHost {
		return fmt.Errorf("%w: %s is not %s, and only blob requests follow a redirect to another host", ErrRedirectRefused, req.URL.Redacted(), origin(first))
	}
	req.Header.Del("Authorization")
	return nil
}

// guard marks each request that is not to a named endpoint, so that its
// dial is checked (dialControl).
type guard struct{ base http.RoundTripper }

type restrictKey struct{}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	h := hopOf(req.Context())
	if h != nil && !h.private && !(h.named && sameOrigin(req.URL, h.endpoint)) {
		req = req.WithContext(context.WithValue(req.Context(), restrictKey{}, h.kind))
	}
	return g.base.RoundTrip(req)
}

// dialControl refuses a restricted connection to a non-public address of
// another kind than the endpoint's own. It runs on the address actually
// dialled; the dial's context carries the request's values.
func dialControl(ctx context.Context, _, address string, _ syscall.RawConn) error {
	allowed, restricted := ctx.Value(restrictKey{}).(addrKind)
	if !restricted {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAddressRefused, address, err)
	}
	k := kindOf(ap.Addr())
	if k == public || (k == allowed && k != other) {
		return nil
	}
	return fmt.Errorf("%w: %s is a %s address, which the configuration does not name (allow-private-networks)", ErrAddressRefused, ap.Addr(), k)
}

// addrKind sorts addresses by who may reach them.
type addrKind int

const (
	public addrKind = iota
	loopback
	linkLocal
	private
	other // multicast, broadcast and the like: never a registry
)

func (k addrKind) String() string {
	return [...]string{"public", "loopback", "link-local", "private", "non-unicast"}[k]
}

// sharedSpace is carrier-grade NAT space (RFC 6598): not public either.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

func kindOf(a netip.Addr) addrKind {
	a = a.Unmap()
	switch {
	// Connecting to 0.0.0.0 or :: reaches this host.
	case a.IsLoopback() || a.IsUnspecified():
		return loopback
	case a.IsLinkLocalUnicast():
		return linkLocal
	case a.IsPrivate() || sharedSpace.Contains(a):
		return private
	case !a.IsGlobalUnicast():
		return other
	}
	return public
}

// endpointKind is the kind of address an endpoint is configured at, when
// its URL says so without a lookup: an IP literal, or localhost.
func endpointKind(u *url.URL) addrKind {
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return loopback
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return kindOf(a)
	}
	return public
}
