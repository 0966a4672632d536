package mirror_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// hangBound bounds a wait for something that must happen: it catches a
// hang, it is not a speed check.
const hangBound = 30 * time.Second

// startHeld GETs a blob through the mirror in the background and returns
// once the answer's headers are in: the mirror's fetch of it is under way
// and holds its slot. The body is left unread until the test ends.
func startHeld(t *testing.T, m *harness.Process, o *harness.Origin, repo string, d digest.Digest) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/blobs/%s?ns=%s", m.URL(), repo, d, o.Host())
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", d, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", d, resp.StatusCode)
	}
}

// A registry that trickles holds only its own fetch slots: with every
// slot of a slow registry taken, a blob of another registry is served,
// and the slow registry still sees no more fetches than its slots.
func TestSlowRegistryHoldsOnlyItsOwnFetchSlots(t *testing.T) {
	t.Parallel()
	valve := harness.NewValve(1 << 10)
	slow := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	t.Cleanup(valve.Open)
	fast := harness.NewOrigin(t, origin.Config{})
	var held []digest.Digest
	for range 3 {
		_, d := pushBlob(t, slow, "team/app", 64<<10)
		held = append(held, d)
	}
	want, _ := pushBlob(t, fast, "team/app", 64<<10)
	m := startMirror(t, t.TempDir(), upstreamFlag(slow), upstreamFlag(fast), "--max-concurrent-fetches=2")

	startHeld(t, m, slow, "team/app", held[0])
	startHeld(t, m, slow, "team/app", held[1])
	// The third waits for a slot of its registry, without an answer yet.
	go try(t.Context(), http.MethodGet, fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), held[2], slow.Host()))
	waitMetric(t, m, 3, inflightMetric)

	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), digest.FromBytes(want), fast.Host())
	resp, body, err := try(ctx, http.MethodGet, url)
	if err != nil {
		t.Fatalf("a blob of another registry while the slow one holds its fetch slots: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("a blob of another registry: status %d, %d bytes; want 200 and the %d-byte blob", resp.StatusCode, len(body), len(want))
	}
	if n := slow.TotalBlobGETs(); n != 2 {
		t.Errorf("the slow registry got %d blob GETs, want 2: one per fetch slot", n)
	}
}

// A blob whose upstream stops sending is given up after
// fetch-idle-timeout: the client's answer breaks instead of ending as if
// complete, nothing half-written stays, and the fetch slot is free for
// the next blob. Once the upstream sends again, the blob is served whole.
func TestStalledUpstreamBodyIsAbandoned(t *testing.T) {
	t.Parallel()
	valve := harness.NewValve(1 << 10)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	t.Cleanup(valve.Open)
	first, firstDigest := pushBlob(t, o, "team/app", 64<<10)
	_, secondDigest := pushBlob(t, o, "team/app", 64<<10)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), "--max-concurrent-fetches=1", "--fetch-idle-timeout=1s")

	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), firstDigest, o.Host())
	resp, body, err := try(ctx, http.MethodGet, url)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the answer of a blob whose upstream stopped sending neither ended nor broke within %s", hangBound)
	case err == nil:
		t.Fatalf("the answer of a blob whose upstream stopped sending ended cleanly: status %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, f := range filesUnder(t, data+"/tmp") {
		t.Errorf("partial left behind: %s", f)
	}
	// The one slot is free again: the next blob's fetch starts.
	startHeld(t, m, o, "team/app", secondDigest)

	valve.Open()
	getBlob(t, m, o, "team/app", first)
	if n := o.BlobGETs(firstDigest); n != 2 {
		t.Errorf("origin served the abandoned blob %d times, want 2", n)
	}
}
