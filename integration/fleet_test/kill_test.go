package fleet_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestMirrorKilledMidTransfer kills one mirror with SIGKILL while it and
// the others are half way through the image and trading with each other:
// the others still get the whole image, from the swarm, and the dead
// mirror's store holds nothing half-written.
func TestMirrorKilledMidTransfer(t *testing.T) {
	// Upload caps on every node keep the mirrors in the middle of the
	// image for a few seconds, so the kill lands while pieces are being
	// traded. (Not download caps: anacrolix's download limiter reserves at
	// the time a read started, so several connections overrun it.)
	rate := []string{"--upload-rate", strconv.Itoa(8 << 20)}
	f := newFleet(t, fleetOptions{mirrors: fleetSize, mirrorArgs: rate, trackerArgs: rate})
	image := f.push(t, "team/app:1", imageLayers, 8<<20)
	size := float64(imageBytes(image))
	victim, others := f.mirrors[0], f.mirrors[1:]

	// The bound catches a hang; it is not a speed check.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	victimCtx, stopVictim := context.WithCancel(ctx)
	victimDone := make(chan struct{})
	go func() { pullAll(victimCtx, image, []*mirror{victim}); close(victimDone) }()
	othersDone := make(chan []pullResult, 1)
	go func() { othersDone <- pullAll(ctx, image, others) }()

	// Killed once it holds a quarter of the image and has passed pieces
	// on: the others are then counting on it.
	harness.Eventually(t, "the victim to be a quarter through and uploading", func() bool {
		return fromSwarm(victim) >= size/4 && victim.Metric(uploadedMetric) > 0
	})
	if victim.Metric(inflightMetric) == 0 {
		t.Fatal("the victim had every blob before the kill; the test proves nothing")
	}
	select {
	case <-othersDone:
		t.Fatal("the other mirrors finished before the kill; the test proves nothing")
	default:
	}
	// Its client goes first: containerd would finish the pull at the
	// registry itself, the last host it knows, which would blur what the
	// origin served to the fleet.
	stopVictim()
	<-victimDone
	victim.Kill()

	results := <-othersDone
	// The dead mirror has no metrics left to show.
	f.mirrors = others
	defer logTraffic(t, f)
	checkPulled(t, image, results)
	for _, m := range others {
		checkStored(t, m, image)
		// The seeder re-offers what the dead mirror held or was getting,
		// so nobody waits for the stall watchdog and the origin.
		if n := m.Metric(fallbacksMetric); n != 0 {
			t.Errorf("%s fell back to the origin %.0f times after a peer died", m.name, n)
		}
	}
	checkOriginServed(t, f, image, 1)
	// Whatever the dead mirror stored, it stored whole.
	harness.StoredBlobs(t, victim.data)
}
