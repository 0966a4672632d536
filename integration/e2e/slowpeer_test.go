//go:build e2e

package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// slowUpload is the slow host's uplink, a fiftieth of the others': a peer
// that waits on it for a piece waits seconds.
const slowUpload netlab.Rate = 1_000_000

const uploadedMetric = "blobswarm_mirror_uploaded_bytes_total"

// TestSlowPeer throttles one host's upload to 1 Mbit/s (its download stays
// fast) and rolls an image out to it and three others at once: the others
// finish about as fast as the whole fleet did the image before with every
// link normal, every host gets the image whole and verified from the swarm,
// without falling back to the origin, the origin sends each blob once, and
// the slow host gets the image too.
func TestSlowPeer(t *testing.T) {
	f := newFaultLab(t)
	tr := f.newReplica("tracker", faultTrackerPort, faultPeerPort)
	f.startTracker(t, tr)
	ms := f.startMirrors(t, []replica{tr})
	// The slow host is ms[0]; took[1:] times the others.
	slow := ms[0]

	first := f.push(t, "team/app:1")
	before := f.originBlobGets(t)
	errs, took := timedRollout(t, ms, f.registry, first)
	checkPulled(t, ms, errs)
	baseline := slices.Max(took)
	t.Logf("baseline, every link at %s: fleet done in %s (per host %v)", netlab.Rate(faultLink), baseline, took)
	logTraffic(t, ms)
	checkFromSwarm(t, ms, first, "with every link normal")
	checkOriginServedOnce(t, f, before, first)

	if err := f.lab.SetUploadRate(t.Context(), slow.host, slowUpload); err != nil {
		t.Fatal(err)
	}
	qdisc, _, err := f.lab.Qdiscs(t.Context(), slow.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s's upload throttled to %s: %s", slow.host.Name, slowUpload, qdisc)

	next := f.push(t, "team/app:2")
	before = f.originBlobGets(t)
	uploaded := slow.metric(t, uploadedMetric)
	sent, err := slow.host.Counters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	errs, took = timedRollout(t, ms, f.registry, next)
	elapsed := time.Since(start)
	checkPulled(t, ms, errs)
	logTraffic(t, ms)

	// Unless the others took pieces from the slow host, it could not have
	// held them up.
	uploaded = slow.metric(t, uploadedMetric) - uploaded
	if uploaded <= 0 {
		t.Fatalf("%s uploaded nothing while the others pulled the image; the test proves nothing", slow.host.Name)
	}
	// Nor could it if its link was not slow.
	now, err := slow.host.Counters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wire := float64(now.TxBytes - sent.TxBytes)
	if limit := slowUpload.BytesPerSecond()*elapsed.Seconds()*1.1 + 256<<10; wire > limit {
		t.Fatalf("%s sent %.2f MiB in %s, more than a %s link carries; the test proves nothing",
			slow.host.Name, wire/(1<<20), elapsed.Round(time.Millisecond), slowUpload)
	}
	t.Logf("%s uploaded %.2f MiB of pieces (%.2f MiB on the wire) in %s", slow.host.Name,
		uploaded/(1<<20), wire/(1<<20), elapsed.Round(time.Millisecond))

	othersTook := slices.Max(took[1:])
	t.Logf("with %s slow: the others done in %s (per host %v), %s in %s; baseline %s",
		slow.host.Name, othersTook, took[1:], slow.host.Name, took[0], baseline)
	if bound := 2*baseline + 5*time.Second; othersTook > bound {
		t.Errorf("the others took %s with %s slow, more than %s (twice the baseline %s, plus 5s): the slow host held them up",
			othersTook, slow.host.Name, bound, baseline)
	}
	checkFromSwarm(t, ms, next, "with "+slow.host.Name+" slow")
	checkOriginServedOnce(t, f, before, next)
}

// timedRollout pulls the image through every mirror at once, each pull
// bounded by rolloutBound so a hung one fails, and returns each mirror's
// error and how long its pull took from the start of the rollout.
func timedRollout(t *testing.T, ms []*faultMirror, registry string, image testimage.Pushed) ([]error, []time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel()
	errs := make([]error, len(ms))
	took := make([]time.Duration, len(ms))
	start := time.Now()
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			errs[i] = pullThrough(ctx, m, registry, image)
			took[i] = time.Since(start).Round(time.Millisecond)
		})
	}
	wg.Wait()
	return errs, took
}
