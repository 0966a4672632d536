package mirror_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// witness is a server that must see nothing, or must see no credentials:
// it serves a blob and keeps each request's Authorization header.
type witness struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newWitness(t *testing.T, body []byte) *witness {
	t.Helper()
	w := &witness{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.auths = append(w.auths, r.Header.Get("Authorization"))
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		rw.Write(body)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *witness) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.auths...)
}

// TestHostileRegistry runs a mirror in front of a registry that tries
// what an open proxy would let it: it redirects a manifest to another
// port, answers a manifest with a web page, and sends a blob to object
// storage on another port, where the mirror's token must not follow.
func TestHostileRegistry(t *testing.T) {
	t.Parallel()
	layer := []byte("a layer from object storage")
	d := digest.FromBytes(layer)
	storage := newWitness(t, layer)
	elsewhere := newWitness(t, []byte("{}"))
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/moved"):
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<script>steal(document.cookie)</script>")
		case strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()):
			http.Redirect(w, r, storage.URL+r.URL.Path, http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	defer hostile.Close()
	host := strings.TrimPrefix(hostile.URL, "http://")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("registry-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("data: %s\nupstream: [%q]\ncredentials:\n  %q:\n    token-file: %s\n", data, host+"="+hostile.URL, host, tokFile))
	m := harness.Start(t, "mirror", "--config", cfg)
	v2 := m.URL() + "/v2/app/"

	resp, body := send(t, http.MethodGet, v2+"manifests/moved?ns="+host)
	wantError(t, "manifest redirected to another port", resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	if n := len(elsewhere.seen()); n != 0 {
		t.Errorf("the manifest's redirect target got %d requests, want none", n)
	}

	resp, body = send(t, http.MethodGet, v2+"manifests/page?ns="+host)
	wantError(t, "manifest answered with a web page", resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	if strings.Contains(string(body), "script") || resp.Header.Get("Content-Type") == "text/html" {
		t.Errorf("the page came through: %s %s", resp.Header.Get("Content-Type"), body)
	}

	resp, body = send(t, http.MethodGet, v2+"blobs/"+d.String()+"?ns="+host)
	if resp.StatusCode != http.StatusOK || string(body) != string(layer) {
		t.Fatalf("blob redirected to storage: HTTP %d %q, want the layer", resp.StatusCode, body)
	}
	if a := storage.seen(); len(a) != 1 || a[0] != "" {
		t.Errorf("storage on another port saw Authorization %q, want none", a)
	}
}
