package mirror_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// noRedirects is a client that shows a redirect instead of following it,
// so a path the server rewrites is seen as such.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func sendNoRedirect(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp, buf.Bytes()
}

// TestMalformedRequests sends requests no registry client should send and
// checks each gets its 4xx with the OCI error code, and that none of them
// reaches the origin or writes anything to the data dir.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	blob, d := pushBlob(t, o, "app", 8<<10)
	data := t.TempDir()
	m := startMirror(t, data, "--default-upstream="+o.Host(), upstreamFlag(o))

	// One good pull puts a blob in the store, so the range rows have
	// something to cut; everything after it must leave no trace.
	if resp, body := send(t, http.MethodGet, m.URL()+"/v2/app/blobs/"+d.String()); resp.StatusCode != http.StatusOK || digest.FromBytes(body) != d {
		t.Fatalf("good pull: %s, %d bytes", resp.Status, len(body))
	}
	harness.Eventually(t, "pulled blob committed", func() bool { return len(harness.StoredBlobs(t, data)) == 1 })
	before := filesUnder(t, data)
	blobGETs := o.TotalBlobGETs()

	hex := d.Encoded()
	cold := digest.FromString("never pushed").String()
	long := strings.Repeat("a", 256)
	for _, c := range []struct {
		what, method, path string
		header             []string
		status             int
		code               string
	}{
		{"uppercase name", "GET", "/v2/App/blobs/" + cold, nil, 400, "NAME_INVALID"},
		{"uppercase nested name", "GET", "/v2/team/App/manifests/1", nil, 400, "NAME_INVALID"},
		{"dot-dot name", "GET", "/v2/app/../etc/blobs/" + cold, nil, 400, "NAME_INVALID"},
		{"dot-dot component only", "GET", "/v2/../manifests/1", nil, 400, "NAME_INVALID"},
		{"name too long", "GET", "/v2/" + long + "/blobs/" + cold, nil, 400, "NAME_INVALID"},
		{"empty component", "GET", "/v2/a//b/manifests/1", nil, 400, "NAME_INVALID"},
		{"empty name", "GET", "/v2//manifests/1", nil, 400, "NAME_INVALID"},
		{"trailing separator", "GET", "/v2/app-/manifests/1", nil, 400, "NAME_INVALID"},
		{"sha512 with sha256 length", "GET", "/v2/app/blobs/sha512:" + hex, nil, 400, "DIGEST_INVALID"},
		{"md5 algorithm", "GET", "/v2/app/blobs/md5:" + hex[:32], nil, 400, "DIGEST_INVALID"},
		{"uppercase algorithm", "GET", "/v2/app/blobs/SHA256:" + hex, nil, 400, "DIGEST_INVALID"},
		{"short hex", "GET", "/v2/app/blobs/sha256:" + hex[:63], nil, 400, "DIGEST_INVALID"},
		{"long hex", "GET", "/v2/app/blobs/sha256:" + hex + "0", nil, 400, "DIGEST_INVALID"},
		{"uppercase hex", "GET", "/v2/app/blobs/sha256:" + strings.ToUpper(hex), nil, 400, "DIGEST_INVALID"},
		{"non-hex", "GET", "/v2/app/blobs/sha256:" + strings.Repeat("z", 64), nil, 400, "DIGEST_INVALID"},
		{"empty hex", "GET", "/v2/app/blobs/sha256:", nil, 400, "DIGEST_INVALID"},
		{"no algorithm", "GET", "/v2/app/blobs/" + hex, nil, 400, "DIGEST_INVALID"},
		{"bad manifest digest", "GET", "/v2/app/manifests/sha256:" + hex[:10], nil, 400, "DIGEST_INVALID"},
		{"tag starting with dash", "GET", "/v2/app/manifests/-1", nil, 400, "TAG_INVALID"},
		{"tag starting with dot", "GET", "/v2/app/manifests/.1", nil, 400, "TAG_INVALID"},
		{"tag too long", "GET", "/v2/app/manifests/" + strings.Repeat("t", 129), nil, 400, "TAG_INVALID"},
		{"tag with space", "GET", "/v2/app/manifests/a%20b", nil, 400, "TAG_INVALID"},
		{"tag with percent", "GET", "/v2/app/manifests/a%25b", nil, 400, "TAG_INVALID"},
		{"PUT manifest", "PUT", "/v2/app/manifests/1", nil, 405, "UNSUPPORTED"},
		{"PUT cached blob", "PUT", "/v2/app/blobs/" + d.String(), nil, 405, "UNSUPPORTED"},
		{"POST upload", "POST", "/v2/app/blobs/uploads/", nil, 405, "UNSUPPORTED"},
		{"POST mount", "POST", "/v2/app/blobs/uploads/?mount=" + d.String() + "&from=other", nil, 405, "UNSUPPORTED"},
		{"PATCH upload", "PATCH", "/v2/app/blobs/uploads/abc", nil, 405, "UNSUPPORTED"},
		{"DELETE cached blob", "DELETE", "/v2/app/blobs/" + d.String(), nil, 405, "UNSUPPORTED"},
		{"DELETE tag", "DELETE", "/v2/app/manifests/1", nil, 405, "UNSUPPORTED"},
		{"OPTIONS", "OPTIONS", "/v2/app/manifests/1", nil, 405, "UNSUPPORTED"},
		// Reads a pull-through mirror does not serve are a 404, as from a
		// registry without that API, never a 405.
		{"catalog", "GET", "/v2/_catalog", nil, 404, "UNSUPPORTED"},
		{"upload status", "GET", "/v2/app/blobs/uploads/abc", nil, 404, "UNSUPPORTED"},
		{"blob without digest", "GET", "/v2/app/blobs/", nil, 404, "UNSUPPORTED"},
		{"tags of a bad name", "GET", "/v2/App/tags/list", nil, 400, "NAME_INVALID"},
		{"tags page size not a number", "GET", "/v2/app/tags/list?n=ten", nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"referrers of a bad digest", "GET", "/v2/app/referrers/sha256:" + hex[:10], nil, 400, "DIGEST_INVALID"},
		{"ns with space", "GET", "/v2/app/blobs/" + cold + "?ns=a%20b", nil, 400, "NAME_INVALID"},
		{"ns with path", "GET", "/v2/app/blobs/" + cold + "?ns=a.test/x", nil, 400, "NAME_INVALID"},
		{"ns with scheme", "GET", "/v2/app/blobs/" + cold + "?ns=http://a.test", nil, 400, "NAME_INVALID"},
		{"ns dot-dot", "GET", "/v2/app/manifests/1?ns=..", nil, 400, "NAME_INVALID"},
		{"ns too long", "GET", "/v2/app/blobs/" + cold + "?ns=" + strings.Repeat("a", 300) + ".test", nil, 400, "NAME_INVALID"},
		{"huge query", "GET", "/v2/app/blobs/" + cold + "?ns=%00&x=" + strings.Repeat("q", 64<<10), nil, 400, "NAME_INVALID"},
		{"past-end range", "GET", "/v2/app/blobs/" + d.String(), []string{"Range", "bytes=9000-9999"}, 416, "RANGE_INVALID"},
		{"range starting at size", "GET", "/v2/app/blobs/" + d.String(), []string{"Range", "bytes=8192-"}, 416, "RANGE_INVALID"},
		{"zero suffix range", "GET", "/v2/app/blobs/" + d.String(), []string{"Range", "bytes=-0"}, 416, "RANGE_INVALID"},
	} {
		resp, body := sendNoRedirect(t, c.method, m.URL()+c.path, c.header...)
		wantError(t, c.what+" ("+c.method+" "+short(c.path)+")", resp, body, c.status, c.code)
	}

	// A range the mirror does not understand is ignored, as RFC 9110
	// allows: the whole blob, never a wrong slice.
	for _, rng := range []string{"bytes=0-1,4-5", "bytes=10-5", "bytes=abc", "lines=0-1", "bytes=--1", "bytes=0x10-0x20", "bytes=-"} {
		resp, body := send(t, http.MethodGet, m.URL()+"/v2/app/blobs/"+d.String(), "Range", rng)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
			t.Errorf("Range %q: %s with %d bytes, want 200 and the whole blob of %d", rng, resp.Status, len(body), len(blob))
		}
	}

	// Requests no registry client sends get a 4xx from net/http itself.
	huge := m.URL() + "/v2/app/manifests/1?x=" + strings.Repeat("q", 2<<20)
	if resp, _ := sendNoRedirect(t, http.MethodGet, huge); resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Errorf("2 MiB query string: %s, want a 4xx", resp.Status)
	}

	if after := filesUnder(t, data); !slices.Equal(after, before) {
		t.Errorf("malformed requests changed the data dir:\nbefore %v\nafter  %v", before, after)
	}
	if n := o.TotalBlobGETs(); n != blobGETs {
		t.Errorf("malformed requests caused %d blob GETs at the origin", n-blobGETs)
	}
	if resp, _ := send(t, http.MethodGet, m.URL()+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("mirror not ready after the malformed requests: %s", resp.Status)
	}
}

// short keeps failure messages readable for rows with huge paths.
func short(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
