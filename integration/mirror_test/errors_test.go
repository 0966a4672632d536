package mirror_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// denyRepo makes an origin refuse repository repo with 403, as a
// registry does for an account that may not read it.
func denyRepo(repo string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/") {
				errcode.ServeJSON(w, errcode.ErrorCodeDenied)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestErrors sends every kind of bad or unanswerable request and checks
// the status, the OCI error code, and that nothing reached the data dir.
func TestErrors(t *testing.T) {
	t.Parallel()
	open := harness.NewOriginWith(t, origin.Config{}, denyRepo("denied/app"))
	pushed, err := testimage.PushImage(t.Context(), open.Host()+"/app:1", 1, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	private := harness.NewOrigin(t, origin.Config{Auth: origin.AuthConfig{Htpasswd: &origin.Htpasswd{Username: "u", Password: "p"}}})
	const dead = "dead.test"
	data := t.TempDir()
	m := startMirror(t, data, "--default-upstream="+open.Host(), upstreamFlag(open), upstreamFlag(private),
		"--upstream="+dead+"=http://"+harness.FreeAddr(t))

	layer := pushed.Images[0].Layers[0].Digest.String()
	unknown := digest.FromString("nobody pushed this").String()
	v2 := m.URL() + "/v2/"
	for _, c := range []struct {
		method, path string
		status       int
		code         string
		mention      string // the message must name this
	}{
		{"GET", "Upper/app/manifests/1", 400, "NAME_INVALID", ""},
		{"GET", "a..b/blobs/" + layer, 400, "NAME_INVALID", ""},
		{"GET", "app/blobs/sha256:abc", 400, "DIGEST_INVALID", ""},
		{"GET", "app/blobs/sha256:" + strings.Repeat("g", 64), 400, "DIGEST_INVALID", ""},
		{"GET", "app/manifests/md5:" + strings.Repeat("0", 32), 400, "DIGEST_INVALID", ""},
		{"GET", "app/blobs/" + unknown, 404, "BLOB_UNKNOWN", ""},
		{"GET", "app/manifests/" + unknown, 404, "MANIFEST_UNKNOWN", ""},
		{"GET", "app/manifests/nope", 404, "MANIFEST_UNKNOWN", ""},
		{"GET", "app/manifests/1?ns=" + private.Host(), 401, "UNAUTHORIZED", private.Host()},
		{"GET", "app/blobs/" + layer + "?ns=" + private.Host(), 401, "UNAUTHORIZED", private.Host()},
		{"GET", "denied/app/manifests/1", 403, "DENIED", open.Host()},
		{"GET", "denied/app/blobs/" + layer, 403, "DENIED", open.Host()},
		{"GET", "app/manifests/1?ns=" + dead, 503, "UNAVAILABLE", dead},
		{"GET", "app/manifests/" + unknown + "?ns=" + dead, 503, "UNAVAILABLE", dead},
		{"GET", "app/blobs/" + layer + "?ns=" + dead, 503, "UNAVAILABLE", dead},
		{"PUT", "app/manifests/1", 405, "UNSUPPORTED", ""},
		{"POST", "app/blobs/uploads/", 405, "UNSUPPORTED", ""},
		{"PATCH", "app/blobs/uploads/0b8e7a7c-7f2f-4a8e-9d38-2c1d2e6b9f10", 405, "UNSUPPORTED", ""},
		{"DELETE", "app/blobs/" + layer, 405, "UNSUPPORTED", ""},
		{"DELETE", "app/manifests/1", 405, "UNSUPPORTED", ""},
		{"GET", "app/manifests/1?ns=other.test", 403, "DENIED", "other.test"},
		{"GET", "app/blobs/" + layer + "?ns=other.test", 403, "DENIED", "other.test"},
		{"GET", "app/manifests/1?ns=bad%20host", 400, "NAME_INVALID", ""},
		{"GET", "app/blobs/" + layer + "?ns=..%2F..%2Fetc", 400, "NAME_INVALID", ""},
		{"GET", "app/blobs/" + layer + "?ns=-x.test", 400, "NAME_INVALID", ""},
	} {
		what := c.method + " " + c.path
		resp, body := send(t, c.method, v2+c.path)
		msg := wantError(t, what, resp, body, c.status, c.code)
		if c.mention != "" {
			mustContain(t, what+": message", msg, c.mention)
		}
		if c.method == "GET" {
			// HEAD gets the same status and no body.
			resp, body := send(t, http.MethodHead, v2+c.path)
			if resp.StatusCode != c.status || len(body) != 0 {
				t.Errorf("HEAD %s: %s with %d body bytes, want %d and none", c.path, resp.Status, len(body), c.status)
			}
		}
	}

	if resp, _ := send(t, http.MethodGet, m.URL()+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("mirror not ready after the bad requests: %s", resp.Status)
	}
	if files := filesUnder(t, data); len(files) != 0 {
		t.Errorf("bad requests left files in the data dir: %v", files)
	}
	if n := open.TotalBlobGETs(); n != 0 {
		t.Errorf("origin served %d blob GETs for requests that should all fail", n)
	}
}
