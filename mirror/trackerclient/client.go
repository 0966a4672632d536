// Package trackerclient is the mirror's side of the tracker API: torrents
// for blob digests and coalesced tag resolution, spread over the tracker
// replicas a mirror is configured with.
package trackerclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/mirror/upstream"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// ErrUnavailable means no tracker replica answered; the mirror falls back
// to the origin.
var ErrUnavailable = errors.New("no tracker reachable")

// Client talks to one or more tracker replicas, preferring the last one
// that answered.
type Client struct {
	urls   []string
	http   *http.Client
	secret string

	mu        sync.Mutex
	preferred int
}

// Options tune a Client.
type Options struct {
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// Roots, when set, are the authorities trusted for https trackers.
	Roots *x509.CertPool
	// Secret is the fleet's shared secret, sent with every request and
	// put in announce URLs; empty when the tracker has none.
	Secret string
}

// New returns a client for the given tracker base URLs.
func New(urls []string, opt Options) *Client {
	trimmed := make([]string, len(urls))
	for i, u := range urls {
		trimmed[i] = strings.TrimSuffix(u, "/")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Trackers are in the same datacenter: a replica that does not accept a
	// connection within this is down, and the next one (or the origin)
	// should not wait on it.
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	if opt.Roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: opt.Roots, MinVersion: tls.VersionTLS12}
	}
	return &Client{urls: trimmed, http: &http.Client{Timeout: opt.Timeout, Transport: t}, secret: opt.Secret}
}

const dialTimeout = 2 * time.Second

// AnnounceURLs are the trackers' announce endpoints, for torrents.
func (c *Client) AnnounceURLs() []string {
	out := make([]string, len(c.urls))
	for i, u := range c.urls {
		out[i] = u + api.AnnouncePath
		if c.secret != "" {
			// BitTorrent clients keep an announce URL's query and add
			// their parameters after it, as private trackers' passkeys.
			out[i] += "?" + url.Values{api.SecretParam: {c.secret}}.Encode()
		}
	}
	return out
}

// Metainfo returns the torrent info bytes for a blob and the seeder's peer
// address. While the tracker's seeder is still fetching the blob from the
// origin it answers 202, and Metainfo waits as told by Retry-After until
// ctx ends.
func (c *Client) Metainfo(ctx context.Context, registry, repo string, d digest.Digest) ([]byte, string, error) {
	q := url.Values{"registry": {registry}, "repo": {repo}, "digest": {d.String()}}
	for {
		resp, err := c.get(ctx, api.MetainfoPath+"?"+q.Encode(), nil)
		if err != nil {
			return nil, "", err
		}
		if resp.StatusCode == http.StatusAccepted {
			resp.Body.Close()
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return nil, "", fmt.Errorf("waiting for the tracker's seeder to fetch %s: %w", d, ctx.Err())
			case <-time.After(wait):
			}
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, "", trackerError(resp)
		}
		info, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, "", fmt.Errorf("read metainfo of %s: %w", d, err)
		}
		return info, resp.Header.Get(api.SeederHeader), nil
	}
}

// Manifest resolves a tag through the tracker's coalescing cache.
func (c *Client) Manifest(ctx context.Context, registry, repo, tag string, accept []string) ([]byte, string, error) {
	q := url.Values{"registry": {registry}, "repo": {repo}, "tag": {tag}}
	h := http.Header{}
	for _, a := range accept {
		h.Add("Accept", a)
	}
	resp, err := c.get(ctx, api.ManifestPath+"?"+q.Encode(), h)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", trackerError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, upstream.MaxManifestSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read manifest from tracker: %w", err)
	}
	if len(data) > upstream.MaxManifestSize {
		return nil, "", errors.New("tracker sent a manifest larger than 4 MiB")
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// get tries the replicas in turn, starting with the one that answered last.
func (c *Client) get(ctx context.Context, pathQuery string, h http.Header) (*http.Response, error) {
	c.mu.Lock()
	first := c.preferred
	c.mu.Unlock()
	var errs []error
	for i := range c.urls {
		n := (first + i) % len(c.urls)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.urls[n]+pathQuery, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
		if c.secret != "" {
			req.Header.Set("Authorization", "Bearer "+c.secret)
		}
		resp, err := c.http.Do(req)
		refused := err == nil && resp.StatusCode == http.StatusUnauthorized
		if err == nil && resp.StatusCode < 500 && !refused {
			c.mu.Lock()
			c.preferred = n
			c.mu.Unlock()
			return resp, nil
		}
		switch {
		case refused:
			// A tracker that refuses this mirror is as good as down
			// for it: the origin serves instead.
			resp.Body.Close()
			err = fmt.Errorf("HTTP %d: refused; does tracker-secret-file hold the fleet's secret?", resp.StatusCode)
		case err == nil:
			resp.Body.Close()
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[n], err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// trackerError turns a tracker's OCI error body back into an error that
// keeps the code, so the mirror answers its client with the same one.
func trackerError(resp *http.Response) error {
	// errcode.Errors decodes the whole {"errors": [...]} body, and turns
	// an error whose message is its code's default into a bare ErrorCode.
	var errs errcode.Errors
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&errs); err == nil && len(errs) > 0 {
		switch e := errs[0].(type) {
		case errcode.Error:
			return e
		case errcode.ErrorCode:
			return e.WithMessage(e.Message())
		}
	}
	return fmt.Errorf("tracker answered HTTP %d", resp.StatusCode)
}
