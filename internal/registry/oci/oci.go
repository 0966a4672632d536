// Package oci is what the mirror and the tracker share about registries'
// names: the grammar of repository names, tags, digests and registry hosts,
// the blob and manifest values both sides pass around, what a manifest
// lists, and the errors a bad name becomes. It is pure: a function of
// strings and bytes.
package oci

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Errors that map to the OCI error codes of the same meaning (see
// upstream.ClientError).
var (
	ErrNameInvalid   = errors.New("invalid repository name")
	ErrDigestInvalid = errors.New("invalid digest")
	ErrTagInvalid    = errors.New("invalid tag")
)

// Blob names a blob together with where it can be fetched from: the same
// digest may be readable in one repository and not in another.
type Blob struct {
	Registry string
	Repo     string
	Digest   digest.Digest
}

// Manifest is the exact bytes a registry returned for a manifest and their
// media type; Digest is computed from the bytes.
type Manifest struct {
	MediaType string
	Digest    digest.Digest
	Data      []byte
}

// MaxManifestSize matches distribution's default limit; a larger body is
// not a manifest any client would accept.
const MaxManifestSize = 4 << 20

// NewManifest names data by its digest.
func NewManifest(mediaType string, data []byte) Manifest {
	return Manifest{MediaType: mediaType, Digest: digest.FromBytes(data), Data: data}
}

// ParseBlob validates the three parts of a blob reference.
func ParseBlob(registry, repo, dgst string) (Blob, error) {
	reg, err := ParseRegistry(registry)
	if err != nil {
		return Blob{}, err
	}
	if err := ParseName(repo); err != nil {
		return Blob{}, err
	}
	d, err := ParseDigest(dgst)
	if err != nil {
		return Blob{}, err
	}
	return Blob{Registry: reg, Repo: repo, Digest: d}, nil
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

// ParseRegistry validates a registry host (containerd's ns parameter, the
// tracker's registry parameter). It becomes part of a cache path, so only
// what a reference can name passes.
func ParseRegistry(host string) (string, error) {
	if len(host) > 255 || !domainRe.MatchString(host) {
		return "", fmt.Errorf("%w: registry %q", ErrNameInvalid, host)
	}
	return host, nil
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
