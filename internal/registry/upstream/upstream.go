// Package upstream is the client for origin registries, the mirror's and
// the tracker's (its seeder and tag cache) alike: it maps a registry name
// as clients know it (docker.io, ghcr.io) to the URL it is reached at and
// performs the registry auth flows, so clients of the mirror never see a
// challenge. Auth is behind the Authorizer seam (auth.go): a new kind of
// upstream credential is a new Authorizer, or a case in the default one.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker/auth"
)

// Credentials for one upstream. Either a static bearer token, or a username
// and password used for basic auth or to obtain bearer tokens.
type Credentials struct {
	Username string
	Password string
	Token    string
}

// Endpoint is where a registry is reached and how to authenticate there.
type Endpoint struct {
	// Host is the registry's name as it appears in image references.
	Host string
	// URL is the base URL requests go to (scheme, host, optional path prefix).
	URL   *url.URL
	Creds Credentials
}

// Config describes the upstreams. Hosts without an entry are reached at
// https://HOST, except docker.io, whose API lives at registry-1.docker.io.
type Config struct {
	Endpoints map[string]Endpoint
	// Allow is the registries the client fetches from; nil allows the
	// hosts of Endpoints only.
	Allow *AllowList
	// AllowPrivateNetworks lets connections the configuration does not
	// name (redirects, token realms, registries allowed by any-registry)
	// reach loopback, link-local and private addresses (redirect.go).
	AllowPrivateNetworks bool
	// HTTP is the client for registry and token requests; nil is
	// HTTPClient's with a 30s timeout. Only a transport from HTTPClient
	// checks the addresses it dials.
	HTTP *http.Client
	// Auth answers registries' challenges; nil is NewAuthorizer(HTTP).
	Auth Authorizer
	// IdleTimeout gives up a blob body that sends nothing for this long
	// while it is read (ErrIdle), so a stalled upstream cannot hold a
	// fetch, its connection and its file for ever; 0 waits for ever.
	// HTTP's timeouts bound only connecting and the headers.
	IdleTimeout time.Duration
}

// Client talks to upstream registries.
type Client struct {
	cfg  Config
	http *http.Client
	// held are the scopes registries answered 429 for, until their
	// Retry-After.
	held holds
}

// defaultTimeout bounds connecting and response headers for a client
// configured without an HTTP client.
const defaultTimeout = 30 * time.Second

// New returns a client for the given upstreams. Whatever HTTP client it
// is given, requests follow the redirect and credential policy of
// redirect.go.
func New(cfg Config) *Client {
	if cfg.HTTP == nil {
		cfg.HTTP = HTTPClient(defaultTimeout, nil)
	}
	if cfg.Allow == nil {
		cfg.Allow = &AllowList{role: "client", named: map[string]bool{}}
		for h := range cfg.Endpoints {
			cfg.Allow.named[h] = true
		}
	}
	hc := *cfg.HTTP
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = guard{base: base}
	hc.CheckRedirect = checkRedirect
	if cfg.Auth == nil {
		cfg.Auth = NewAuthorizer(&hc)
	}
	return &Client{cfg: cfg, http: &hc}
}

// Check refuses a registry the client may not fetch from (a
// *DeniedError); callers check before they start anything for it.
func (c *Client) Check(host string) error { return c.cfg.Allow.Check(host) }

// Named reports whether the configuration names host.
func (c *Client) Named(host string) bool { return c.cfg.Allow.Named(host) }

// Registries lists the registries the configuration names, sorted.
func (c *Client) Registries() []string { return c.cfg.Allow.Hosts() }

// Endpoint returns where the registry host is reached.
func (c *Client) Endpoint(host string) Endpoint {
	if ep, ok := c.cfg.Endpoints[host]; ok {
		return ep
	}
	return DefaultEndpoint(host)
}

// DefaultEndpoint is where a registry with no configured URL is reached.
func DefaultEndpoint(host string) Endpoint {
	target := host
	if host == "docker.io" {
		target = "registry-1.docker.io"
	}
	return Endpoint{Host: host, URL: &url.URL{Scheme: "https", Host: target}}
}

// Error is an upstream that could not be reached or gave an unexpected
// answer; it names the upstream so a client's error message says where
// things broke.
type Error struct {
	Host   string
	URL    string
	Status int // 0 when the upstream was unreachable
	// RetryAfter is how long a 429 asked to wait.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("upstream %s (%s) unreachable: %v", e.Host, e.URL, e.Err)
	}
	return fmt.Sprintf("upstream %s (%s): %v", e.Host, e.URL, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Unreachable reports whether err means the upstream could not be reached
// at all (as opposed to answering with an error).
func Unreachable(err error) bool {
	var ue *Error
	return errors.As(err, &ue) && (ue.Status == 0 || ue.Status >= 500)
}

// Do sends a GET or HEAD for path (e.g. /v2/library/alpine/blobs/sha256:..,
// or /v2/library/alpine/tags/list?n=10 with a query) of repository repo on
// registry host, authenticating as the upstream asks.
// The caller closes the body of the returned response, whatever its status;
// a 429 comes back as an *Error wrapping ErrRateLimited instead, and holds
// the scope (see ratelimit.go).
func (c *Client) Do(ctx context.Context, method, host, repo, path string, header http.Header) (*http.Response, error) {
	if err := c.Check(host); err != nil {
		return nil, err
	}
	ep := c.Endpoint(host)
	u := *ep.URL
	path, u.RawQuery, _ = strings.Cut(path, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	scope := "repository:" + repo + ":pull"
	held := host + " " + scope
	if d, ok := c.held.left(held, time.Now()); ok {
		return nil, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusTooManyRequests, RetryAfter: d,
			Err: fmt.Errorf("%w: not asked again for %s", ErrRateLimited, d.Round(time.Second))}
	}
	// A 429 holds the scope: no request for it reaches the registry until
	// the Retry-After passed.
	limited := func(resp *http.Response, err error) (*http.Response, error) {
		if err != nil || resp.StatusCode != http.StatusTooManyRequests {
			return resp, err
		}
		d := retryAfter(resp.Header, time.Now())
		c.held.hold(held, time.Now(), d)
		drain(resp)
		return nil, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusTooManyRequests, RetryAfter: d, Err: ErrRateLimited}
	}
	h := &hop{
		endpoint: ep.URL,
		named:    c.Named(host),
		blob:     strings.HasPrefix(path, "/v2/"+repo+"/blobs/"),
		private:  c.cfg.AllowPrivateNetworks,
	}
	if h.named {
		h.kind = endpointKind(ep.URL)
	}
	ctx = withHop(ctx, h)

	send := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		c.cfg.Auth.Authorize(req, ep, scope)
		resp, err := c.http.Do(req)
		switch {
		case errors.Is(err, ErrRedirectRefused):
			// The upstream answered, with somewhere we do not go.
			return nil, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusBadGateway, Err: err}
		case err != nil:
			return nil, &Error{Host: host, URL: ep.URL.String(), Err: err}
		}
		return resp, nil
	}

	resp, err := send()
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return limited(resp, err)
	}
	// One challenge round per request: drop what we had, answer the
	// challenge, retry once. A second 401 goes to the caller.
	challenges := auth.ParseAuthHeader(resp.Header)
	drain(resp)
	if err := c.cfg.Auth.Answer(ctx, ep, scope, challenges); err != nil {
		return nil, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusUnauthorized, Err: err}
	}
	return limited(send())
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// HTTPClient bounds connecting and waiting for headers, never the body: a
// layer of gigabytes may take minutes and still be healthy. Its dialer
// checks the address of connections the configuration does not name
// (redirect.go); through an HTTP proxy, that is the proxy's address.
func HTTPClient(timeout time.Duration, roots *x509.CertPool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, ControlContext: dialControl}).DialContext
	t.ResponseHeaderTimeout = timeout
	t.TLSHandshakeTimeout = timeout
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}
