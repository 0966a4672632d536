package mirror_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// A client asking for a blob the mirror is still fetching gets the
// response headers at once, before any of the body exists: clients give
// up on headers that do not come (Go's ResponseHeaderTimeout, "timeout
// awaiting response headers"), while a layer's first bytes can come
// last when its pieces arrive rarest first.
func TestHeadersComeBeforeTheFirstByte(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	valve := harness.NewValve(0)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	blob, d := pushBlob(t, o, "app", size)
	m := startMirror(t, t.TempDir(), "--default-upstream="+o.Host(), upstreamFlag(o))

	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 2 * time.Second}}
	resp, err := client.Get(m.URL() + "/v2/app/blobs/" + d.String())
	if err != nil {
		t.Fatalf("no headers while the origin holds every byte back: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.Itoa(size) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("headers: %s, Content-Length %q, Docker-Content-Digest %q", resp.Status, resp.Header.Get("Content-Length"), resp.Header.Get("Docker-Content-Digest"))
	}
	if n := m.Metric("blobswarm_mirror_received_bytes_total", "source", "origin"); n != 0 {
		t.Fatalf("the mirror had %v bytes of the blob: the headers proved nothing", n)
	}
	valve.Open()
	body, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(body, blob) {
		t.Fatalf("body: %d bytes, %v, or not the blob", len(body), err)
	}
}
