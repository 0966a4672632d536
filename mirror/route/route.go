// Package route parses the distribution-spec pull API paths a mirror serves.
// It is a pure function of the request path, so it can be fuzzed.
package route

import (
	"errors"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// Kind is what a request path names.
type Kind int

const (
	// Base is GET /v2/, the API version check.
	Base Kind = iota
	// Manifest is /v2/<name>/manifests/<tag|digest>.
	Manifest
	// Blob is /v2/<name>/blobs/<digest>.
	Blob
	// Other is a /v2/ path the pull API does not have (uploads, tag lists).
	Other
)

// Route is a parsed pull API request.
type Route struct {
	Kind Kind
	// Name is the repository, e.g. library/alpine.
	Name string
	// Tag is set for a manifest by tag.
	Tag string
	// Digest is set for a blob or a manifest by digest.
	Digest digest.Digest
}

// ErrNotAPI is a path outside /v2/. Bad names, tags and digests are
// oci's errors.
var ErrNotAPI = errors.New("not a registry API path")

// Parse parses an URL path such as /v2/library/alpine/manifests/3.20.
func Parse(path string) (Route, error) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return Route{Kind: Base}, nil
		}
		return Route{}, ErrNotAPI
	}
	if rest == "" {
		return Route{Kind: Base}, nil
	}
	// The name itself may contain slashes, so split at the last resource
	// keyword, not the first.
	for _, kw := range []string{"/manifests/", "/blobs/"} {
		i := strings.LastIndex(rest, kw)
		if i < 0 {
			continue
		}
		name, ref := rest[:i], rest[i+len(kw):]
		if ref == "" || strings.Contains(ref, "/") {
			continue
		}
		// An empty name (/v2//manifests/x) falls to oci.ParseName: it is an
		// invalid name, not some other API.
		if err := oci.ParseName(name); err != nil {
			return Route{}, err
		}
		if kw == "/blobs/" {
			d, err := oci.ParseDigest(ref)
			if err != nil {
				return Route{}, err
			}
			return Route{Kind: Blob, Name: name, Digest: d}, nil
		}
		if strings.Contains(ref, ":") {
			d, err := oci.ParseDigest(ref)
			if err != nil {
				return Route{}, err
			}
			return Route{Kind: Manifest, Name: name, Digest: d}, nil
		}
		if err := oci.ParseTag(ref); err != nil {
			return Route{}, err
		}
		return Route{Kind: Manifest, Name: name, Tag: ref}, nil
	}
	return Route{Kind: Other}, nil
}
