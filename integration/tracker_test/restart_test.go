package tracker_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// A tracker restarted on its data answers metainfo and piece hashes for
// the blobs it seeded before, and seeds them, without asking the origin:
// the torrent from the digest and the stored size, the hashes as saved, or
// read again from the stored blob if they were lost.
func TestRestartedTrackerServesKnownDigestsWithoutTheOrigin(t *testing.T) {
	o := newOrigin(t)
	blobs := map[digest.Digest][]byte{}
	for _, size := range []int{1 << 20, 300 << 10} {
		b, d := harness.PushRandomBlob(t, o, "team/app", size)
		blobs[d] = b
	}
	o.Reset()
	data := t.TempDir()
	args := trackerArgs(o, data)
	tr := harness.Start(t, "tracker", args...)

	infos := map[digest.Digest][]byte{}
	var lost digest.Digest
	for d, b := range blobs {
		info := awaitMetainfo(t, tr, o.Host(), "team/app", d)
		if want := harness.BlobTorrent(t, d, b); !bytes.Equal(info, want) {
			t.Fatalf("%s: served info bytes differ from torrentmeta.ForBlob of the blob", d)
		}
		if !bytes.Equal(awaitPieces(t, tr, o.Host(), "team/app", d), harness.PieceSums(t, d, b)) {
			t.Fatalf("%s: piece hashes differ from the blob's", d)
		}
		infos[d] = info
		lost = d
	}

	// A crash, not a clean shutdown: what is on disk must be enough, even
	// with one blob's saved hashes lost.
	tr.Kill()
	if err := os.Remove(filepath.Join(data, "pieces", lost.Algorithm().String(), lost.Encoded())); err != nil {
		t.Fatal(err)
	}
	tr = harness.StartAt(t, tr.Addr, "tracker", args...)
	for d, want := range infos {
		if d != lost {
			// Its hashes on disk: known at once.
			if resp, body := get(t, metainfoURL(tr, o.Host(), "team/app", d)); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("%s after the restart: HTTP %d, want 200 at once with the same torrent", d, resp.StatusCode)
			}
		}
		if info := awaitMetainfo(t, tr, o.Host(), "team/app", d); !bytes.Equal(info, want) {
			t.Fatalf("%s: torrent changed across the restart", d)
		}
		if !bytes.Equal(awaitPieces(t, tr, o.Host(), "team/app", d), harness.PieceSums(t, d, blobs[d])) {
			t.Fatalf("%s: piece hashes after the restart differ from the blob's", d)
		}
	}

	// The restarted seeder seeds again: a peer gets each blob from it,
	// every piece matching the tracker's hashes, and the origin still
	// served each blob once.
	for d, b := range blobs {
		if got := fetchFromSeeder(t, tr, d, infos[d], harness.PieceSums(t, d, b)); !bytes.Equal(got, b) {
			t.Fatalf("%s: bytes from the restarted seeder differ from the blob", d)
		}
	}
	for d := range blobs {
		if n := o.BlobGETs(d); n != 1 {
			t.Fatalf("origin served %s %d times, want once", d, n)
		}
	}
}
