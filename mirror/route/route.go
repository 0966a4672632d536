// Package route parses the distribution-spec pull API paths a mirror serves.
// It is a pure function of the request path and query, so it can be fuzzed.
package route

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
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

// Errors that map to the OCI error codes of the same meaning.
var (
	ErrNotAPI        = errors.New("not a registry API path")
	ErrNameInvalid   = errors.New("invalid repository name")
	ErrDigestInvalid = errors.New("invalid digest")
	ErrTagInvalid    = errors.New("invalid tag")
)

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
		// An empty name (/v2//manifests/x) falls to ParseName: it is an
		// invalid name, not some other API.
		if err := ParseName(name); err != nil {
			return Route{}, err
		}
		if kw == "/blobs/" {
			d, err := ParseDigest(ref)
			if err != nil {
				return Route{}, err
			}
			return Route{Kind: Blob, Name: name, Digest: d}, nil
		}
		if strings.Contains(ref, ":") {
			d, err := ParseDigest(ref)
			if err != nil {
				return Route{}, err
			}
			return Route{Kind: Manifest, Name: name, Digest: d}, nil
		}
		if err := ParseTag(ref); err != nil {
			return Route{}, err
		}
		return Route{Kind: Manifest, Name: name, Tag: ref}, nil
	}
	return Route{Kind: Other}, nil
}

// ParseName checks a repository name against the distribution-spec grammar.
func ParseName(name string) error {
	if len(name) > 255 || !nameRe.MatchString(name) {
		return fmt.Errorf("%w: %q", ErrNameInvalid, name)
	}
	return nil
}

// ParseTag checks a tag against the distribution-spec grammar.
func ParseTag(tag string) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("%w: %q", ErrTagInvalid, tag)
	}
	return nil
}

// ParseDigest accepts only digests whose algorithm this build can verify.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrDigestInvalid, s, err)
	}
	return d, nil
}

// ParseRegistry validates a registry host from the ns query parameter. It
// becomes part of a cache path, so only what a reference can name passes.
func ParseRegistry(ns string) (string, error) {
	if len(ns) > 255 || !domainRe.MatchString(ns) {
		return "", fmt.Errorf("%w: registry %q", ErrNameInvalid, ns)
	}
	return ns, nil
}

// The reference package's expressions are unanchored, and leftmost-first
// matching could accept a prefix, so anchor them here.
var (
	tagRe    = anchor(reference.TagRegexp)
	domainRe = anchor(reference.DomainRegexp)
	// nameRe is the distribution-spec's <name>: path components only. The
	// reference grammar would also take a domain ("Library/alpine"), which
	// has no place in an API path.
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
)

func anchor(re *regexp.Regexp) *regexp.Regexp {
	return regexp.MustCompile(`^(?:` + re.String() + `)$`)
}
