package tracker_test

import (
	"bytes"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/testredis"
)

func TestReplicasOnOneRedisActAsOneTracker(t *testing.T) {
	redis := "redis://" + testredis.Start(t)
	o := newOrigin(t)
	b, d := harness.PushRandomBlob(t, o, "app", 600<<10)
	o.Reset()
	dataB := t.TempDir()
	a := harness.Start(t, "tracker", trackerArgs(o, t.TempDir(), "--redis", redis)...)
	bb := harness.Start(t, "tracker", trackerArgs(o, dataB, "--redis", redis)...)

	// A peer announced at A is handed out by B, and the other way round.
	ih := [20]byte{1, 2, 3}
	if peers := announce(t, a, ih, "-TT0001-aaaaaaaaaaaa", 40001); len(peers) != 0 {
		t.Fatalf("first peer of a swarm got peers %v", peers)
	}
	if peers := announce(t, bb, ih, "-TT0001-bbbbbbbbbbbb", 40002); !slices.Equal(peers, []string{"127.0.0.1:40001"}) {
		t.Fatalf("B handed out %v, want the peer announced at A", peers)
	}
	if peers := announce(t, a, ih, "-TT0001-aaaaaaaaaaaa", 40001); !slices.Equal(peers, []string{"127.0.0.1:40002"}) {
		t.Fatalf("A handed out %v, want the peer announced at B", peers)
	}

	// A fetches and seeds the blob; once its pieces stream has ended,
	// which it does only after A published the torrent, B answers for it
	// at once, torrent and piece hashes, from what A published, without
	// going to the origin.
	info := awaitMetainfo(t, a, o.Host(), "app", d)
	sums := awaitPieces(t, a, o.Host(), "app", d)
	if !bytes.Equal(sums, harness.PieceSums(t, d, b)) {
		t.Fatal("A's piece hashes differ from the blob's")
	}
	resp, body := get(t, metainfoURL(bb, o.Host(), "app", d))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("B for a blob A seeds: HTTP %d, want 200 at once: %s", resp.StatusCode, body)
	}
	if !bytes.Equal(body, info) {
		t.Fatal("B's info bytes differ from A's")
	}
	if got := awaitPieces(t, bb, o.Host(), "app", d); !bytes.Equal(got, sums) {
		t.Fatal("B's piece hashes differ from A's")
	}
	if n := o.BlobGETs(d); n != 1 {
		t.Fatalf("origin served the blob %d times to two replicas, want once", n)
	}
	err := filepath.WalkDir(dataB, func(path string, _ fs.DirEntry, err error) error {
		if err == nil && strings.Contains(path, d.Encoded()) {
			t.Errorf("B wrote %s for a blob it never needed to fetch", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Mirrors asking B find A's seeder in the swarm: the one peer A lists
	// for the blob before any mirror announced it.
	blobIH := metainfo.HashBytes(info)
	seederA := announce(t, a, blobIH, "-TT0001-dddddddddddd", 40004)
	if len(seederA) != 1 {
		t.Fatalf("A lists %v for a blob only its seeder has, want its seeder", seederA)
	}
	harness.Eventually(t, "A's seeder handed out by B", func() bool {
		return slices.Contains(announce(t, bb, blobIH, "-TT0001-cccccccccccc", 40003), seederA[0])
	})
}
