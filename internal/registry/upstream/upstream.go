// Package upstream is the mirror's client for origin registries: it maps a
// registry name as clients know it (docker.io, ghcr.io) to the URL it is
// reached at, and performs the registry auth flows (bearer token, basic) so
// clients of the mirror never see a challenge.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
	// HTTP is the client for registry and token requests.
	HTTP *http.Client
}

// Client talks to upstream registries.
type Client struct {
	cfg Config

	mu     sync.Mutex
	tokens map[tokenKey]token
	// basic remembers registries that answered with a Basic challenge so
	// later requests send credentials up front.
	basic map[string]bool
}

type tokenKey struct{ host, scope string }

type token struct {
	value   string
	expires time.Time
}

// New returns a client for the given upstreams.
func New(cfg Config) *Client {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	return &Client{cfg: cfg, tokens: map[tokenKey]token{}, basic: map[string]bool{}}
}

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
	Err    error
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

// Do sends a GET or HEAD for path (e.g. /v2/library/alpine/blobs/sha256:..)
// of repository repo on registry host, authenticating as the upstream asks.
// The caller closes the body of the returned response, whatever its status.
func (c *Client) Do(ctx context.Context, method, host, repo, path string, header http.Header) (*http.Response, error) {
	ep := c.Endpoint(host)
	u := *ep.URL
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	scope := "repository:" + repo + ":pull"

	send := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		c.authorize(req, ep, scope)
		resp, err := c.cfg.HTTP.Do(req)
		if err != nil {
			return nil, &Error{Host: host, URL: ep.URL.String(), Err: err}
		}
		return resp, nil
	}

	resp, err := send()
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// One challenge round per request: drop what we had, answer the
	// challenge, retry once. A second 401 goes to the caller.
	challenges := auth.ParseAuthHeader(resp.Header)
	drain(resp)
	if err := c.answer(ctx, ep, scope, challenges); err != nil {
		return nil, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusUnauthorized, Err: err}
	}
	return send()
}

func (c *Client) authorize(req *http.Request, ep Endpoint, scope string) {
	if ep.Creds.Token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.Creds.Token)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[tokenKey{ep.Host, scope}]; ok && time.Now().Before(t.expires) {
		req.Header.Set("Authorization", "Bearer "+t.value)
		return
	}
	if c.basic[ep.Host] && ep.Creds.Username != "" {
		req.SetBasicAuth(ep.Creds.Username, ep.Creds.Password)
	}
}

func (c *Client) answer(ctx context.Context, ep Endpoint, scope string, challenges []auth.Challenge) error {
	c.mu.Lock()
	delete(c.tokens, tokenKey{ep.Host, scope})
	c.mu.Unlock()
	for _, ch := range challenges {
		switch ch.Scheme {
		case auth.BearerAuth:
			if ep.Creds.Token != "" {
				return errors.New("configured token was refused")
			}
			return c.fetchToken(ctx, ep, scope, ch)
		case auth.BasicAuth:
			if ep.Creds.Username == "" {
				return errors.New("registry requires credentials and none are configured")
			}
			c.mu.Lock()
			already := c.basic[ep.Host]
			c.basic[ep.Host] = true
			c.mu.Unlock()
			if already {
				return errors.New("configured credentials were refused")
			}
			return nil
		}
	}
	return errors.New("registry answered 401 without a supported challenge")
}

// defaultTokenLife is what the distribution spec says to assume when a
// token response carries no expires_in.
const defaultTokenLife = 60 * time.Second

func (c *Client) fetchToken(ctx context.Context, ep Endpoint, scope string, ch auth.Challenge) error {
	opts, err := auth.GenerateTokenOptions(ctx, ep.Host, ep.Creds.Username, ep.Creds.Password, ch)
	if err != nil {
		return fmt.Errorf("token challenge: %w", err)
	}
	// The challenge names the scope of the request that failed; ask for the
	// repository's pull scope so one token serves all of its requests.
	opts.Scopes = []string{scope}
	// A token's life counts from before we asked, on our clock. The
	// response's issued_at has whole seconds from another clock: with a
	// short expires_in it can date a fresh token's expiry before now, and
	// the retry would go out without it.
	requested := time.Now()
	tr, err := auth.FetchToken(ctx, c.cfg.HTTP, nil, opts)
	if err != nil {
		return fmt.Errorf("fetch token from %s: %w", opts.Realm, err)
	}
	life := time.Duration(tr.ExpiresInSeconds) * time.Second
	if life <= 0 {
		life = defaultTokenLife
	}
	// Renew a little early so a request never leaves with a token that
	// expires on the way.
	expires := requested.Add(life - life/10)
	c.mu.Lock()
	c.tokens[tokenKey{ep.Host, scope}] = token{value: tr.Token, expires: expires}
	c.mu.Unlock()
	slog.Debug("upstream token obtained", "upstream", ep.Host, "scope", scope, "expires", expires)
	return nil
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// HTTPClient bounds connecting and waiting for headers, never the body: a
// layer of gigabytes may take minutes and still be healthy.
func HTTPClient(timeout time.Duration, roots *x509.CertPool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = timeout
	t.TLSHandshakeTimeout = timeout
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}
