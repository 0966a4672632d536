package upstream_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// A registry the configuration does not name is refused as DENIED before
// anything is dialled, naming the registry and the key that allows it.
func TestUnnamedRegistryIsDeniedWithoutAConnection(t *testing.T) {
	host, accepts := countingListener(t, "127.0.0.1:0")
	named := newRecorder(t, false, serveBlob)
	c := client(t, named.Server, upstream.Config{})
	_, _, err := c.GetBlob(t.Context(), host, "app", digest.FromBytes(blob))
	e, internal := upstream.ClientError(err, errcode.ErrorCodeBlobUnknown)
	if internal || e.Code != errcode.ErrorCodeDenied || e.Code.Descriptor().HTTPStatusCode != http.StatusForbidden {
		t.Fatalf("error %v, client sees %v; want DENIED (403)", err, e)
	}
	for _, want := range []string{host, "registry", "any-registry"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not mention %q", e.Message, want)
		}
	}
	if _, _, err := c.GetManifest(t.Context(), host, "app", "v1", nil); !errors.As(err, new(*upstream.DeniedError)) {
		t.Errorf("manifest of an unnamed registry: %v, want denied", err)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the unnamed registry saw %d connections, want none", n)
	}
}
