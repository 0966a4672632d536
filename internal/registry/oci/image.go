package oci

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestMediaTypes are the manifests a registry may answer with and the
// mirror and tracker pass on, in the order of preference a client that
// states none gets: indexes before images, OCI before Docker. Docker's
// schema 1 is not among them: distribution v3 does not serve it and
// containerd 2 does not pull it.
var ManifestMediaTypes = []string{
	ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.list.v2+json",
	ocispec.MediaTypeImageManifest,
	"application/vnd.docker.distribution.manifest.v2+json",
}

// IsManifestMediaType reports whether mediaType (without parameters) is
// one of ManifestMediaTypes; media types are case-insensitive.
func IsManifestMediaType(mediaType string) bool {
	return slices.ContainsFunc(ManifestMediaTypes, func(t string) bool { return strings.EqualFold(t, mediaType) })
}

// Image is what a manifest points to: an index's manifests, or an image's
// config and layers. Docker's manifest lists and v2 images use the same
// field names, so one shape reads all four media types.
type Image struct {
	Manifests []ocispec.Descriptor `json:"manifests"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
}

// ParseImage reads the descriptors in m. It does not look at the media
// type, so a document that is neither an index nor an image parses to an
// Image with neither manifests nor config; what that means is the
// caller's call.
func ParseImage(m Manifest) (Image, error) {
	var img Image
	if err := json.Unmarshal(m.Data, &img); err != nil {
		return Image{}, fmt.Errorf("manifest %s is not JSON: %w", m.Digest, err)
	}
	return img, nil
}
