package harness

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BlobPath is where the blob store under a node's data directory keeps
// blob d once it passed its digest check (blobstore layout:
// blobs/<alg>/<hex>).
func BlobPath(data string, d digest.Digest) string {
	return filepath.Join(data, "blobs", d.Algorithm().String(), d.Encoded())
}

// StoredBlobs lists the blobs in the store under a node's data directory.
// Every file is hashed: one whose bytes do not match the digest it is
// stored under fails the test, since a node serves whatever is there.
func StoredBlobs(t testing.TB, data string) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	root := filepath.Join(data, "blobs")
	algs, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("read store %s: %v", root, err)
	}
	for _, alg := range algs {
		files, err := os.ReadDir(filepath.Join(root, alg.Name()))
		if err != nil {
			t.Fatalf("read store %s: %v", root, err)
		}
		for _, f := range files {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), f.Name())
			path := filepath.Join(root, alg.Name(), f.Name())
			if err := d.Validate(); err != nil {
				t.Errorf("%s is not named after a digest: %v", path, err)
				continue
			}
			if got, err := digestFile(path, d.Algorithm()); err != nil || got != d {
				t.Errorf("%s holds bytes hashing to %s (%v), not its name", path, got, err)
				continue
			}
			out = append(out, d)
		}
	}
	return out
}

func digestFile(path string, alg digest.Algorithm) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return alg.FromReader(f)
}
