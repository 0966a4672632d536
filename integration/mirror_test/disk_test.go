package mirror_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

const evictionsMetric = "blobswarm_mirror_cache_evictions_total"

// getBlob fetches a blob through the mirror and checks its bytes.
func getBlob(t *testing.T, m *harness.Process, o *harness.Origin, repo string, want []byte) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/blobs/%s?ns=%s", m.URL(), repo, digest.FromBytes(want), o.Host())
	resp, body := send(t, http.MethodGet, url)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET %s: status %d, %d bytes; want the %d-byte blob", digest.FromBytes(want), resp.StatusCode, len(body), len(want))
	}
}

// Past the quota the least recently used blobs go, whole, down to the
// low watermark; an evicted blob is fetched again when asked for.
func TestCacheQuotaEvictsLeastRecentlyUsed(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	data := t.TempDir()
	// 10 MiB: eviction above 9.5 MiB, down to 8.5 MiB.
	m := startMirror(t, data, upstreamFlag(o), "--cache-size", "10MiB")
	blobs := map[string][]byte{}
	digests := map[string]digest.Digest{}
	for _, name := range []string{"a", "b", "c", "d"} {
		blobs[name], digests[name] = pushBlob(t, o, "team/app", 3<<20)
	}
	for _, name := range []string{"a", "b", "c", "a", "d"} {
		getBlob(t, m, o, "team/app", blobs[name])
		// A fetched blob counts as used when it is committed, which can
		// be just after the client read its last byte: the next use must
		// come after that, or c's commit could postdate a's second use.
		harness.Eventually(t, "the fetch committed", func() bool { return m.Metric(inflightMetric) == 0 })
	}
	// 12 MiB after d: b and c, least recently used, go; a was used again.
	waitMetric(t, m, 2, evictionsMetric)
	stored := harness.StoredBlobs(t, data)
	want := []digest.Digest{digests["a"], digests["d"]}
	slices.Sort(want)
	slices.Sort(stored)
	if !slices.Equal(stored, want) {
		t.Fatalf("store holds %v, want a and d: %v", stored, want)
	}
	if n := m.Metric("blobswarm_mirror_cache_bytes"); n > 10<<20 {
		t.Errorf("cache holds %.0f bytes, over the 10 MiB quota", n)
	}
	getBlob(t, m, o, "team/app", blobs["b"])
	// The origin counts a GET when its handler returns, which can be just
	// after the mirror streamed the last byte on.
	harness.Eventually(t, "the origin to have served the evicted blob again", func() bool {
		return o.BlobGETs(digests["b"]) == 2
	})
	if n := o.BlobGETs(digests["a"]); n != 1 {
		t.Errorf("origin served the kept blob %d times, want 1", n)
	}
}

// mountTmpfs gives the test a filesystem of its own size.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.Missing(t, "a full disk is emulated with a tmpfs mount, which needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		harness.Missing(t, "mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// A blob that does not fit gets a clear 503 before any byte, nothing
// half-written stays, what is cached keeps being served, and the mirror
// serves the blob once there is room again.
func TestDiskFull(t *testing.T) {
	data := mountTmpfs(t, "6m")
	o := harness.NewOrigin(t, origin.Config{})
	m := startMirror(t, data, upstreamFlag(o))
	small, _ := pushBlob(t, o, "team/app", 1<<20)
	big, bigDigest := pushBlob(t, o, "team/app", 8<<20)
	getBlob(t, m, o, "team/app", small)

	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), bigDigest, o.Host())
	resp, body := send(t, http.MethodGet, url)
	msg := wantError(t, "blob larger than the free space", resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	mustContain(t, "error message", msg, "no disk space", bigDigest.String())
	for _, f := range filesUnder(t, data+"/tmp") {
		t.Errorf("partial left behind: %s", f)
	}
	getBlob(t, m, o, "team/app", small)
	// Not worth evicting the small blob for: it would not make room.
	if n := m.Metric(evictionsMetric); n != 0 {
		t.Errorf("%.0f evictions that could not have made room", n)
	}

	if err := unix.Mount("tmpfs", data, "tmpfs", unix.MS_REMOUNT, "size=32m"); err != nil {
		t.Fatal(err)
	}
	getBlob(t, m, o, "team/app", big)
}

// A disk that fills below the quota: the least recently used blob goes to
// make room, and the blob that did not fit is served on the next try.
func TestDiskFullEvictsToMakeRoom(t *testing.T) {
	data := mountTmpfs(t, "6m")
	o := harness.NewOrigin(t, origin.Config{})
	m := startMirror(t, data, upstreamFlag(o))
	var kept [][]byte
	for range 2 {
		b, _ := pushBlob(t, o, "team/app", 2<<20)
		getBlob(t, m, o, "team/app", b)
		kept = append(kept, b)
	}
	big, bigDigest := pushBlob(t, o, "team/app", 3<<20)
	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), bigDigest, o.Host())
	resp, body := send(t, http.MethodGet, url)
	wantError(t, "blob larger than the free space", resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	waitMetric(t, m, 1, evictionsMetric)
	getBlob(t, m, o, "team/app", big)
	// The newer of the two small blobs is still there.
	stored := harness.StoredBlobs(t, data)
	if !slices.Contains(stored, digest.FromBytes(kept[1])) || slices.Contains(stored, digest.FromBytes(kept[0])) {
		t.Errorf("store holds %v: want the older small blob evicted, the newer kept", stored)
	}
}
