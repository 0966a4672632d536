package testimage_test

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

func serve(t *testing.T) string {
	t.Helper()
	o, err := origin.New(context.Background(), origin.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	t.Cleanup(func() {
		srv.Close()
		o.Close()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

const dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

func TestPushImageDescribesWhatItPushed(t *testing.T) {
	host := serve(t)
	const layerSize = 8 << 10
	p, err := testimage.PushImage(context.Background(), host+"/a/b:t1", 2, layerSize)
	if err != nil {
		t.Fatal(err)
	}
	if p.Repository != "a/b" || p.Tag != "t1" || p.Ref != host+"/a/b:t1" {
		t.Errorf("names = %q %q %q", p.Ref, p.Repository, p.Tag)
	}
	if p.Top.MediaType != dockerManifest || len(p.Images) != 1 || p.Images[0].Manifest.Digest != p.Top.Digest {
		t.Fatalf("top = %+v, images = %d", p.Top, len(p.Images))
	}
	img := p.Images[0]
	if pl := img.Manifest.Platform; pl == nil || pl.OS != "linux" || pl.Architecture != runtime.GOARCH {
		t.Errorf("platform = %+v, want linux/%s", pl, runtime.GOARCH)
	}
	if len(img.Layers) != 2 || img.Layers[0].Digest == img.Layers[1].Digest {
		t.Fatalf("layers = %+v, want 2 distinct", img.Layers)
	}
	for _, l := range img.Layers {
		// Random bytes do not compress: the gzip tarball is a bit larger
		// than its content.
		if l.Size < layerSize || l.Size > 2*layerSize {
			t.Errorf("layer %s size %d, want about %d", l.Digest, l.Size, layerSize)
		}
	}
	if n := len(p.Blobs()); n != 3 {
		t.Errorf("Blobs() = %d, want config + 2 layers", n)
	}
}

func TestPushIndexOneImagePerPlatform(t *testing.T) {
	host := serve(t)
	platforms := []string{"linux/amd64", "linux/arm/v7"}
	p, err := testimage.PushIndex(context.Background(), host+"/multi:t1", platforms, 1, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Top.MediaType != ocispec.MediaTypeImageIndex || len(p.Images) != len(platforms) {
		t.Fatalf("top = %+v, images = %d", p.Top, len(p.Images))
	}
	seen := map[digest.Digest]bool{}
	for i, img := range p.Images {
		pl := img.Manifest.Platform
		got := pl.OS + "/" + pl.Architecture
		if pl.Variant != "" {
			got += "/" + pl.Variant
		}
		if got != platforms[i] {
			t.Errorf("image %d platform %s, want %s", i, got, platforms[i])
		}
		if img.Manifest.MediaType != ocispec.MediaTypeImageManifest || img.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("image %d media types %s / %s, want OCI", i, img.Manifest.MediaType, img.Layers[0].MediaType)
		}
		for _, d := range append([]ocispec.Descriptor{img.Manifest, img.Config}, img.Layers...) {
			if seen[d.Digest] {
				t.Errorf("digest %s shared between platforms", d.Digest)
			}
			seen[d.Digest] = true
		}
	}
	if _, err := testimage.PushIndex(context.Background(), host+"/multi:t2", []string{"linux"}, 1, 1<<10); err == nil {
		t.Errorf("platform without architecture accepted")
	}
}
