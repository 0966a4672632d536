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
	ep := c.Endpoint(host)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		drain(resp)
		return nil, 0, &Error{Host: host, URL: ep.URL.String(), Status: resp.StatusCode, Err: fmt.Errorf("blob %s in %s: %w", d, repo, ErrNotFound)}
	case resp.StatusCode != http.StatusOK:
		drain(resp)
		return nil, 0, &Error{Host: host, URL: ep.URL.String(), Status: resp.StatusCode, Err: fmt.Errorf("blob %s in %s: HTTP %d", d, repo, resp.StatusCode)}
	case resp.ContentLength < 0:
		drain(resp)
		return nil, 0, &Error{Host: host, URL: ep.URL.String(), Status: http.StatusBadGateway, Err: fmt.Errorf("blob %s in %s: no Content-Length", d, repo)}
	}
	return resp.Body, resp.ContentLength, nil
}
