//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/testredis"
)

// TestRedisPrimaryKilledMidRollout runs two tracker replicas on a Redis
// primary that three Redis Sentinels watch, with one replica server, and
// kills the primary (SIGKILL) while the hosts are part way through an
// image: the sentinels promote the replica, both trackers are ready again
// on it, and every host gets the image whole from the swarm, the origin
// sending each blob once. A second image, rolled out on the new primary
// alone, costs the origin one copy too.
func TestRedisPrimaryKilledMidRollout(t *testing.T) {
	f := newFaultLab(t)
	set := testredis.StartSentinels(t, testredis.SentinelOptions{
		Host:      f.redisHost(),
		Replicas:  1,
		Sentinels: 3,
	})
	r1 := f.newReplica("tracker1", faultTrackerPort, faultPeerPort)
	r2 := f.newReplica("tracker2", "7071", "6882")
	replicas := []replica{r1, r2}
	for i := range replicas {
		replicas[i].redis = set.URL()
		f.startTracker(t, replicas[i])
	}
	ms := f.startMirrors(t, replicas, "--stall-timeout", "5s")
	image := f.push(t, "team/app:1")
	before := f.originBlobGets(t)

	ctx, cancel := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel()
	done := rollout(ctx, ms, f.registry, image)

	awaitQuarterThrough(t, ms, image)
	old := set.KillPrimary(t)
	t.Logf("killed the Redis primary %s", old)
	select {
	case <-done:
		t.Fatal("the hosts finished before the primary was killed; the test proves nothing")
	default:
	}
	t.Logf("the sentinels promoted %s", set.AwaitFailover(t, old))
	for _, r := range replicas {
		harness.Eventually(t, r.name+" ready on the new primary", func() bool { return f.ready(r) })
	}
	checkPulled(t, ms, <-done)
	logTraffic(t, ms)
	checkFromSwarm(t, ms, image, "after the Redis primary died")
	checkOriginServedOnce(t, f, before, image)

	next := f.push(t, "team/app:2")
	before = f.originBlobGets(t)
	ctx2, cancel2 := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel2()
	checkPulled(t, ms, <-rollout(ctx2, ms, f.registry, next))
	logTraffic(t, ms)
	checkFromSwarm(t, ms, next, "on the new Redis primary")
	checkOriginServedOnce(t, f, before, next)
}

// ready says whether the tracker's /readyz answers 200: it does only
// while its Redis answers.
func (f *faultLab) ready(r replica) bool {
	client := f.origin.HTTPClient()
	client.Timeout = 2 * time.Second
	defer client.CloseIdleConnections()
	resp, err := client.Get(f.url(r) + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
