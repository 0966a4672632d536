package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// PushRandomBlob puts size random bytes as a blob of repo on o and returns
// them with their digest.
func PushRandomBlob(t testing.TB, o *Origin, repo string, size int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	d, _, err := PushBlob(t.Context(), o.Server.URL, repo, bytes.NewReader(b), digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b, d
}

// PushBlob uploads everything r yields as one blob of repo on the registry
// at base (e.g. "http://127.0.0.1:5000"), hashing it with alg on the way,
// and returns its digest and size. It streams: a blob of gigabytes costs
// no more memory than a small one.
func PushBlob(ctx context.Context, base, repo string, r io.Reader, alg digest.Algorithm) (digest.Digest, int64, error) {
	loc, err := pushStep(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, "", http.StatusAccepted)
	if err != nil {
		return "", 0, fmt.Errorf("start upload to %s: %w", repo, err)
	}
	digester := alg.Digester()
	counted := &countingReader{r: io.TeeReader(r, digester.Hash())}
	// A PATCH of unknown length goes out chunked, so nothing is buffered.
	loc, err = pushStep(ctx, http.MethodPatch, loc, io.NopCloser(counted), "application/octet-stream", http.StatusAccepted)
	if err != nil {
		return "", 0, fmt.Errorf("upload to %s: %w", repo, err)
	}
	d := digester.Digest()
	u, err := url.Parse(loc)
	if err != nil {
		return "", 0, fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	if _, err := pushStep(ctx, http.MethodPut, u.String(), nil, "", http.StatusCreated); err != nil {
		return "", 0, fmt.Errorf("commit blob %s to %s: %w", d, repo, err)
	}
	return d, counted.n, nil
}

// PushManifest puts data as the manifest ref (a tag or its digest) of repo
// and returns the digest the registry reports.
func PushManifest(ctx context.Context, base, repo, ref, mediaType string, data []byte) (digest.Digest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("put manifest %s:%s: %w", repo, ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("put manifest %s:%s: HTTP %d: %s", repo, ref, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return digest.Parse(resp.Header.Get("Docker-Content-Digest"))
}

// pushStep sends one request of the upload protocol and returns the
// absolute Location it names.
func pushStep(ctx context.Context, method, target string, body io.ReadCloser, contentType string, want int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return "", err
	}
	if body != nil {
		req.Body = body
		req.ContentLength = -1
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("%s: bad Location: %w", method, err)
	}
	return loc.String(), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
