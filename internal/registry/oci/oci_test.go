package oci

import (
	"errors"
	"strings"
	"testing"
)

const hex = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestParseRegistry(t *testing.T) {
	for _, ok := range []string{"docker.io", "ghcr.io", "127.0.0.1:5001", "localhost", "[::1]:5000"} {
		if _, err := ParseRegistry(ok); err != nil {
			t.Errorf("ParseRegistry(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", "docker.io/", "a b", "x:y:z", string(make([]byte, 300))} {
		if _, err := ParseRegistry(bad); !errors.Is(err, ErrNameInvalid) {
			t.Errorf("ParseRegistry(%q) = %v, want ErrNameInvalid", bad, err)
		}
	}
}

func TestParseBlob(t *testing.T) {
	b, err := ParseBlob("docker.io", "library/alpine", "sha256:"+hex)
	if err != nil || b != (Blob{Registry: "docker.io", Repo: "library/alpine", Digest: "sha256:" + hex}) {
		t.Fatalf("ParseBlob = %+v, %v", b, err)
	}
	for _, tc := range []struct {
		registry, repo, digest string
		want                   error
	}{
		{"a/b", "x", "sha256:" + hex, ErrNameInvalid},
		{"docker.io", "../etc", "sha256:" + hex, ErrNameInvalid},
		{"docker.io", "Library/alpine", "sha256:" + hex, ErrNameInvalid},
		{"docker.io", "alpine", "sha256:abc", ErrDigestInvalid},
		{"docker.io", "alpine", "md5:" + hex, ErrDigestInvalid},
	} {
		if _, err := ParseBlob(tc.registry, tc.repo, tc.digest); !errors.Is(err, tc.want) {
			t.Errorf("ParseBlob(%q, %q, %q) = %v, want %v", tc.registry, tc.repo, tc.digest, err, tc.want)
		}
	}
}

func TestNewManifestNamesTheBytes(t *testing.T) {
	m := NewManifest("application/vnd.oci.image.manifest.v1+json", []byte("{}"))
	if m.Digest != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Fatalf("digest of {} = %s", m.Digest)
	}
}

func FuzzParseRegistry(f *testing.F) {
	f.Add("docker.io")
	f.Add("127.0.0.1:5000")
	f.Fuzz(func(t *testing.T, ns string) {
		if r, err := ParseRegistry(ns); err == nil && (strings.ContainsAny(r, "/\\") || strings.Contains(r, "..")) {
			t.Fatalf("unsafe registry %q accepted", r)
		}
	})
}
