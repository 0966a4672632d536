package mirror_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestHead asks for manifests and blobs with HEAD, before and after they
// are cached, and for ones nobody has.
func TestHead(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/app:1", 1, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o))
	ns := "?ns=" + o.Host()
	v2 := m.URL() + "/v2/app/"
	top, layer := pushed.Top, pushed.Images[0].Layers[0]
	unknown := digest.FromString("nobody pushed this")

	checkHead := func(what, url string, status int, wantDigest digest.Digest, wantSize int64) {
		t.Helper()
		resp, body := send(t, http.MethodHead, url)
		if resp.StatusCode != status {
			t.Fatalf("%s: %s, want %d", what, resp.Status, status)
		}
		if len(body) != 0 {
			t.Errorf("%s: HEAD sent %d body bytes", what, len(body))
		}
		if status != http.StatusOK {
			return
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != wantDigest.String() {
			t.Errorf("%s: Docker-Content-Digest %q, want %s", what, got, wantDigest)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.FormatInt(wantSize, 10) {
			t.Errorf("%s: Content-Length %q, want %d", what, got, wantSize)
		}
	}

	checkHead("manifest by tag, not cached", v2+"manifests/1"+ns, http.StatusOK, top.Digest, top.Size)
	checkHead("manifest by digest, cached by the tag lookup", v2+"manifests/"+top.Digest.String()+ns, http.StatusOK, top.Digest, top.Size)
	if n := m.Metric(cacheMetric, "kind", "manifest", "result", "hit"); n != 1 {
		t.Errorf("manifest cache hits %v, want 1", n)
	}
	checkHead("unknown tag", v2+"manifests/nope"+ns, http.StatusNotFound, "", 0)
	checkHead("unknown manifest digest", v2+"manifests/"+unknown.String()+ns, http.StatusNotFound, "", 0)

	checkHead("blob not cached", v2+"blobs/"+layer.Digest.String()+ns, http.StatusOK, layer.Digest, layer.Size)
	if n := o.BlobGETs(layer.Digest); n != 0 {
		t.Errorf("a HEAD made the mirror GET the blob %d times from the origin", n)
	}
	if _, err := os.Stat(harness.BlobPath(data, layer.Digest)); err == nil {
		t.Error("a HEAD put the blob in the store")
	}
	checkHead("unknown blob", v2+"blobs/"+unknown.String()+ns, http.StatusNotFound, "", 0)

	if resp, body := send(t, http.MethodGet, v2+"blobs/"+layer.Digest.String()+ns); resp.StatusCode != http.StatusOK || digest.FromBytes(body) != layer.Digest {
		t.Fatalf("GET blob: %s, digest %s", resp.Status, digest.FromBytes(body))
	}
	harness.Eventually(t, "blob committed", func() bool { _, err := os.Stat(harness.BlobPath(data, layer.Digest)); return err == nil })
	checkHead("blob cached", v2+"blobs/"+layer.Digest.String()+ns, http.StatusOK, layer.Digest, layer.Size)
	if n := m.Metric(cacheMetric, "kind", "blob", "result", "hit"); n != 1 {
		t.Errorf("blob cache hits %v, want 1 (the cached HEAD)", n)
	}
	if n := o.BlobGETs(layer.Digest); n != 1 {
		t.Errorf("origin served the blob %d times, want once", n)
	}
}

// rangeCase is one Range request and what must come back. For 206 the
// body must be blob[start:end+1]; for 416 Content-Range is bytes */size.
type rangeCase struct {
	header     string
	status     int
	start, end int64
}

func checkRange(t *testing.T, url string, blob []byte, c rangeCase) {
	t.Helper()
	resp, body := send(t, http.MethodGet, url, "Range", c.header)
	checkRangeResponse(t, blob, c, resp, body)
}

func checkRangeResponse(t *testing.T, blob []byte, c rangeCase, resp *http.Response, body []byte) {
	t.Helper()
	size := int64(len(blob))
	if resp.StatusCode != c.status {
		t.Errorf("Range %s: %s, want %d", c.header, resp.Status, c.status)
		return
	}
	cr := resp.Header.Get("Content-Range")
	switch c.status {
	case http.StatusPartialContent:
		if want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size); cr != want {
			t.Errorf("Range %s: Content-Range %q, want %q", c.header, cr, want)
		}
		if !bytes.Equal(body, blob[c.start:c.end+1]) {
			t.Errorf("Range %s: got %d bytes that are not blob[%d:%d]", c.header, len(body), c.start, c.end+1)
		}
		if resp.ContentLength != c.end-c.start+1 {
			t.Errorf("Range %s: Content-Length %d, want %d", c.header, resp.ContentLength, c.end-c.start+1)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if want := fmt.Sprintf("bytes */%d", size); cr != want {
			t.Errorf("Range %s: Content-Range %q, want %q", c.header, cr, want)
		}
	case http.StatusOK:
		if !bytes.Equal(body, blob) {
			t.Errorf("Range %s: 200 with %d bytes that are not the blob", c.header, len(body))
		}
	}
}

// TestRange sends single-range requests for a blob while it is still
// coming from the origin, and again once it is cached. Bytes from the origin
// are checked only by the blob's digest, so a range over a download in
// progress ends only once the whole blob has matched it: a client never gets
// a complete 206 of bytes that may turn out wrong.
func TestRange(t *testing.T) {
	t.Parallel()
	const size, pass = 2 << 20, 256 << 10
	valve := harness.NewValve(pass)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	blob, d := pushBlob(t, o, "app", size)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o))
	url := m.URL() + "/v2/app/blobs/" + d.String() + "?ns=" + o.Host()

	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	get := func(c rangeCase) chan result {
		ch := make(chan result, 1)
		go func() {
			resp, body, err := try(t.Context(), http.MethodGet, url, "Range", c.header)
			ch <- result{resp, body, err}
		}()
		return ch
	}
	// The origin holds everything past the first 256 KiB. The first range
	// lies within the bytes that have come, Docker's resume and the suffix
	// beyond them; all three wait for the digest.
	waiting := []rangeCase{
		{"bytes=1000-1999", http.StatusPartialContent, 1000, 1999},
		{"bytes=1048576-", http.StatusPartialContent, 1 << 20, size - 1},
		{"bytes=-4096", http.StatusPartialContent, size - 4096, size - 1},
	}
	results := []chan result{get(waiting[0])}
	waitMetric(t, m, 1, inflightMetric)
	// The size is known from the origin's headers, so this needs no bytes.
	checkRange(t, url, blob, rangeCase{fmt.Sprintf("bytes=%d-", size), http.StatusRequestedRangeNotSatisfiable, 0, 0})
	for _, c := range waiting[1:] {
		results = append(results, get(c))
	}
	waitMetric(t, m, 3, cacheMetric, "kind", "blob", "result", "joined")
	if _, err := os.Stat(harness.BlobPath(data, d)); err == nil {
		t.Fatal("blob is in the store while the origin still holds most of it")
	}
	select {
	case r := <-results[0]:
		t.Fatalf("Range %s ended (status %v, err %v) before the blob matched its digest", waiting[0].header, r.resp, r.err)
	default:
	}
	valve.Open()
	for i, c := range waiting {
		r := <-results[i]
		if r.err != nil {
			t.Fatalf("Range %s: %v", c.header, r.err)
		}
		checkRangeResponse(t, blob, c, r.resp, r.body)
	}
	if n := m.Metric(cacheMetric, "kind", "blob", "result", "miss"); n != 1 {
		t.Errorf("blob misses %v, want 1: every other request joins the download", n)
	}

	harness.Eventually(t, "blob committed", func() bool { _, err := os.Stat(harness.BlobPath(data, d)); return err == nil })
	for _, c := range []rangeCase{
		{"bytes=0-0", http.StatusPartialContent, 0, 0},
		{"bytes=100-", http.StatusPartialContent, 100, size - 1},
		{"bytes=-10", http.StatusPartialContent, size - 10, size - 1},
		{fmt.Sprintf("bytes=-%d", size+5), http.StatusPartialContent, 0, size - 1},
		{fmt.Sprintf("bytes=10-%d", size+100), http.StatusPartialContent, 10, size - 1},
		{fmt.Sprintf("bytes=%d-", size), http.StatusRequestedRangeNotSatisfiable, 0, 0},
		{"bytes=0-1,5-6", http.StatusOK, 0, 0}, // several ranges: the whole blob
	} {
		checkRange(t, url, blob, c)
	}
	if n := m.Metric(cacheMetric, "kind", "blob", "result", "hit"); n != 7 {
		t.Errorf("blob cache hits %v, want 7", n)
	}
	if n := o.BlobGETs(d); n != 1 {
		t.Errorf("origin served the blob %d times, want once", n)
	}
}
