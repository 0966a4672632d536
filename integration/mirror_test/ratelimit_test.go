package mirror_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// A registry that starts answering 429 Too Many Requests with a
// Retry-After, as Docker Hub does: a tag the mirror resolved before is
// served from its last known answer (counted as stale), anything else gets
// TOOMANYREQUESTS with the registry's Retry-After, and the clients'
// retries (containerd asks six times at once) do not reach the registry
// again until the Retry-After passed: it sees one request in all.
func TestRateLimitedRegistryIsAskedOnce(t *testing.T) {
	t.Parallel()
	limit := &harness.RateLimit{}
	o := harness.NewOriginWith(t, origin.Config{}, limit.Wrap)
	seen, err := testimage.PushImage(t.Context(), o.Host()+"/app:seen", 1, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testimage.PushImage(t.Context(), o.Host()+"/app:unseen", 1, 4<<10); err != nil {
		t.Fatal(err)
	}
	m := startMirror(t, t.TempDir(), upstreamFlag(o))
	v2 := m.URL() + "/v2/app/"
	ns := "?ns=" + o.Host()
	if resp, _ := send(t, http.MethodGet, v2+"manifests/seen"+ns); resp.StatusCode != http.StatusOK {
		t.Fatalf("tag before the limit: %s", resp.Status)
	}

	limit.Start()
	resp, body := send(t, http.MethodGet, v2+"manifests/seen"+ns)
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != seen.Top.Digest {
		t.Errorf("a tag resolved before, registry at its limit: %s, digest %s; want 200 and %s", resp.Status, digest.FromBytes(body), seen.Top.Digest)
	}
	if n := m.Metric("blobswarm_mirror_stale_manifests_total"); n != 1 {
		t.Errorf("stale manifests %v, want 1", n)
	}
	for i := range 6 {
		for _, path := range []string{"manifests/unseen", "blobs/" + seen.Images[0].Layers[0].Digest.String()} {
			resp, body := send(t, http.MethodGet, v2+path+ns)
			wantError(t, "try "+strconv.Itoa(i)+" of "+path, resp, body, http.StatusTooManyRequests, "TOOMANYREQUESTS")
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 100 || s > 120 {
				t.Errorf("%s: Retry-After %q, want the registry's 120 s less the time gone", path, resp.Header.Get("Retry-After"))
			}
		}
	}
	if n := limit.Asked(); n != 1 {
		t.Errorf("the registry was asked %d times while at its limit, want 1: the mirror holds the refusal until its Retry-After", n)
	}
	if logs := m.Logs(); !strings.Contains(logs, "rate limited") {
		t.Error("the mirror's log does not say the registry rate-limited it")
	}
}
