package pull_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/pull"
)

// A registry that holds each blob's body back: the pull says how long the
// client waited for a blob's first byte, not how long the headers took.
func TestFirstByteIsTheLongestWaitForABlobsBody(t *testing.T) {
	const hold = 300 * time.Millisecond
	o := harness.NewOriginWith(t, origin.Config{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				w = &slowBody{ResponseWriter: w, hold: hold}
			}
			next.ServeHTTP(w, r)
		})
	})
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 2, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	res, err := pull.Image(t.Context(), o.Host()+"/app:v1", pull.Options{MirrorURL: o.Server.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != img.Top.Digest.String() || res.Blobs != 4 {
		t.Fatalf("pulled %s with %d blobs, want %s with 4", res.Digest, res.Blobs, img.Top.Digest)
	}
	if res.FirstByte < hold || res.FirstByte > res.Duration {
		t.Fatalf("first byte after %s of a %s pull, want at least the %s each body was held", res.FirstByte, res.Duration, hold)
	}
}

// slowBody sends the headers at once and the first body bytes after hold.
type slowBody struct {
	http.ResponseWriter
	hold time.Duration
	sent bool
}

func (s *slowBody) Write(p []byte) (int, error) {
	if !s.sent {
		s.sent = true
		s.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(s.hold)
	}
	return s.ResponseWriter.Write(p)
}
