package fleet_test

import (
	"testing"
)

// TestRollout pulls one image through five mirrors at once: the origin
// serves each blob once, to the tracker's seeder, and the mirrors trade
// pieces among themselves. A sixth mirror that joins afterwards gets the
// whole image from the fleet.
func TestRollout(t *testing.T) {
	f := newFleet(t, fleetOptions{mirrors: fleetSize})
	image := f.push(t, "team/app:1", imageLayers, layerSize)
	size := float64(imageBytes(image))

	t.Run("five at once", func(t *testing.T) {
		checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
		defer logTraffic(t, f)
		checkOriginServed(t, f, image, 1)
		var uploaded, fromSeeder float64
		for _, m := range f.mirrors {
			checkStored(t, m, image)
			if n := m.Metric(receivedMetric, "source", "origin"); n != 0 {
				t.Errorf("%s received %.0f bytes from the origin; the tracker's seeder should be the only one asking it", m.name, n)
			}
			if n := fromSwarm(m); n < size {
				t.Errorf("%s received %.0f bytes from the swarm, want the whole image (%.0f)", m.name, n, size)
			}
			if n := m.Metric(receivedMetric, "source", "peers"); n == 0 {
				t.Errorf("%s received nothing from other mirrors, only from the seeder", m.name)
			}
			uploaded += m.Metric(uploadedMetric)
			fromSeeder += m.Metric(receivedMetric, "source", "seeder")
		}
		if uploaded == 0 {
			t.Error("no mirror uploaded anything: the seeder served the whole fleet alone")
		}
		t.Logf("the tracker's seeder sent %.2fx the image, the mirrors %.2fx", fromSeeder/size, uploaded/size)
		// The seeder hands each piece to one mirror and lets the fleet
		// trade it: what the origin's host sends is about one image.
		if sent := f.tracker.Metric(seederUploadedMetric); sent > 1.25*size || sent < size {
			t.Errorf("the tracker's seeder sent %.2fx the image, want about 1x", sent/size)
		}
	})

	t.Run("late joiner", func(t *testing.T) {
		late := f.addMirror(t)
		checkPulled(t, image, pullAll(t.Context(), image, []*mirror{late}))
		checkStored(t, late, image)
		checkOriginServed(t, f, image, 1)
		if n := late.Metric(receivedMetric, "source", "origin"); n != 0 {
			t.Errorf("the late mirror received %.0f bytes from the origin, want none", n)
		}
		if n := fromSwarm(late); n < size {
			t.Errorf("the late mirror received %.0f bytes from the swarm, want the whole image (%.0f)", n, size)
		}
		// The fleet has it all: the seeder leaves the newcomer to them
		// (a piece or two if it waited out its patience at most).
		if n := late.Metric(receivedMetric, "source", "seeder"); n > size/10 {
			t.Errorf("the late mirror received %.0f bytes from the tracker's seeder, want them from the other mirrors", n)
		}
	})
}

// TestRolloutOfALayerOverSixtyFourMiB pulls an image with one 72 MiB
// layer through three mirrors: every byte of it comes from the swarm. The
// swarm library's default cap on unverified bytes (64 MiB) once kept the
// mirrors from asking for the pieces the seeder offered; each waited out
// its stall timer and took the layer from the origin.
func TestRolloutOfALayerOverSixtyFourMiB(t *testing.T) {
	f := newFleet(t, fleetOptions{mirrors: 3})
	image := f.push(t, "team/big:1", 1, 72<<20)
	checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
	checkOriginServed(t, f, image, 1)
	for _, m := range f.mirrors {
		checkStored(t, m, image)
		if n := m.Metric(fallbacksMetric); n != 0 {
			t.Errorf("%s fell back to the origin %.0f times", m.name, n)
		}
		if n := fromSwarm(m); n < float64(imageBytes(image)) {
			t.Errorf("%s received %.0f bytes from the swarm, want the whole image (%d)", m.name, n, imageBytes(image))
		}
	}
}
