package oci

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseImage(t *testing.T) {
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("config"), Size: 6}
	layers := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l1"), Size: 2},
		{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l2"), Size: 2},
	}
	image := mustJSON(t, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers})
	arm := &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	index := mustJSON(t, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("amd64"), Size: 5, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("arm64"), Size: 5, Platform: arm},
	}})
	// A Docker manifest list, as registries send it.
	dockerList := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":5,"digest":"` + digest.FromString("arm64").String() + `",` +
		`"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`)

	t.Run("image", func(t *testing.T) {
		img, err := ParseImage(NewManifest(ocispec.MediaTypeImageManifest, image))
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Manifests) != 0 || img.Config == nil || img.Config.Digest != config.Digest || len(img.Layers) != 2 ||
			img.Layers[0].Digest != layers[0].Digest || img.Layers[1].Size != 2 {
			t.Errorf("ParseImage(image) = %+v; want its config and both layers", img)
		}
	})
	for name, data := range map[string][]byte{"index": index, "docker list": dockerList} {
		t.Run(name, func(t *testing.T) {
			img, err := ParseImage(NewManifest("", data))
			if err != nil {
				t.Fatal(err)
			}
			if len(img.Manifests) == 0 {
				t.Fatalf("ParseImage(%s) = %+v; want its manifests", name, img)
			}
			last := img.Manifests[len(img.Manifests)-1]
			if img.Config != nil || len(img.Layers) != 0 || last.Digest != digest.FromString("arm64") ||
				last.Platform == nil || !reflect.DeepEqual(*last.Platform, *arm) {
				t.Errorf("ParseImage(%s) = %+v; want its manifests with their platforms", name, img)
			}
		})
	}
	t.Run("neither", func(t *testing.T) {
		img, err := ParseImage(NewManifest("application/vnd.example+json", []byte(`{"schemaVersion":2}`)))
		if err != nil || img.Manifests != nil || img.Config != nil || img.Layers != nil {
			t.Errorf("ParseImage(no descriptors) = %+v, %v; want an empty Image", img, err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		m := NewManifest(ocispec.MediaTypeImageManifest, []byte("<html>"))
		_, err := ParseImage(m)
		var syntax *json.SyntaxError
		if !errors.As(err, &syntax) || !strings.Contains(err.Error(), m.Digest.String()) {
			t.Errorf("ParseImage(<html>) = %v; want a JSON syntax error naming %s", err, m.Digest)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
