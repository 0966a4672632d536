// Package mirror_test runs `blobswarm mirror` as a real process in front of
// a real origin registry and pulls through it with real clients.
package mirror_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

func TestMain(m *testing.M) { harness.Main(m) }

// Metric names the mirror exports.
const (
	requestsMetric = "blobswarm_mirror_requests_total"
	cacheMetric    = "blobswarm_mirror_cache_total"
	inflightMetric = "blobswarm_mirror_inflight_fetches"
)

// startMirror runs a mirror on data with the given flags.
func startMirror(t *testing.T, data string, args ...string) *harness.Process {
	t.Helper()
	return harness.Start(t, "mirror", append([]string{"--data", data}, args...)...)
}

// upstreamFlag maps the origin's own host name to it, as for images named
// by the origin's host:port.
func upstreamFlag(o *harness.Origin) string {
	return "--upstream=" + o.Host() + "=" + o.Server.URL
}

// pushBlob uploads size random bytes to repo on the origin and returns them
// with their digest. The bytes are not gzip, so big blobs cost no time.
func pushBlob(t *testing.T, o *harness.Origin, repo string, size int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	r, err := name.NewRepository(o.Host()+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(r, static.NewLayer(b, types.OCILayer), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push blob to %s: %v", r, err)
	}
	return b, digest.FromBytes(b)
}

// basicAuth is the remote option for pushing to an origin with a user.
func basicAuth(user, pass string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: user, Password: pass})
}

// send makes one request and returns the response with its whole body.
func send(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := try(t.Context(), method, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// try is send for goroutines other than the test's, which must not Fatal.
func try(ctx context.Context, method, url string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return resp, body, nil
}

// ociError is the distribution-spec error body.
type ociError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// wantError checks a response is an OCI error with the given status and
// code and returns its message.
func wantError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, resp.StatusCode, status, body)
		return ""
	}
	var e ociError
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Errorf("%s: body is not an OCI error: %q", what, body)
		return ""
	}
	if e.Errors[0].Code != code {
		t.Errorf("%s: code %s, want %s (message %q)", what, e.Errors[0].Code, code, e.Errors[0].Message)
	}
	return e.Errors[0].Message
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// blobPath is where the store keeps a committed blob.

// waitMetric waits until a mirror metric reaches at least want.
func waitMetric(t *testing.T, p *harness.Process, want float64, name string, labels ...string) {
	t.Helper()
	harness.Eventually(t, fmt.Sprintf("%s%v >= %v", name, labels, want), func() bool {
		return p.Metric(name, labels...) >= want
	})
}

// mustContain fails unless s contains every one of subs.
func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not mention %q", what, s, sub)
		}
	}
}

// pullImage pulls ref with go-containerregistry's remote.Image, reads the
// config and every layer fully, and checks each digest against want.
func pullImage(t *testing.T, ref string, want testimage.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, append([]remote.Option{remote.WithContext(t.Context())}, opts...)...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if got, err := img.Digest(); err != nil || got.String() != want.Manifest.Digest.String() {
		t.Errorf("%s: manifest digest %v (%v), want %s", ref, got, err, want.Manifest.Digest)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatalf("%s: config: %v", ref, err)
	}
	if got := digest.FromBytes(cfg); got != want.Config.Digest {
		t.Errorf("%s: config digest %s, want %s", ref, got, want.Config.Digest)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("%s: layers: %v", ref, err)
	}
	if len(layers) != len(want.Layers) {
		t.Fatalf("%s: %d layers, want %d", ref, len(layers), len(want.Layers))
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("%s: layer %d: %v", ref, i, err)
		}
		got, err := digest.FromReader(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: read layer %d: %v", ref, i, err)
		}
		if got != want.Layers[i].Digest {
			t.Errorf("%s: layer %d digest %s, want %s", ref, i, got, want.Layers[i].Digest)
		}
	}
}

// digestFile hashes a file.
func digestFile(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return digest.FromReader(f)
}
