package tracker_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
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
	valve := harness.NewValve(64 << 10)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	t.Cleanup(valve.Open)
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
