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
// blobs alike.
func TestFleetAsksARateLimitedOriginOnce(t *testing.T) {
	t.Parallel()
	limit := &harness.RateLimit{}
	o := harness.NewOriginWith(t, origin.Config{}, limit.Wrap)
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:1", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	tr := harness.Start(t, "tracker", trackerArgs(o, t.TempDir())...)
	var mirrors []*harness.Process
	for range 2 {
		mirrors = append(mirrors, harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", tr.URL(),
			"--peer-listen", "127.0.0.1:0", "--upstream", o.Host()+"="+o.Server.URL))
	}

	limit.Start()
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
		t.Errorf("the rate-limited origin was asked %d times by 2 mirrors and their 12 client requests, want once, by the tracker", n)
	}
	for i, m := range mirrors {
		if n := m.Metric("blobswarm_mirror_origin_fallbacks_total"); n != 0 {
			t.Errorf("mirror %d went to the origin %.0f times", i, n)
		}
	}
}
