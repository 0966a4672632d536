package tracker_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// An origin at its rate limit is asked once by the whole fleet: the
// tracker gets the 429 and holds it for every mirror until the
// Retry-After, and mirrors pass it on to their clients (TOOMANYREQUESTS,
// Retry-After) instead of asking the origin themselves, for tags and
// blobs alike; a tag a mirror resolved before is served from its last
// known answer.
func TestFleetAsksARateLimitedOriginOnce(t *testing.T) {
	t.Parallel()
	limit := &harness.RateLimit{}
	o := harness.NewOriginWith(t, origin.Config{}, limit.Wrap)
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:1", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	// Tags are resolved again at every ask, so the limit is met at once.
	tr := harness.Start(t, "tracker", trackerArgs(o, t.TempDir(), "--tag-ttl", "1ms")...)
	var mirrors []*harness.Process
	for range 2 {
		// No read-ahead: the tag resolved before the limit must not leave
		// its blobs' fetches running into it, each one more request.
		mirrors = append(mirrors, harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", tr.URL(),
			"--peer-listen", "127.0.0.1:0", "--upstream", o.Host()+"="+o.Server.URL, "--readahead=false"))
	}

	// The first mirror has resolved a second tag before the limit.
	seen, err := testimage.PushImage(t.Context(), o.Host()+"/app:seen", 1, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, mirrors[0].URL()+"/v2/app/manifests/seen?ns="+o.Host()); resp.StatusCode != http.StatusOK {
		t.Fatalf("tag before the limit: HTTP %d", resp.StatusCode)
	}

	limit.Start()
	resp, body := get(t, mirrors[0].URL()+"/v2/app/manifests/seen?ns="+o.Host())
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != seen.Top.Digest.String() {
		t.Errorf("a tag the mirror resolved before, origin at its limit: HTTP %d %s, want its last known answer", resp.StatusCode, body)
	}
	if n := mirrors[0].Metric("blobswarm_mirror_stale_manifests_total"); n != 1 {
		t.Errorf("stale manifests %v, want 1", n)
	}
	layer := img.Images[0].Layers[0].Digest
	for _, m := range mirrors {
		for range 3 {
			for _, path := range []string{"manifests/1", "blobs/" + layer.String()} {
				resp, body := get(t, m.URL()+"/v2/app/"+path+"?ns="+o.Host())
				wantOCIError(t, path, resp, body, http.StatusTooManyRequests, "TOOMANYREQUESTS")
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 120 {
					t.Errorf("%s: Retry-After %q, want the origin's, at most 120 s", path, resp.Header.Get("Retry-After"))
				}
			}
		}
	}
	if n := limit.Asked(); n != 1 {
		t.Errorf("the rate-limited origin was asked %d times by 2 mirrors and their 13 client requests, want once, by the tracker", n)
	}
	for i, m := range mirrors {
		if n := m.Metric("blobswarm_mirror_origin_fallbacks_total"); n != 0 {
			t.Errorf("mirror %d went to the origin %.0f times", i, n)
		}
	}
}
