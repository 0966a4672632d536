package mirror_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestRestartWithOriginDown pulls an image, takes the origin away, and
// restarts the mirror on the same data dir: what was cached still serves,
// the tag still resolves to what it last was, and what was never fetched
// fails at once with a message naming the upstream.
func TestRestartWithOriginDown(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/app:1", 2, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	_, uncached := pushBlob(t, o, "app", 4<<10)
	data := t.TempDir()
	args := []string{"--default-upstream=" + o.Host(), upstreamFlag(o)}
	m := startMirror(t, data, args...)
	pullImage(t, m.Host()+"/app:1", pushed.Images[0])
	m.Stop()

	o.Server.Close()
	m = startMirror(t, data, args...)
	v2 := m.URL() + "/v2/app/"

	resp, _ := send(t, http.MethodHead, v2+"manifests/1", dockerAccept...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != pushed.Top.Digest.String() {
		t.Errorf("HEAD tag with the origin down: %s, digest %q; want 200 and %s",
			resp.Status, resp.Header.Get("Docker-Content-Digest"), pushed.Top.Digest)
	}
	resp, body := send(t, http.MethodGet, v2+"manifests/1", dockerAccept...)
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != pushed.Top.Digest {
		t.Errorf("GET tag with the origin down: %s, content digest %s; want 200 and %s", resp.Status, digest.FromBytes(body), pushed.Top.Digest)
	}
	if n := m.Metric("blobswarm_mirror_stale_manifests_total"); n != 2 {
		t.Errorf("stale manifest answers %v, want 2", n)
	}
	// The full pull, by a real client, needs nothing from the origin.
	pullImage(t, m.Host()+"/app:1", pushed.Images[0])

	resp, body = send(t, http.MethodGet, v2+"blobs/"+uncached.String())
	msg := wantError(t, "uncached blob with the origin down", resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	mustContain(t, "error message", msg, o.Host())
	if files := filesUnder(t, filepath.Join(data, "tmp")); len(files) != 0 {
		t.Errorf("tmp/ holds %v", files)
	}
	if _, err := os.Stat(harness.BlobPath(data, uncached)); err == nil {
		t.Error("a blob the origin never sent is in the store")
	}
}

// TestKillMidDownload kills the mirror with SIGKILL while a blob is half
// way through, and restarts it: the half blob must never be served or
// stored; the blob is fetched again and stored whole.
func TestKillMidDownload(t *testing.T) {
	t.Parallel()
	const size, pass = 8 << 20, 1 << 20
	valve := harness.NewValve(pass)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	blob, d := pushBlob(t, o, "app", size)
	data := t.TempDir()
	args := []string{"--default-upstream=" + o.Host(), upstreamFlag(o)}
	m := startMirror(t, data, args...)
	url := "/v2/app/blobs/" + d.String()

	resp, err := http.Get(m.URL() + url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first MiB streams to the client while the rest is still held at
	// the origin.
	head := make([]byte, pass)
	if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, blob[:pass]) {
		t.Fatalf("first MiB: %v, or not the blob's first MiB", err)
	}
	m.Kill()
	if n, err := io.Copy(io.Discard, resp.Body); err == nil || pass+n >= size {
		t.Errorf("client read %d bytes and err %v after the kill; want a broken body", pass+n, err)
	}
	if _, err := os.Stat(harness.BlobPath(data, d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-downloaded blob in the store: %v", err)
	}
	if files := filesUnder(t, filepath.Join(data, "tmp")); len(files) == 0 {
		t.Fatal("no partial file in tmp/: the kill did not catch the download in the middle")
	}

	m = startMirror(t, data, args...)
	if files := filesUnder(t, filepath.Join(data, "tmp")); len(files) != 0 {
		t.Errorf("tmp/ still holds %v after the restart", files)
	}
	if resp, _ := send(t, http.MethodHead, m.URL()+url); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD after restart: %s", resp.Status)
	}
	if n := m.Metric(cacheMetric, "kind", "blob", "result", "hit"); n != 0 {
		t.Errorf("the restarted mirror had the blob cached (%v hits)", n)
	}
	valve.Open()
	resp2, body := send(t, http.MethodGet, m.URL()+url)
	if resp2.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("GET after restart: %s, %d bytes, digest %s", resp2.Status, len(body), digest.FromBytes(body))
	}
	if n := m.Metric("blobswarm_mirror_received_bytes_total", "source", "origin"); n != size {
		t.Errorf("restarted mirror received %v bytes from the origin, want the whole %d", n, size)
	}
	harness.Eventually(t, "blob committed", func() bool { return m.Metric(inflightMetric) == 0 })
	if got, err := digestFile(harness.BlobPath(data, d)); err != nil || got != d {
		t.Errorf("stored blob hashes to %s (%v), want %s", got, err, d)
	}
	if files := filesUnder(t, filepath.Join(data, "tmp")); len(files) != 0 {
		t.Errorf("tmp/ holds %v after the fetch", files)
	}
}
