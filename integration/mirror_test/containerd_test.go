package mirror_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestContainerdPullIndexWithNS pulls a two-platform OCI index with
// containerd's resolver, configured from a hosts.toml the way containerd
// reads /etc/containerd/certs.d, so every request reaches the mirror with
// ?ns=<origin host>.
func TestContainerdPullIndexWithNS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushIndex(ctx, o.Host()+"/app:1", []string{"linux/amd64", "linux/arm64"}, 2, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	// Requests without ns would go to the default upstream, which leads
	// nowhere: only ns routing can make this pull succeed.
	m := startMirror(t, t.TempDir(), upstreamFlag(o),
		"--default-upstream=no-ns.invalid", "--upstream=no-ns.invalid=http://"+harness.FreeAddr(t))

	certsDir := t.TempDir()
	hostsToml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", o.Server.URL, m.URL())
	if err := os.MkdirAll(filepath.Join(certsDir, o.Host()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certsDir, o.Host(), "hosts.toml"), []byte(hostsToml), 0o644); err != nil {
		t.Fatal(err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(certsDir)}),
	})

	ref, top, err := resolver.Resolve(ctx, pushed.Ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", pushed.Ref, err)
	}
	if top.Digest != pushed.Top.Digest || top.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("resolved %s (%s), want %s (%s)", top.Digest, top.MediaType, pushed.Top.Digest, ocispec.MediaTypeImageIndex)
	}
	fetcher, err := resolver.Fetcher(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}

	var index ocispec.Index
	fetchJSON(t, fetcher, top, &index)
	if len(index.Manifests) != len(pushed.Images) {
		t.Fatalf("index has %d manifests, want %d", len(index.Manifests), len(pushed.Images))
	}
	fetched := 0
	for i, want := range pushed.Images {
		desc := index.Manifests[i]
		if desc.Digest != want.Manifest.Digest || desc.Platform == nil ||
			desc.Platform.OS != want.Manifest.Platform.OS || desc.Platform.Architecture != want.Manifest.Platform.Architecture {
			t.Fatalf("index entry %d: %s %+v, want %s %+v", i, desc.Digest, desc.Platform, want.Manifest.Digest, want.Manifest.Platform)
		}
		var man ocispec.Manifest
		fetchJSON(t, fetcher, desc, &man)
		if man.Config.Digest != want.Config.Digest {
			t.Errorf("%s: config %s, want %s", desc.Platform.Architecture, man.Config.Digest, want.Config.Digest)
		}
		fetch(t, fetcher, man.Config)
		if len(man.Layers) != len(want.Layers) {
			t.Fatalf("%s: %d layers, want %d", desc.Platform.Architecture, len(man.Layers), len(want.Layers))
		}
		for j, l := range man.Layers {
			if l.Digest != want.Layers[j].Digest {
				t.Errorf("%s: layer %d is %s, want %s", desc.Platform.Architecture, j, l.Digest, want.Layers[j].Digest)
			}
			fetch(t, fetcher, l)
		}
		fetched += 1 + len(man.Layers)
	}

	// Everything came through the mirror, none of it from the fallback
	// server: the mirror answered every request it got with 200, served
	// each blob once, and fetched each from the origin once. A request is
	// counted when its handler returns, a moment after the client has the
	// body: the counts are read once the last one is in.
	harness.Eventually(t, "the mirror's count of blob GETs", func() bool {
		return m.Metric(requestsMetric, "kind", "blob", "method", "GET") >= float64(fetched)
	})
	if all, ok := m.Metric(requestsMetric), m.Metric(requestsMetric, "code", "200"); all != ok {
		t.Errorf("mirror answered %v of %v requests with 200; containerd fell back for the rest", ok, all)
	}
	if n := m.Metric(requestsMetric, "kind", "blob", "method", "GET", "code", "200"); n != float64(fetched) {
		t.Errorf("mirror served %v blob GETs, want %d", n, fetched)
	}
	if n := m.Metric(requestsMetric, "kind", "manifest", "code", "200"); n < 1+float64(len(pushed.Images)) {
		t.Errorf("mirror served %v manifest requests, want at least %d", n, 1+len(pushed.Images))
	}
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("origin served blob %s %d times, want once (by the mirror)", b.Digest, n)
		}
	}
	if n := o.TotalBlobGETs(); n != fetched {
		t.Errorf("origin served %d blob GETs, want %d", n, fetched)
	}
}

// fetch reads desc fully with containerd's fetcher and checks its digest
// and size.
func fetch(t *testing.T, f remotes.Fetcher, desc ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := f.Fetch(t.Context(), desc)
	if err != nil {
		t.Fatalf("fetch %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", desc.Digest, err)
	}
	if got := digest.FromBytes(b); got != desc.Digest || int64(len(b)) != desc.Size {
		t.Fatalf("fetched %d bytes with digest %s, want %d bytes of %s", len(b), got, desc.Size, desc.Digest)
	}
	return b
}

func fetchJSON(t *testing.T, f remotes.Fetcher, desc ocispec.Descriptor, v any) {
	t.Helper()
	if err := json.Unmarshal(fetch(t, f, desc), v); err != nil {
		t.Fatalf("decode %s: %v", desc.Digest, err)
	}
}
