package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
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
	var h http.Header
	if offset > 0 {
		h = http.Header{"Range": {fmt.Sprintf("bytes=%d-", offset)}}
	}
	resp, err := c.Do(ctx, http.MethodGet, host, repo, "/v2/"+repo+"/blobs/"+d.String(), h)
	if err != nil {
		return nil, 0, 0, err
	}
	what := fmt.Sprintf("blob %s in %s", d, repo)
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		var first, last int64
		_, perr := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size)
		if perr != nil || first != offset || last != size-1 || resp.ContentLength != size-offset {
			drain(resp)
			return nil, 0, 0, c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: Content-Range %q does not answer bytes=%d-", what, resp.Header.Get("Content-Range"), offset))
		}
		return resp.Body, offset, size, nil
	case resp.StatusCode != http.StatusOK:
		drain(resp)
		return nil, 0, 0, c.StatusError(host, resp.StatusCode, what)
	case resp.ContentLength < 0:
		drain(resp)
		return nil, 0, 0, c.StatusError(host, http.StatusBadGateway, what+": no Content-Length")
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
