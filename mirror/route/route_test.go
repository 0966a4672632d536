package route

import (
	"errors"
	"testing"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

const hex = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Route
		err  error
	}{
		{path: "/v2/", want: Route{Kind: Base}},
		{path: "/v2", want: Route{Kind: Base}},
		{path: "/v2/library/alpine/manifests/3.20", want: Route{Kind: Manifest, Name: "library/alpine", Tag: "3.20"}},
		{path: "/v2/alpine/manifests/sha256:" + hex, want: Route{Kind: Manifest, Name: "alpine", Digest: "sha256:" + hex}},
		{path: "/v2/a/b/c/blobs/sha256:" + hex, want: Route{Kind: Blob, Name: "a/b/c", Digest: "sha256:" + hex}},
		// A repository may itself be called "blobs".
		{path: "/v2/org/blobs/blobs/sha256:" + hex, want: Route{Kind: Blob, Name: "org/blobs", Digest: "sha256:" + hex}},
		{path: "/v2/library/alpine/tags/list", want: Route{Kind: Tags, Name: "library/alpine"}},
		// A repository may be called "tags".
		{path: "/v2/org/tags/tags/list", want: Route{Kind: Tags, Name: "org/tags"}},
		{path: "/v2/a/b/referrers/sha256:" + hex, want: Route{Kind: Referrers, Name: "a/b", Digest: "sha256:" + hex}},
		{path: "/v2/_catalog", want: Route{Kind: Other}},
		{path: "/v2/Bad/tags/list", err: oci.ErrNameInvalid},
		{path: "/v2/alpine/referrers/latest", err: oci.ErrDigestInvalid},
		{path: "/v2/library/alpine/blobs/uploads/", want: Route{Kind: Other}},
		{path: "/other", err: ErrNotAPI},
		{path: "/v2/Library/alpine/manifests/latest", err: oci.ErrNameInvalid},
		{path: "/v2/library/../etc/manifests/latest", err: oci.ErrNameInvalid},
		{path: "/v2/a//b/blobs/sha256:" + hex, err: oci.ErrNameInvalid},
		{path: "/v2/alpine/blobs/sha256:abc", err: oci.ErrDigestInvalid},
		{path: "/v2/alpine/blobs/md5:" + hex, err: oci.ErrDigestInvalid},
		{path: "/v2/alpine/blobs/latest", err: oci.ErrDigestInvalid},
		{path: "/v2/alpine/manifests/-bad", err: oci.ErrTagInvalid},
		{path: "/v2/alpine/manifests/" + string(make([]byte, 0)) + "a%2f", err: oci.ErrTagInvalid},
	} {
		got, err := Parse(tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Parse(%q) error = %v, want %v", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.path, got, err, tc.want)
		}
	}
}
