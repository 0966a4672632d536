// Package client is the mirror's side of the tracker API (tracker/api): torrents
// for blob digests and coalesced tag resolution, spread over the tracker
// replicas a mirror is configured with.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// ErrUnavailable means no tracker replica answered; the mirror falls back
// to the origin.
var ErrUnavailable = errors.New("no tracker reachable")

// Client talks to one or more tracker replicas, preferring the last one
// that answered.
type Client struct {
	urls []string
	http *http.Client
	// streams has no overall timeout, for answers that follow a blob.
	streams *http.Client
	// keys are the fleet's secret's; nil without one.
	keys *api.Keys

	mu        sync.Mutex
	preferred int
}

// Options tune a Client.
type Options struct {
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// Roots, when set, are the authorities trusted for https trackers.
	Roots *x509.CertPool
	// Secret is the fleet's shared secret; empty when the tracker has
	// none. It is never sent: requests carry credentials made from it
	// (api.Keys), and the tracker's metainfo, tag and piece-hash answers
	// must be signed with a key made from it.
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
	return &Client{urls: trimmed, keys: api.NewKeys(opt.Secret),
		http: &http.Client{Timeout: opt.Timeout, Transport: t},
		// A stream lasts as long as its blob takes to arrive; the
		// transport's dial timeout still finds a dead replica fast.
		streams: &http.Client{Transport: t}}
}

const dialTimeout = 2 * time.Second

// AnnounceURLs are the trackers' announce endpoints, for torrents. They
// hold no credential (AuthorizeAnnounce adds it), so they may be logged.
func (c *Client) AnnounceURLs() []string {
	out := make([]string, len(c.urls))
	for i, u := range c.urls {
		out[i] = u + api.AnnouncePath
	}
	return out
}

// AuthorizeAnnounce adds the fleet's announce credential to an announce
// (anacrolix's ClientConfig.HttpRequestDirector): in a header, since an
// announce URL is what BitTorrent clients log when an announce fails. It
// cannot tell the tracker by the request's host, which anacrolix has
// already replaced with the address it resolved; it needs not, since a
// mirror's torrents announce to AnnounceURLs only.
func (c *Client) AuthorizeAnnounce(req *http.Request) error {
	if c.keys != nil {
		req.Header.Set(api.AnnounceHeader, c.keys.AnnounceToken())
	}
	return nil
}

// Metainfo returns the torrent info bytes for a blob. While the tracker's
// seeder is still fetching the blob from the origin it answers 202, and
// Metainfo waits as told by Retry-After until ctx ends.
func (c *Client) Metainfo(ctx context.Context, b oci.Blob) ([]byte, error) {
	pathQuery := api.MetainfoPath + "?" + api.BlobQuery(b).Encode()
	for {
		resp, err := c.get(ctx, pathQuery, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusAccepted {
			resp.Body.Close()
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for the tracker's seeder to fetch %s: %w", b.Digest, ctx.Err())
			case <-time.After(api.RetryAfter(resp.Header)):
			}
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, answerError(resp, b.Registry)
		}
		info, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxMetainfoSize))
		if err != nil {
			return nil, fmt.Errorf("read metainfo of %s: %w", b.Digest, err)
		}
		return info, nil
	}
}

// Pieces follows the SHA-1 of each piece of blob b's torrent (n pieces)
// from piece from on, calling got for each in order as the tracker's
// seeder computes them. It returns nil once all n are known, the
// tracker's error when its seeder failed the blob (for example, the
// origin's bytes did not match the digest), or ctx's error. A stream that
// breaks is asked again, on any replica, without waiting: the blob is
// arriving, and every piece a mirror lacks a hash for is one it can
// neither use nor relay.
//
// With the fleet's secret, nil also says the tracker signed every hash
// given: a broken stream is asked again from where it began, so that one
// signature covers the hashes given before the break, which must come
// again the same. A stream whose signature does not verify ends the follow
// with an error wrapping ErrUnavailable and ErrUnsigned.
func (c *Client) Pieces(ctx context.Context, b oci.Blob, from, n int, got func(i int, sum [20]byte)) error {
	var broken error
	if from >= n {
		return nil
	}
	given := make([][api.PieceHashSize]byte, 0, n-from)
	for start := from; ; {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), broken)
		}
		resp, err := c.stream(ctx, api.PiecesPath+"?"+api.PiecesQuery(b, start).Encode())
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			err := answerError(resp, b.Registry)
			resp.Body.Close()
			return err
		}
		before := len(given)
		var sum [api.PieceHashSize]byte
		sent := sha256.New()
		i := start
		for ; i < n; i++ {
			if _, err := io.ReadFull(resp.Body, sum[:]); err != nil {
				broken = fmt.Errorf("piece hashes of %s from %d: %w", b.Digest, i, err)
				break
			}
			sent.Write(sum[:])
			if k := i - from; k < len(given) {
				if given[k] != sum {
					resp.Body.Close()
					return fmt.Errorf("%w: piece %d of %s came again with another hash: %w", ErrUnavailable, i, b.Digest, ErrUnsigned)
				}
				continue
			}
			given = append(given, sum)
			got(i, sum)
		}
		if i == n && c.keys != nil {
			// The trailer comes after the body's end.
			_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1))
			if err != nil || !c.keys.VerifyTrailer(resp.Request, resp, sent.Sum(nil)) {
				resp.Body.Close()
				return fmt.Errorf("%w: piece hashes of %s: %w", ErrUnavailable, b.Digest, ErrUnsigned)
			}
		}
		resp.Body.Close()
		if i == n {
			return nil
		}
		if c.keys == nil {
			start = i
		}
		if len(given) == before {
			// Not a hash more: do not spin on a replica that answers 200
			// and nothing.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// answerError is the error of a tracker's answer other than 200. A 429 is
// the registry's rate limit, which the tracker holds for the fleet: it
// keeps the Retry-After, and counts as the registry's (upstream.RateLimited),
// so the mirror tells its client to come back then instead of asking the
// registry itself.
func answerError(resp *http.Response, registry string) error {
	err := api.DecodeError(resp)
	if resp.StatusCode != http.StatusTooManyRequests {
		return err
	}
	return &upstream.Error{Host: registry, URL: "through the tracker", Status: http.StatusTooManyRequests,
		RetryAfter: api.RetryAfter(resp.Header), Err: fmt.Errorf("%w: %w", upstream.ErrRateLimited, err)}
}

// Manifest resolves a tag through the tracker's coalescing cache.
func (c *Client) Manifest(ctx context.Context, registry, repo, tag string, accept []string) (oci.Manifest, error) {
	h := http.Header{}
	for _, a := range accept {
		h.Add("Accept", a)
	}
	resp, err := c.get(ctx, api.ManifestPath+"?"+api.TagQuery(registry, repo, tag).Encode(), h)
	if err != nil {
		return oci.Manifest{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return oci.Manifest{}, answerError(resp, registry)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return oci.Manifest{}, fmt.Errorf("read manifest from tracker: %w", err)
	}
	if len(data) > oci.MaxManifestSize {
		return oci.Manifest{}, errors.New("tracker sent a manifest larger than 4 MiB")
	}
	return oci.NewManifest(resp.Header.Get("Content-Type"), data), nil
}

// get tries the replicas in turn, starting with the one that answered last.
// With the fleet's secret, an answer counts only if the tracker signed it
// for this request: one that does not verify is a failed replica.
func (c *Client) get(ctx context.Context, pathQuery string, h http.Header) (*http.Response, error) {
	return c.do(ctx, c.http, pathQuery, h, c.keys != nil)
}

// Signed says whether the tracker's answers are checked against the
// fleet's key; without a secret, nothing a tracker sends is authenticated.
func (c *Client) Signed() bool { return c.keys != nil }

// stream is get for an answer that lasts as long as a blob's arrival; its
// signature comes in the trailer, which Pieces checks at the end.
func (c *Client) stream(ctx context.Context, pathQuery string) (*http.Response, error) {
	return c.do(ctx, c.streams, pathQuery, nil, false)
}

// maxAnswer bounds a signed answer, held whole to be checked: the larger
// of info bytes and a manifest, and an error body is smaller.
const maxAnswer = max(api.MaxMetainfoSize, oci.MaxManifestSize+1)

// ErrRefused says the tracker's admission refused this mirror (secret or
// peer-cidr): as good as down for it.
var ErrRefused = errors.New("refused")

// AnswerError is a tracker's error answer (a 5xx): the tracker is up and
// says why it cannot help, with the OCI error its body carries (its
// origin failed, or api.ErrorCodeBusy).
type AnswerError struct {
	Status int
	Err    error
}

func (e *AnswerError) Error() string { return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err) }

func (e *AnswerError) Unwrap() error { return e.Err }

// ErrUnsigned says a tracker's answer was not signed with the fleet's key
// for the request. The message names both causes, since the mirror's log
// is where an operator finds a tracker left without the secret.
var ErrUnsigned = errors.New("answer not signed with the fleet's key: a tracker without this secret-file, or a man in the middle")

func (c *Client) do(ctx context.Context, hc *http.Client, pathQuery string, h http.Header, verify bool) (*http.Response, error) {
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
		if c.keys != nil {
			req.Header.Set("Authorization", "Bearer "+c.keys.APIToken())
			req.Header.Set(api.NonceHeader, rand.Text())
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp, err = c.check(req, resp, verify)
		}
		if err == nil {
			c.mu.Lock()
			c.preferred = n
			c.mu.Unlock()
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[n], err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// check turns an answer this mirror cannot use into an error: a server
// error, a refusal (a tracker that refuses this mirror is as good as down
// for it: the origin serves instead), or, when verify is set, an answer
// whose signature does not verify. A body read to be checked is given
// back whole.
func (c *Client) check(req *http.Request, resp *http.Response, verify bool) (*http.Response, error) {
	if resp.StatusCode >= 500 {
		defer resp.Body.Close()
		return nil, &AnswerError{Status: resp.StatusCode, Err: api.DecodeError(resp)}
	}
	if !verify && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	// Refusals come before the tracker signs anything, so they are not
	// signed; believing a forged one only sends this mirror to the origin.
	if err := refused(resp.StatusCode, body); err != nil {
		return nil, err
	}
	if verify && (len(body) > maxAnswer || !c.keys.Verify(req, resp, body)) {
		return nil, ErrUnsigned
	}
	return resp, nil
}

// refused says why the tracker's admission refused a request, or nil for
// any other answer (a 403 may also be the upstream's DENIED, passed on).
func refused(status int, body []byte) error {
	switch status {
	case http.StatusUnauthorized:
		return fmt.Errorf("HTTP %d: %w; does tracker-secret-file hold the fleet's secret?", status, ErrRefused)
	case http.StatusForbidden:
		var e errcode.Error
		err := api.DecodeError(&http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body))})
		if errors.As(err, &e) && e.Code == api.ErrorCodeNotAdmitted {
			return fmt.Errorf("HTTP %d: %w; is this mirror's address inside the tracker's peer-cidr? %w", status, ErrRefused, err)
		}
	}
	return nil
}
