package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/byterange"
)

// ErrNotFound is an upstream's 404 for the resource asked for.
var ErrNotFound = errors.New("not found")

// GetBlob starts downloading a blob. The caller reads and closes the body,
// whose length is size. Any answer but 200 becomes an *Error; a 404 wraps
// ErrNotFound.
func (c *Client) GetBlob(ctx context.Context, host, repo string, d digest.Digest) (body io.ReadCloser, size int64, err error) {
	body, _, size, err = c.GetBlobFrom(ctx, host, repo, d, 0)
	return body, size, err
}

// GetBlobFrom is GetBlob for the bytes from offset on, for a download that
// already has the ones before. The body starts at start: offset when the
// upstream honoured the range, 0 when it sent the whole blob instead.
func (c *Client) GetBlobFrom(ctx context.Context, host, repo string, d digest.Digest, offset int64) (body io.ReadCloser, start, size int64, err error) {
	if offset == 0 {
		return c.getBlob(ctx, host, repo, d, nil, true)
	}
	return c.getBlob(ctx, host, repo, d, &byterange.Range{Start: offset, End: -1}, true)
}

// GetBlobRange reads bytes [off, off+n) of a blob: the pieces a stalled
// swarm download lacks. An upstream that ignores the range is an error
// here, since taking the whole blob for one piece is what this avoids.
func (c *Client) GetBlobRange(ctx context.Context, host, repo string, d digest.Digest, off, n int64) (io.ReadCloser, error) {
	body, _, _, err := c.getBlob(ctx, host, repo, d, &byterange.Range{Start: off, End: off + n - 1}, false)
	return body, err
}

// getBlob GETs a blob, or the span rng of it (End -1: to the end). A 200
// answer to a range request is accepted only if whole is set. The body
// is given up when it stalls for the idle timeout.
func (c *Client) getBlob(ctx context.Context, host, repo string, d digest.Digest, rng *byterange.Range, whole bool) (body io.ReadCloser, start, size int64, err error) {
	if c.cfg.IdleTimeout <= 0 {
		return c.getBlobBody(ctx, host, repo, d, rng, whole)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	body, start, size, err = c.getBlobBody(ctx, host, repo, d, rng, whole)
	if err != nil {
		cancel(nil)
		return nil, 0, 0, err
	}
	return withIdleTimeout(body, c.cfg.IdleTimeout, cancel), start, size, nil
}

func (c *Client) getBlobBody(ctx context.Context, host, repo string, d digest.Digest, rng *byterange.Range, whole bool) (body io.ReadCloser, start, size int64, err error) {
	var h http.Header
	if rng != nil {
		spec := fmt.Sprintf("bytes=%d-", rng.Start)
		if rng.End >= 0 {
			spec += strconv.FormatInt(rng.End, 10)
		}
		h = http.Header{"Range": {spec}}
	}
	resp, err := c.Do(ctx, http.MethodGet, host, repo, "/v2/"+repo+"/blobs/"+d.String(), h)
	if err != nil {
		return nil, 0, 0, err
	}
	what := fmt.Sprintf("blob %s in %s", d, repo)
	switch {
	case resp.StatusCode == http.StatusPartialContent && rng != nil:
		var first, last int64
		_, perr := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size)
		end := rng.End
		if end < 0 {
			end = size - 1
		}
		if perr != nil || first != rng.Start || last != end || last >= size || resp.ContentLength != last-first+1 {
			drain(resp)
			return nil, 0, 0, c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: Content-Range %q does not answer %s", what, resp.Header.Get("Content-Range"), h.Get("Range")))
		}
		return resp.Body, rng.Start, size, nil
	case resp.StatusCode != http.StatusOK:
		drain(resp)
		return nil, 0, 0, c.StatusError(host, resp.StatusCode, what)
	case resp.ContentLength < 0:
		drain(resp)
		return nil, 0, 0, c.StatusError(host, http.StatusBadGateway, what+": no Content-Length")
	case rng != nil && !whole:
		drain(resp)
		return nil, 0, 0, c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: the upstream ignored %s", what, h.Get("Range")))
	}
	return resp.Body, 0, resp.ContentLength, nil
}

// StatusError describes an upstream's unexpected answer for what was asked;
// a 404 wraps ErrNotFound.
func (c *Client) StatusError(host string, status int, what string) error {
	err := fmt.Errorf("%s: HTTP %d", what, status)
	if status == http.StatusNotFound {
		err = fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return &Error{Host: host, URL: c.Endpoint(host).URL.String(), Status: status, Err: err}
}
