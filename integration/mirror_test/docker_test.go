package mirror_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// dockerAccept is the Accept list Docker sends when it resolves a tag, one
// header per manifest type it knows.
var dockerAccept = []string{
	"Accept", "application/vnd.docker.distribution.manifest.v2+json",
	"Accept", "application/vnd.docker.distribution.manifest.list.v2+json",
	"Accept", "application/vnd.oci.image.index.v1+json",
	"Accept", "application/vnd.oci.image.manifest.v1+json",
}

// TestDockerPullWithoutNS replays what Docker's registry-mirrors sends (no
// ns: everything is Docker Hub), with docker.io mapped to the origin, then
// pulls the same image with go-containerregistry.
func TestDockerPullWithoutNS(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/library/app:1", 2, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	m := startMirror(t, t.TempDir(), "--upstream", "docker.io="+o.Server.URL)
	v2 := m.URL() + "/v2/"

	if resp, _ := send(t, http.MethodGet, v2); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}

	// Docker uses the HEAD only if it carries all three headers.
	resp, body := send(t, http.MethodHead, v2+"library/app/manifests/1", dockerAccept...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD manifest by tag: %s", resp.Status)
	}
	top := pushed.Top
	if got := resp.Header.Get("Docker-Content-Digest"); got != top.Digest.String() {
		t.Errorf("HEAD Docker-Content-Digest %q, want %s", got, top.Digest)
	}
	if got := resp.Header.Get("Content-Type"); got != top.MediaType {
		t.Errorf("HEAD Content-Type %q, want %s", got, top.MediaType)
	}
	if got := resp.Header.Get("Content-Length"); got != strconv.FormatInt(top.Size, 10) {
		t.Errorf("HEAD Content-Length %q, want %d", got, top.Size)
	}
	if len(body) != 0 {
		t.Errorf("HEAD sent a body of %d bytes", len(body))
	}

	resp, body = send(t, http.MethodGet, v2+"library/app/manifests/"+top.Digest.String(), dockerAccept...)
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != top.Digest {
		t.Fatalf("GET manifest by digest: %s, content digest %s, want %s", resp.Status, digest.FromBytes(body), top.Digest)
	}
	if got := resp.Header.Get("Content-Type"); got != top.MediaType {
		t.Errorf("GET manifest Content-Type %q, want %s", got, top.MediaType)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(body, &man); err != nil {
		t.Fatal(err)
	}
	want := pushed.Images[0]
	if man.Config.Digest != want.Config.Digest || len(man.Layers) != len(want.Layers) {
		t.Fatalf("manifest names config %s and %d layers, want %s and %d", man.Config.Digest, len(man.Layers), want.Config.Digest, len(want.Layers))
	}

	for _, b := range pushed.Blobs() {
		resp, body := send(t, http.MethodGet, v2+"library/app/blobs/"+b.Digest.String())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob %s: %s", b.Digest, resp.Status)
		}
		if got := digest.FromBytes(body); got != b.Digest {
			t.Errorf("blob %s: content digest %s", b.Digest, got)
		}
		if resp.ContentLength != b.Size || resp.Header.Get("Docker-Content-Digest") != b.Digest.String() {
			t.Errorf("blob %s: Content-Length %d, Docker-Content-Digest %q; want %d and the digest",
				b.Digest, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), b.Size)
		}
	}

	pullImage(t, m.Host()+"/library/app:1", want)

	// The second client was served from the mirror's disk.
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("origin served blob %s %d times, want once", b.Digest, n)
		}
	}
}
