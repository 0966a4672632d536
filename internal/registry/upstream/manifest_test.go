package upstream_test

import (
	"net/http"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// A web page where a manifest belongs is refused, not passed on.
func TestManifestOfAnotherMediaTypeIsRefused(t *testing.T) {
	for _, ct := range []string{"text/html; charset=utf-8", "application/json", "", "application/vnd.docker.distribution.manifest.v1+prettyjws"} {
		reg := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write([]byte(`<script>alert(1)</script>`))
		})
		c := client(t, reg.Server, upstream.Config{})
		data, _, err := c.GetManifest(t.Context(), "reg.test", "app", "v1", nil)
		if err == nil {
			t.Errorf("Content-Type %q: passed on %q, want refused", ct, data)
			continue
		}
		if e, _ := upstream.ClientError(err, errcode.ErrorCodeManifestUnknown); data != nil || e.Code != errcode.ErrorCodeUnavailable {
			t.Errorf("Content-Type %q: %q, %v; want refused as UNAVAILABLE", ct, data, err)
		}
	}
	for _, ct := range []string{"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"} {
		reg := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write([]byte(`{}`))
		})
		if _, _, err := client(t, reg.Server, upstream.Config{}).GetManifest(t.Context(), "reg.test", "app", "v1", nil); err != nil {
			t.Errorf("Content-Type %q: %v", ct, err)
		}
	}
}
