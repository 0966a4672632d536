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
	resp, err := c.Do(ctx, http.MethodGet, host, repo, "/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	what := fmt.Sprintf("blob %s in %s", d, repo)
	switch {
	case resp.StatusCode != http.StatusOK:
		drain(resp)
		return nil, 0, c.StatusError(host, resp.StatusCode, what)
	case resp.ContentLength < 0:
		drain(resp)
		return nil, 0, c.StatusError(host, http.StatusBadGateway, what+": no Content-Length")
	}
	return resp.Body, resp.ContentLength, nil
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
