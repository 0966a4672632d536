package route

import (
	"strings"
	"testing"
)

// FuzzParse checks that no path crashes the parser and that whatever it
// accepts is safe to use as a file path component and round-trips.
func FuzzParse(f *testing.F) {
	f.Add("/v2/library/alpine/manifests/latest")
	f.Add("/v2/a/b/blobs/sha256:" + hex)
	f.Add("/v2/x/manifests/sha256:" + hex)
	f.Add("/v2/library/alpine/tags/list")
	f.Add("/v2/x/referrers/sha256:" + hex)
	f.Fuzz(func(t *testing.T, path string) {
		r, err := Parse(path)
		if err != nil {
			return
		}
		if strings.Contains(r.Name, "..") || strings.HasPrefix(r.Name, "/") {
			t.Fatalf("unsafe name %q accepted from %q", r.Name, path)
		}
		switch r.Kind {
		case Blob:
			if r.Digest.Validate() != nil {
				t.Fatalf("invalid digest %q accepted", r.Digest)
			}
			if path != "/v2/"+r.Name+"/blobs/"+r.Digest.String() {
				t.Fatalf("%q parsed to %+v", path, r)
			}
		case Tags:
			if path != "/v2/"+r.Name+"/tags/list" {
				t.Fatalf("%q parsed to %+v", path, r)
			}
		case Referrers:
			if r.Digest.Validate() != nil || path != "/v2/"+r.Name+"/referrers/"+r.Digest.String() {
				t.Fatalf("%q parsed to %+v", path, r)
			}
		case Manifest:
			ref := r.Tag
			if ref == "" {
				ref = r.Digest.String()
			}
			if path != "/v2/"+r.Name+"/manifests/"+ref {
				t.Fatalf("%q parsed to %+v", path, r)
			}
		}
	})
}
