package fleet_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestStalledSwarmTakesOnlyMissingPieces kills the tracker, and with it
// the only seeder, while a mirror is a quarter through a blob: the swarm
// stalls, and the mirror asks the origin for the pieces it lacks only (one
// Range request each), not the whole blob again. The client gets the
// exact bytes.
func TestStalledSwarmTakesOnlyMissingPieces(t *testing.T) {
	// The seeder's cap keeps the download in the middle for a while.
	f := newFleet(t, fleetOptions{
		mirrors:     1,
		trackerArgs: []string{"--upload-rate", strconv.Itoa(2 << 20)},
		mirrorArgs:  []string{"--stall-timeout", "2s"},
	})
	m := f.mirrors[0]
	const size = 12 << 20 // 256 KiB pieces
	blob := make([]byte, size)
	rand.Read(blob)
	d, _, err := harness.PushBlob(t.Context(), f.origin.Server.URL, "team/app", bytes.NewReader(blob), digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}

	got := make(chan []byte, 1)
	go func() {
		url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), d, f.origin.Host())
		resp, err := http.Get(url)
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- b
	}()
	harness.Eventually(t, "a quarter of the blob from the seeder", func() bool {
		return m.Metric(receivedMetric, "source", "seeder") >= size/4
	})
	// The seeder has fetched its copy by now; what the origin sends from
	// here on is the mirror's fallback.
	sentBefore := f.origin.BlobBytesSent()
	f.tracker.Kill()
	fromSwarm := m.Metric(receivedMetric, "source", "seeder")

	if b := <-got; !bytes.Equal(b, blob) {
		t.Fatalf("client got %d bytes that are not the blob", len(b))
	}
	checkStoredBlobs(t, m, d)
	if n := m.Metric(fallbacksMetric, "reason", "pieces"); n != 1 {
		t.Fatalf("%.0f piece fallbacks after the swarm stalled, want 1", n)
	}
	if n := m.Metric(fallbacksMetric, "reason", "swarm"); n != 0 {
		t.Fatalf("%.0f whole-blob fallbacks after the swarm stalled, want none", n)
	}
	var sent int64
	harness.Eventually(t, "the origin to count the pieces", func() bool {
		sent = f.origin.BlobBytesSent() - sentBefore
		return m.Metric(receivedMetric, "source", "origin") == float64(sent)
	})
	t.Logf("swarm delivered %.0f bytes before the kill; the origin then sent %d of %d in %d requests",
		fromSwarm, sent, size, f.origin.BlobGETs(d)-1)
	// Pieces the seeder had begun to send when it died come whole from
	// the origin; a restart from zero would send all 12 MiB.
	if slack := int64(2 << 20); sent > size-int64(fromSwarm)+slack {
		t.Errorf("origin sent %d bytes of a %d-byte blob after the swarm delivered %.0f: more than the missing pieces", sent, size, fromSwarm)
	}
}
