// Package testimage pushes freshly generated images to a registry and
// reports every digest it pushed, so tests can check what clients received.
// Layers are gzip tarballs of random bytes: they unpack like real layers and
// hardly compress, so a layer's size on the wire is close to layerSize.
package testimage

import (
	"context"
	"fmt"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pushed describes what a push wrote.
type Pushed struct {
	// Ref is the tag pushed, e.g. "127.0.0.1:5000/app:v1".
	Ref string
	// Repository and Tag are Ref's parts as they appear in API paths.
	Repository string
	Tag        string
	// Top is what Tag names: an image manifest or an image index.
	Top ocispec.Descriptor
	// Images holds one entry per platform; PushImage pushes one.
	Images []Image
}

// Image is one pushed image manifest and the blobs it references.
type Image struct {
	// Manifest has Platform set.
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
}

// Blobs lists every config and layer blob pushed, each digest once.
func (p Pushed) Blobs() []ocispec.Descriptor {
	seen := make(map[digest.Digest]bool)
	var blobs []ocispec.Descriptor
	for _, img := range p.Images {
		for _, d := range append([]ocispec.Descriptor{img.Config}, img.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				blobs = append(blobs, d)
			}
		}
	}
	return blobs
}

// PushImage pushes a Docker schema 2 image for linux on this machine's
// architecture, with the given number of random layers of about layerSize
// bytes each, to ref over plain HTTP.
func PushImage(ctx context.Context, ref string, layers int, layerSize int64, opts ...remote.Option) (Pushed, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return Pushed{}, fmt.Errorf("testimage: parse %q: %w", ref, err)
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	img, err := newImage(platform, layers, layerSize, false)
	if err != nil {
		return Pushed{}, err
	}
	if err := remote.Write(tag, img, withContext(ctx, opts)...); err != nil {
		return Pushed{}, fmt.Errorf("testimage: push %s: %w", tag, err)
	}
	desc, err := describeImage(img, platform)
	if err != nil {
		return Pushed{}, err
	}
	return Pushed{
		Ref:        tag.String(),
		Repository: tag.RepositoryStr(),
		Tag:        tag.TagStr(),
		Top:        desc.Manifest,
		Images:     []Image{desc},
	}, nil
}

// PushIndex pushes an OCI index with one OCI image per platform ("os/arch"
// or "os/arch/variant"), each with its own random layers, to ref over
// plain HTTP.
func PushIndex(ctx context.Context, ref string, platforms []string, layers int, layerSize int64, opts ...remote.Option) (Pushed, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return Pushed{}, fmt.Errorf("testimage: parse %q: %w", ref, err)
	}
	var (
		idx    v1.ImageIndex = empty.Index
		images []Image
	)
	for _, s := range platforms {
		platform, err := v1.ParsePlatform(s)
		if err != nil {
			return Pushed{}, fmt.Errorf("testimage: platform %q: %w", s, err)
		}
		if platform.OS == "" || platform.Architecture == "" {
			return Pushed{}, fmt.Errorf("testimage: platform %q: want os/arch[/variant]", s)
		}
		img, err := newImage(*platform, layers, layerSize, true)
		if err != nil {
			return Pushed{}, err
		}
		desc, err := describeImage(img, *platform)
		if err != nil {
			return Pushed{}, err
		}
		images = append(images, desc)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	if err := remote.WriteIndex(tag, idx, withContext(ctx, opts)...); err != nil {
		return Pushed{}, fmt.Errorf("testimage: push %s: %w", tag, err)
	}
	top, err := describe(idx)
	if err != nil {
		return Pushed{}, err
	}
	return Pushed{
		Ref:        tag.String(),
		Repository: tag.RepositoryStr(),
		Tag:        tag.TagStr(),
		Top:        top,
		Images:     images,
	}, nil
}

func withContext(ctx context.Context, opts []remote.Option) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, opts...)
}

// newImage builds an image whose config names platform, in OCI or Docker
// schema 2 media types.
func newImage(platform v1.Platform, layers int, layerSize int64, oci bool) (v1.Image, error) {
	layerType := types.DockerLayer
	if oci {
		layerType = types.OCILayer
	}
	cfg, err := empty.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("testimage: empty config: %w", err)
	}
	cfg.OS = platform.OS
	cfg.Architecture = platform.Architecture
	cfg.Variant = platform.Variant
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("testimage: set config: %w", err)
	}
	if oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	adds := make([]v1.Layer, 0, layers)
	for range layers {
		l, err := random.Layer(layerSize, layerType)
		if err != nil {
			return nil, fmt.Errorf("testimage: random layer: %w", err)
		}
		adds = append(adds, l)
	}
	img, err = mutate.AppendLayers(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("testimage: append layers: %w", err)
	}
	return img, nil
}

func describe(d partial.Describable) (ocispec.Descriptor, error) {
	desc, err := partial.Descriptor(d)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("testimage: describe: %w", err)
	}
	return blob(*desc), nil
}

func describeImage(img v1.Image, platform v1.Platform) (Image, error) {
	m, err := describe(img)
	if err != nil {
		return Image{}, err
	}
	m.Platform = &ocispec.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant}
	manifest, err := img.Manifest()
	if err != nil {
		return Image{}, fmt.Errorf("testimage: manifest: %w", err)
	}
	out := Image{Manifest: m, Config: blob(manifest.Config)}
	for _, l := range manifest.Layers {
		out.Layers = append(out.Layers, blob(l))
	}
	return out, nil
}

func blob(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
}
