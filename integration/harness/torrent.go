package harness

import (
	"bytes"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
)

// BlobTorrent is blob b's torrent, as the tracker hands it out: a function
// of its digest and size.
func BlobTorrent(t testing.TB, d digest.Digest, b []byte) []byte {
	t.Helper()
	info, err := torrentmeta.ForBlob(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// PieceSums is the SHA-1 of each piece of blob b, as any node holding it
// computes them and the tracker streams them.
func PieceSums(t testing.TB, d digest.Digest, b []byte) []byte {
	t.Helper()
	sums, err := torrentmeta.PieceSums(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
