package tracker_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// A tracker whose seeder got an error from the origin says so, and the
// mirror that then fetches the blob from the origin itself counts the
// fallback as the tracker's origin failing (tracker-origin), not as a
// tracker it could not reach (tracker-down): the one is the origin's
// trouble, the other the fleet's.
func TestMirrorCountsTheTrackersOriginErrorAsSuch(t *testing.T) {
	t.Parallel()
	var refused atomic.Int32
	o := harness.NewOriginWith(t, origin.Config{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The first blob GET is the seeder's; the origin is overloaded
			// for it, and fine again for the mirror.
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && refused.Add(1) == 1 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	blob, d := harness.PushRandomBlob(t, o, "app", 256<<10)
	tr := harness.Start(t, "tracker", trackerArgs(o, t.TempDir())...)
	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", tr.URL(), "--peer-listen", "127.0.0.1:0",
		"--upstream", o.Host()+"="+o.Server.URL)

	resp, body := get(t, m.URL()+"/v2/app/blobs/"+d.String()+"?ns="+o.Host())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("the blob through the mirror: HTTP %d, %d bytes", resp.StatusCode, len(body))
	}
	if refused.Load() != 2 {
		t.Fatalf("origin saw %d blob GETs, want 2: the seeder's, refused, and the mirror's", refused.Load())
	}
	const fallbacks = "blobswarm_mirror_origin_fallbacks_total"
	if n := m.Metric(fallbacks, "reason", "tracker-origin"); n != 1 {
		t.Errorf("%s{reason=tracker-origin} = %.0f, want 1", fallbacks, n)
	}
	if n := m.Metric(fallbacks, "reason", "tracker-down"); n != 0 {
		t.Errorf("%s{reason=tracker-down} = %.0f with the tracker up, want 0", fallbacks, n)
	}
}
