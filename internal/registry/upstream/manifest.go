package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// GetManifest fetches a manifest by tag or digest, offering the given media
// types, and returns its exact bytes and media type. Any answer but 200
// becomes an *Error; a 404 wraps ErrNotFound.
func (c *Client) GetManifest(ctx context.Context, host, repo, ref string, accept []string) ([]byte, string, error) {
	h := http.Header{}
	for _, a := range accept {
		h.Add("Accept", a)
	}
	resp, err := c.Do(ctx, http.MethodGet, host, repo, "/v2/"+repo+"/manifests/"+ref, h)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	what := fmt.Sprintf("manifest %s:%s", repo, ref)
	if resp.StatusCode != http.StatusOK {
		return nil, "", c.StatusError(host, resp.StatusCode, what)
	}
	data, mediaType, err := c.readAnswer(host, resp, what)
	if err != nil {
		return nil, "", err
	}
	// Whatever else came back (a login page, an error page with a script)
	// would reach clients verbatim under the registry's name.
	if !oci.IsManifestMediaType(mediaType) {
		return nil, "", c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: Content-Type %q is not a manifest media type", what, mediaType))
	}
	return data, mediaType, nil
}

// readAnswer reads a manifest-sized answer whole (at most 4 MiB, as
// distribution allows a manifest) with its media type.
func (c *Client) readAnswer(host string, resp *http.Response, what string) ([]byte, string, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err == nil && len(data) > oci.MaxManifestSize {
		err = errors.New("larger than 4 MiB")
	}
	if err != nil {
		return nil, "", c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: %v", what, err))
	}
	mediaType, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return data, strings.TrimSpace(mediaType), nil
}
