package tracker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// hangBound bounds a wait for something that must happen: it catches a
// hang, it is not a speed check.
const hangBound = 30 * time.Second

// partials lists the partial files under a store's data directory.
func partials(t *testing.T, data string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(data, "tmp", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// An origin that stops sending while the seeder reads a blob is given up
// after fetch-idle-timeout: the blob's piece-hash stream breaks instead of
// waiting for ever, nothing half-written stays, and once the origin sends
// again the next ask fetches the blob whole.
func TestStalledOriginBodyIsAbandoned(t *testing.T) {
	t.Parallel()
	o, valve := harness.NewHeldOrigin(t, 64<<10)
	b, d := harness.PushRandomBlob(t, o, "app", 4<<20)
	data := t.TempDir()
	tr := harness.Start(t, "tracker", trackerArgs(o, data, "--fetch-idle-timeout", "1s")...)
	awaitMetainfo(t, tr, o.Host(), "app", d)

	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, piecesURL(tr, o.Host(), "app", d), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the piece hashes of a blob whose origin stopped sending neither ended nor broke within %s", hangBound)
	case err == nil && resp.StatusCode == http.StatusOK:
		t.Fatal("the piece-hash stream of a blob whose origin stopped sending ended cleanly")
	}
	for _, f := range partials(t, data) {
		t.Errorf("partial left behind: %s", f)
	}

	valve.Open()
	want := harness.PieceSums(t, d, b)
	harness.Eventually(t, "the blob fetched again", func() bool {
		resp, body := get(t, piecesURL(tr, o.Host(), "app", d))
		return resp.StatusCode == http.StatusOK && bytes.Equal(body, want)
	})
	if n := o.BlobGETs(d); n != 2 {
		t.Errorf("origin served the blob %d times, want 2", n)
	}
}

// A tracker whose seeder has as many blobs waiting for the origin as
// origin-queue lets wait is busy: it answers 503 BUSY with
// Retry-After in the OCI error format, starts nothing for the blob, and a
// mirror asking it for that blob goes to the origin itself. Fetches at
// the origin never outnumber origin-fetches, nor do partial files.
func TestBusyTrackerSendsMirrorsToTheOrigin(t *testing.T) {
	t.Parallel()
	o, _ := harness.NewHeldOrigin(t, 64<<10)
	_, held := harness.PushRandomBlob(t, o, "app", 4<<20)
	_, waiting := harness.PushRandomBlob(t, o, "app", 4<<20)
	small, refused := harness.PushRandomBlob(t, o, "app", 16<<10) // within what the valve passes
	data := t.TempDir()
	tr := harness.Start(t, "tracker", trackerArgs(o, data, "--origin-fetches", "1", "--origin-queue", "1", "--fetch-idle-timeout", "10m")...)

	// The first blob's fetch has its answer's headers, and holds the one
	// fetch allowed; the second waits for it.
	awaitMetainfo(t, tr, o.Host(), "app", held)
	if resp, body := get(t, metainfoURL(tr, o.Host(), "app", waiting)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("metainfo of a blob waiting for an origin fetch: HTTP %d %s, want 202", resp.StatusCode, body)
	}
	resp, body := get(t, metainfoURL(tr, o.Host(), "app", refused))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("metainfo with the origin queue full: HTTP %d, Retry-After %q, want 503 and a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := api.DecodeError(withBody(resp, body)); !strings.Contains(err.Error(), "busy") || !isBusy(err) {
		t.Errorf("busy answer: %v, want BUSY saying the tracker is busy", err)
	}
	if n := len(partials(t, data)); n != 1 {
		t.Errorf("%d partial files on the tracker with one origin fetch allowed, want 1", n)
	}

	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", tr.URL(), "--peer-listen", "127.0.0.1:0",
		"--upstream", o.Host()+"="+o.Server.URL)
	resp, body = get(t, m.URL()+"/v2/app/blobs/"+refused.String()+"?ns="+o.Host())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, small) {
		t.Fatalf("the blob through a mirror of the busy tracker: HTTP %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := m.Metric("blobswarm_mirror_origin_fallbacks_total", "reason", "tracker-busy"); n != 1 {
		t.Errorf("%.0f origin fallbacks counted as the tracker busy, want 1", n)
	}
	if n := o.BlobGETs(refused); n != 1 {
		t.Errorf("the origin served the refused blob %d times, want once, to the mirror", n)
	}
	if n := o.BlobGETs(waiting); n != 0 {
		t.Errorf("the origin served the waiting blob %d times, want none yet", n)
	}
}

// withBody gives a response whose body was read its body back.
func withBody(resp *http.Response, body []byte) *http.Response {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// isBusy reports whether err is the tracker's error BUSY.
func isBusy(err error) bool {
	var e errcode.Error
	return errors.As(err, &e) && e.Code == api.ErrorCodeBusy
}

// Past its quota the tracker evicts the blobs least recently asked for,
// whole, down to the low watermark, as a mirror does; an evicted blob is
// fetched from the origin again when next asked for.
func TestTrackerQuotaEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	blobs := map[string][]byte{}
	digests := map[string]digest.Digest{}
	for _, name := range []string{"a", "b", "c", "d"} {
		blobs[name], digests[name] = harness.PushRandomBlob(t, o, "app", 3<<20)
	}
	data := t.TempDir()
	// 10 MiB: eviction above 9.5 MiB, down to 8.5 MiB.
	tr := harness.Start(t, "tracker", trackerArgs(o, data, "--cache-size", "10MiB")...)
	for _, name := range []string{"a", "b", "c"} {
		awaitPieces(t, tr, o.Host(), "app", digests[name])
	}
	awaitMetainfo(t, tr, o.Host(), "app", digests["a"]) // used again
	awaitPieces(t, tr, o.Host(), "app", digests["d"])
	// 12 MiB with d: b and c, least recently asked for, go.
	harness.Eventually(t, "two evictions", func() bool {
		return tr.Metric("blobswarm_tracker_cache_evictions_total") >= 2
	})
	if stored := harness.StoredBlobs(t, data); len(stored) != 2 || !slices.Contains(stored, digests["a"]) || !slices.Contains(stored, digests["d"]) {
		t.Fatalf("tracker stores %v, want a (%s) and d (%s)", stored, digests["a"], digests["d"])
	}
	// Evicted, b is fetched and seeded again.
	if got := awaitPieces(t, tr, o.Host(), "app", digests["b"]); !bytes.Equal(got, harness.PieceSums(t, digests["b"], blobs["b"])) {
		t.Error("piece hashes of the evicted blob, fetched again, differ from its own")
	}
	if n := o.BlobGETs(digests["b"]); n != 2 {
		t.Errorf("origin served the evicted blob %d times, want 2", n)
	}
	if n := o.BlobGETs(digests["a"]); n != 1 {
		t.Errorf("origin served the kept blob %d times, want 1", n)
	}
}

// A blob larger than the tracker's quota is refused before anything is
// stored: 503 BUSY naming the quota, no partial file.
func TestTrackerRefusesABlobOverItsQuota(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	_, d := harness.PushRandomBlob(t, o, "app", 4<<20)
	data := t.TempDir()
	tr := harness.Start(t, "tracker", trackerArgs(o, data, "--cache-size", "1MiB")...)
	var resp *http.Response
	var body []byte
	harness.Eventually(t, "an answer other than 202", func() bool {
		resp, body = get(t, metainfoURL(tr, o.Host(), "app", d))
		return resp.StatusCode != http.StatusAccepted
	})
	err := api.DecodeError(withBody(resp, body))
	if resp.StatusCode != http.StatusServiceUnavailable || !isBusy(err) || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("metainfo of a blob over the quota: HTTP %d %v, want 503 BUSY naming the quota", resp.StatusCode, err)
	}
	for _, f := range partials(t, data) {
		t.Errorf("partial left behind: %s", f)
	}
	if stored := harness.StoredBlobs(t, data); len(stored) != 0 {
		t.Errorf("tracker stores %v", stored)
	}
}
