package fleet_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// A lazy-pull snapshotter (SOCI, stargz) reads a layer in ranges: the
// footer and table of contents at its end first, then the chunks the
// container opens, scattered through it. These are such reads of a 24 MiB
// layer: offsets from its start, or from its end when negative.
var lazyReads = []lazyRead{
	{"footer", -51, 51},
	{"table of contents", -(1 << 20) - 51, 1 << 20},
	{"chunk", 3 << 20, 64 << 10},
	{"chunk", 17<<20 + 12345, 200 << 10},
	{"chunk", 9 << 20, 32 << 10},
}

// lazyRead is n bytes at off, counted from the layer's end when negative.
type lazyRead struct {
	what   string
	off, n int64
}

// rangeOf is the read's Range header and first offset in a layer of size
// bytes.
func (r lazyRead) rangeOf(size int64) (string, int64) {
	off := r.off
	if off < 0 {
		off += size
	}
	return fmt.Sprintf("bytes=%d-%d", off, off+r.n-1), off
}

// TestLazyPullReadsRangesFromPeers makes those reads through a mirror that
// has none of the layer, in a fleet where a peer has it. Each range is the
// layer's own bytes and comes from the swarm; the first comes before the
// rest of the layer: the mirror asks for the pieces its reader waits for
// first. The layer still arrives whole in the end, and the origin served
// it once, to the tracker's seeder.
func TestLazyPullReadsRangesFromPeers(t *testing.T) {
	// At 2 MiB/s from each of the two hosts that have it (the mirror and
	// the tracker), the layer takes a new mirror 6 s; the pieces of the
	// reads above are about 2 MiB.
	const uploadRate = 2 << 20
	// Ranges before the blob's own digest check need hashes the fleet's
	// key vouches for.
	secret := writeSecretFile(t, t.TempDir(), "secret", "fleet-lazy-3c9f01")
	f := newFleet(t, fleetOptions{
		mirrors:     1,
		trackerArgs: []string{"--secret-file", secret, "--upload-rate", strconv.Itoa(uploadRate)},
		mirrorArgs:  []string{"--tracker-secret-file", secret, "--upload-rate", strconv.Itoa(uploadRate)},
	})
	image := f.push(t, "team/lazy:1", 1, 24<<20)
	checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
	layer := image.Images[0].Layers[0]
	want := readBlob(t, f, f.mirrors[0].URL(), image.Repository, layer.Digest, "")

	lazy := f.addMirror(t)
	start := time.Now()
	defer logTraffic(t, f)
	for i, r := range lazyReads {
		rng, off := r.rangeOf(layer.Size)
		got := readBlob(t, f, lazy.URL(), image.Repository, layer.Digest, rng)
		if string(got) != string(want[off:off+r.n]) {
			t.Fatalf("%s at %d: %d bytes that are not the layer's", r.what, off, len(got))
		}
		t.Logf("%s, %d bytes at %d: in %s", r.what, r.n, off, time.Since(start).Round(time.Millisecond))
		if i > 0 {
			continue
		}
		if n := fromSwarm(lazy); n > float64(layer.Size)/2 {
			t.Fatalf("the first range was answered once the mirror had %.0f of the layer's %d bytes, not before", n, layer.Size)
		}
	}
	if n := fromSwarm(lazy); n == 0 {
		t.Error("the ranges did not come from the swarm")
	}
	checkStoredBlobs(t, lazy, layer.Digest)
	if n := lazy.Metric(receivedMetric, "source", "origin"); n != 0 {
		t.Errorf("the lazy mirror received %.0f bytes from the origin, want none", n)
	}
	checkOriginServed(t, f, image, 1)
	t.Logf("whole layer stored after %s", time.Since(start).Round(time.Millisecond))
}

// readBlob GETs a blob of repo on the fleet's origin from base (a
// mirror's URL, or the origin's), the range rng of it if not empty, and
// fails the test unless the answer is the blob's (200) or the range's
// (206).
func readBlob(t testing.TB, f *fleet, base, repo string, d digest.Digest, rng string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.String()+"?ns="+f.origin.Host(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := http.StatusOK
	if rng != "" {
		req.Header.Set("Range", rng)
		wantStatus = http.StatusPartialContent
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != wantStatus {
		t.Fatalf("GET %s (%s) from %s: %s, %d bytes, %v", d, rng, base, resp.Status, len(b), err)
	}
	return b
}
