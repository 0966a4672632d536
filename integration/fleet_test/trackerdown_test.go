package fleet_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestTrackerDown pulls through mirrors whose tracker does not answer,
// first hung (SIGSTOP: connections are accepted and never answered), then
// gone: every mirror falls back to the origin and the pulls succeed, as
// through plain mirrors. Once the tracker is back on its address and data,
// the next image swarms again: the origin serves each of its blobs once.
func TestTrackerDown(t *testing.T) {
	// A hung tracker costs each mirror the upstream timeout per request.
	f := newFleet(t, fleetOptions{mirrors: fleetSize, mirrorArgs: []string{"--upstream-timeout", "3s"}})

	t.Run("hung", func(t *testing.T) {
		if err := syscall.Kill(f.tracker.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		pullWithoutTracker(t, f, f.push(t, "team/app:1", imageLayers, layerSize))
	})

	t.Run("down", func(t *testing.T) {
		f.tracker.Kill()
		pullWithoutTracker(t, f, f.push(t, "team/app:2", imageLayers, layerSize))
	})

	t.Run("back", func(t *testing.T) {
		f.restartTracker(t)
		image := f.push(t, "team/app:3", imageLayers, layerSize)
		fromOrigin := map[*mirror]float64{}
		for _, m := range f.mirrors {
			fromOrigin[m] = m.Metric(receivedMetric, "source", "origin")
		}
		checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
		defer logTraffic(t, f)
		checkOriginServed(t, f, image, 1)
		for _, m := range f.mirrors {
			checkStored(t, m, image)
			if n := m.Metric(receivedMetric, "source", "origin"); n != fromOrigin[m] {
				t.Errorf("%s received %.0f more bytes from the origin with the tracker back", m.name, n-fromOrigin[m])
			}
			if n := fromSwarm(m); n < float64(imageBytes(image)) {
				t.Errorf("%s received %.0f bytes from the swarm, want the whole image (%d)", m.name, n, imageBytes(image))
			}
		}
	})
}

// pullWithoutTracker pulls a new image through every mirror while the
// tracker cannot answer, and checks each mirror fetched each blob from the
// origin once, saying why in its metrics.
func pullWithoutTracker(t *testing.T, f *fleet, image testimage.Pushed) {
	t.Helper()
	type counts struct{ origin, fallbacks float64 }
	before := map[*mirror]counts{}
	for _, m := range f.mirrors {
		before[m] = counts{m.Metric(receivedMetric, "source", "origin"), m.Metric(fallbacksMetric, "reason", "tracker-down")}
	}
	// The bound catches a mirror that waits for the tracker forever; the
	// time the pulls took is logged, not judged.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	results := pullAll(ctx, image, f.mirrors)
	t.Logf("%d pulls without the tracker took %s", len(results), time.Since(start).Round(time.Millisecond))
	checkPulled(t, image, results)
	// One GET per mirror and blob: each mirror fetched each blob once,
	// however many requests it had for it.
	checkOriginServed(t, f, image, len(f.mirrors))
	size, blobs := float64(imageBytes(image)), float64(len(image.Blobs()))
	for _, m := range f.mirrors {
		checkStored(t, m, image)
		if n := m.Metric(receivedMetric, "source", "origin") - before[m].origin; n != size {
			t.Errorf("%s received %.0f bytes from the origin, want the image (%.0f)", m.name, n, size)
		}
		if n := m.Metric(fallbacksMetric, "reason", "tracker-down") - before[m].fallbacks; n != blobs {
			t.Errorf("%s counted %.0f fallbacks for the tracker, want %.0f, one per blob", m.name, n, blobs)
		}
	}
}

// TestTrackerRestart crashes the tracker after a rollout and starts it
// again on the same address and data: it answers for the blobs it knew at
// once, without the origin, and a new mirror gets the image from the
// fleet through it.
func TestTrackerRestart(t *testing.T) {
	f := newFleet(t, fleetOptions{mirrors: fleetSize})
	image := f.push(t, "team/app:1", imageLayers, layerSize)
	checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
	infos := map[digest.Digest][]byte{}
	for _, b := range image.Blobs() {
		infos[b.Digest] = awaitMetainfo(t, f, image, b.Digest)
	}

	// With no wait, a blob the restarted tracker did not know would be
	// answered 202 at once: a 200 proves it knew.
	f.restartTracker(t, "--metainfo-wait", "0s")
	for d, want := range infos {
		resp, err := http.Get(metainfoURL(f.tracker, image, d))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("metainfo of %s after the restart: %s, %d bytes; want 200 and the same %d bytes as before", d, resp.Status, len(body), len(want))
		}
	}
	checkOriginServed(t, f, image, 1)

	late := f.addMirror(t)
	checkPulled(t, image, pullAll(t.Context(), image, []*mirror{late}))
	checkStored(t, late, image)
	checkOriginServed(t, f, image, 1)
	if n := late.Metric(receivedMetric, "source", "origin"); n != 0 {
		t.Errorf("the new mirror received %.0f bytes from the origin, want none", n)
	}
}
