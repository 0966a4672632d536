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
	// Tags is /v2/<name>/tags/list, a repository's tag list.
	Tags
	// Referrers is /v2/<name>/referrers/<digest>, the manifests that name
	// a manifest as their subject (OCI distribution-spec 1.1).
	Referrers
	// Other is a /v2/ path a pull-through mirror does not serve (uploads,
	// the catalog).
	Other
)

// Route is a parsed pull API request.
type Route struct {
	Kind Kind
	// Name is the repository, e.g. library/alpine.
	Name string
	// Tag is set for a manifest by tag.
	Tag string
	// Digest is set for a blob, a manifest by digest and referrers.
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
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		if err := oci.ParseName(name); err != nil {
			return Route{}, err
		}
		return Route{Kind: Tags, Name: name}, nil
	}
	// The name itself may contain slashes, so split at the last resource
	// keyword, not the first.
	for _, kw := range []string{"/manifests/", "/blobs/", "/referrers/"} {
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
		if kw != "/manifests/" {
			d, err := oci.ParseDigest(ref)
			if err != nil {
				return Route{}, err
			}
			kind := Blob
			if kw == "/referrers/" {
				kind = Referrers
			}
			return Route{Kind: kind, Name: name, Digest: d}, nil
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
