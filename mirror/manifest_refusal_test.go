package mirror

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// A registry answering a manifest with a web page gets no page through.
func TestManifestThatIsAWebPageIsRefused(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<script>steal()</script>"))
	}))
	defer page.Close()
	o := harness.NewOrigin(t, origin.Config{})
	host := strings.TrimPrefix(page.URL, "http://")
	url, data := serveConfigured(t, o, func(c *Config) { c.Upstream = append(c.Upstream, host+"="+page.URL) })
	before := files(t, data)
	resp, body := send(t, http.MethodGet, url+"/v2/app/manifests/v1?ns="+host)
	if resp.StatusCode < 500 || strings.Contains(string(body), "script") || resp.Header.Get("Content-Type") == "text/html" {
		t.Fatalf("HTTP %d (%s) %s, want a 5xx without the page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if after := files(t, data); !slices.Equal(before, after) {
		t.Fatalf("stored %v", after)
	}
}
