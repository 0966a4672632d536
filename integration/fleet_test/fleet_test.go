// Package fleet_test runs a whole blobswarm fleet as real processes on
// loopback: an origin registry that counts the blob GETs it serves, a
// `blobswarm tracker`, several `blobswarm mirror`s, and containerd's
// resolver pulling the same image through every mirror at once.
package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/pull"
	"github.com/blobswarm/blobswarm/tracker/api"
)

func TestMain(m *testing.M) { harness.Main(m) }

// Metrics the mirrors export.
const (
	receivedMetric  = "blobswarm_mirror_received_bytes_total"
	uploadedMetric  = "blobswarm_mirror_uploaded_bytes_total"
	bannedMetric    = "blobswarm_mirror_banned_peers"
	fallbacksMetric = "blobswarm_mirror_origin_fallbacks_total"
	inflightMetric  = "blobswarm_mirror_inflight_fetches"

	seederUploadedMetric = "blobswarm_tracker_seeder_uploaded_bytes_total"
)

// fleetSize is the number of mirrors a rollout pulls through.
const fleetSize = 5

// The test image: enough 256 KiB pieces per layer (see torrentmeta) that
// mirrors have something to trade while they download.
const (
	imageLayers = 3
	layerSize   = 12 << 20
)

// fleet is an origin, a tracker in front of it and mirrors using both.
type fleet struct {
	origin      *harness.Origin
	tracker     *harness.Process
	trackerData string
	trackerArgs []string
	mirrorArgs  []string
	mirrors     []*mirror
}

// mirror is a mirror process and its data directory.
type mirror struct {
	*harness.Process
	name string
	data string
}

// fleetOptions shape a fleet: how many mirrors to start, and flags for
// the tracker and the mirrors on top of those every fleet has.
type fleetOptions struct {
	mirrors     int
	trackerArgs []string
	mirrorArgs  []string
	// trackerTLS, when set, is a client trusting the tracker's HTTPS
	// certificate (trackerArgs must then give --tls-cert and --tls-key).
	trackerTLS *http.Client
	// wrapOrigin, when set, wraps the origin's handler (to slow it down).
	wrapOrigin func(http.Handler) http.Handler
}

// newFleet starts an origin, a tracker and the mirrors.
func newFleet(t testing.TB, opt fleetOptions) *fleet {
	t.Helper()
	f := &fleet{origin: harness.NewOriginWith(t, origin.Config{}, opt.wrapOrigin)}
	upstream := f.origin.Host() + "=" + f.origin.Server.URL
	f.trackerData = t.TempDir()
	f.trackerArgs = append([]string{
		"--data", f.trackerData,
		"--peer-listen", "127.0.0.1:0",
		"--upstream", upstream,
	}, opt.trackerArgs...)
	if opt.trackerTLS != nil {
		f.tracker = harness.StartTLS(t, opt.trackerTLS, "tracker", f.trackerArgs...)
	} else {
		f.tracker = harness.Start(t, "tracker", f.trackerArgs...)
	}
	f.mirrorArgs = append([]string{
		"--tracker", f.tracker.URL(),
		"--peer-listen", "127.0.0.1:0",
		"--upstream", upstream,
	}, opt.mirrorArgs...)
	for range opt.mirrors {
		f.addMirror(t)
	}
	return f
}

// addMirror starts one more mirror with the fleet's flags.
func (f *fleet) addMirror(t testing.TB) *mirror {
	t.Helper()
	data := t.TempDir()
	p := harness.Start(t, "mirror", append([]string{"--data", data}, f.mirrorArgs...)...)
	m := &mirror{Process: p, name: fmt.Sprintf("mirror %d", len(f.mirrors)+1), data: data}
	f.mirrors = append(f.mirrors, m)
	return m
}

// restartTracker kills the tracker as a crash would and starts it again
// on the same address and data directory, with extra flags if given.
func (f *fleet) restartTracker(t *testing.T, extra ...string) {
	t.Helper()
	f.tracker.Kill()
	f.tracker = harness.StartAt(t, f.tracker.Addr, "tracker", append(slices.Clone(f.trackerArgs), extra...)...)
}

// push puts a fresh image of the given shape on the origin as repo:tag.
func (f *fleet) push(t testing.TB, repoTag string, layers int, size int64) testimage.Pushed {
	t.Helper()
	p, err := testimage.PushImage(t.Context(), f.origin.Host()+"/"+repoTag, layers, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pullResult is one client's pull through one mirror.
type pullResult struct {
	mirror *mirror
	pull.Result
	err error
}

// pullAll pulls the image through every given mirror at once with
// containerd's resolver. The image's registry is the origin's host, so
// the mirrors get ?ns= and route to it. Every manifest and blob a client
// reads is checked against its digest.
func pullAll(ctx context.Context, image testimage.Pushed, mirrors []*mirror) []pullResult {
	results := make([]pullResult, len(mirrors))
	var wg sync.WaitGroup
	for i, m := range mirrors {
		wg.Go(func() {
			r, err := pull.Image(ctx, image.Ref, pull.Options{MirrorURL: m.URL()})
			results[i] = pullResult{mirror: m, Result: r, err: err}
		})
	}
	wg.Wait()
	return results
}

// checkPulled fails the test unless every pull got the whole image.
func checkPulled(t testing.TB, image testimage.Pushed, results []pullResult) {
	t.Helper()
	want := len(image.Blobs()) + 1 // and the manifest
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("pull through %s: %v", r.mirror.name, r.err)
		case r.Digest != image.Top.Digest.String() || r.Blobs != want:
			t.Errorf("pull through %s got %s with %d blobs, want %s with %d", r.mirror.name, r.Digest, r.Blobs, image.Top.Digest, want)
		default:
			t.Logf("pull through %s: %d blobs, %d bytes verified in %s", r.mirror.name, r.Blobs, r.Bytes, r.Duration.Round(time.Millisecond))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// imageBytes is the size of an image's config and layers together.
func imageBytes(image testimage.Pushed) int64 {
	var n int64
	for _, b := range image.Blobs() {
		n += b.Size
	}
	return n
}

// checkOriginServed fails unless the origin served every blob of the image
// exactly n times.
func checkOriginServed(t *testing.T, f *fleet, image testimage.Pushed, n int) {
	t.Helper()
	for _, b := range image.Blobs() {
		if got := f.origin.BlobGETs(b.Digest); got != n {
			t.Errorf("origin served %s %d times, want %d", b.Digest, got, n)
		}
	}
}

// checkStored waits until a mirror has committed what it fetched and fails
// unless its store holds every blob of the image, each hashing to its
// digest, and nothing half-written is left behind.
func checkStored(t *testing.T, m *mirror, image testimage.Pushed) {
	t.Helper()
	var ds []digest.Digest
	for _, b := range image.Blobs() {
		ds = append(ds, b.Digest)
	}
	checkStoredBlobs(t, m, ds...)
}

// checkStoredBlobs is checkStored for the given blobs.
func checkStoredBlobs(t *testing.T, m *mirror, ds ...digest.Digest) {
	t.Helper()
	harness.Eventually(t, m.name+" done fetching", func() bool { return m.Metric(inflightMetric) == 0 })
	if partial, err := os.ReadDir(filepath.Join(m.data, "tmp")); err != nil || len(partial) != 0 {
		t.Errorf("%s: tmp/ holds %d partial files (%v) after every fetch ended", m.name, len(partial), err)
	}
	stored := harness.StoredBlobs(t, m.data)
	for _, d := range ds {
		if !slices.Contains(stored, d) {
			t.Errorf("%s did not store %s", m.name, d)
		}
	}
}

// fromSwarm is what a mirror received over BitTorrent: from the tracker's
// seeder and from other mirrors.
func fromSwarm(m *mirror) float64 {
	return m.Metric(receivedMetric, "source", "peers") + m.Metric(receivedMetric, "source", "seeder")
}

// logTraffic prints where each mirror's bytes came from.
func logTraffic(t *testing.T, f *fleet) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %12s %12s %12s %12s %9s\n", "", "origin", "seeder", "peers", "uploaded", "fallbacks")
	for _, m := range f.mirrors {
		fmt.Fprintf(&b, "%-10s %12.0f %12.0f %12.0f %12.0f %9.0f\n", m.name,
			m.Metric(receivedMetric, "source", "origin"), m.Metric(receivedMetric, "source", "seeder"),
			m.Metric(receivedMetric, "source", "peers"), m.Metric(uploadedMetric), m.Metric(fallbacksMetric))
	}
	t.Logf("bytes per mirror:\n%s", b.String())
}

// metainfoURL is the tracker's metainfo endpoint for one blob of image.
func metainfoURL(tr *harness.Process, image testimage.Pushed, d digest.Digest) string {
	registry, _, _ := strings.Cut(image.Ref, "/")
	q := url.Values{"registry": {registry}, "repo": {image.Repository}, "digest": {d.String()}}
	return tr.URL() + api.MetainfoPath + "?" + q.Encode()
}
