package tracker_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

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
	for d, b := range blobs {
		info := awaitMetainfo(t, tr, o.Host(), "team/app", d)
		want, _, err := torrentmeta.Build(d, bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(info, want) {
			t.Fatalf("%s: served info bytes differ from torrentmeta.Build of the blob", d)
		}
		infos[d] = info
	}

	// A crash, not a clean shutdown: what is on disk must be enough.
	tr.Kill()
	tr = harness.StartAt(t, tr.Addr, "tracker", args...)
	for d, want := range infos {
		resp, body := get(t, metainfoURL(tr, o.Host(), "team/app", d))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s after the restart: HTTP %d, want 200 at once: %s", d, resp.StatusCode, body)
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("%s: info bytes changed across the restart", d)
		}
	}

	// The restarted seeder seeds again: a node gets the blob from it
	// through the tracker, and the origin still served each blob once.
	for d, b := range blobs {
		if got := fetchFromSwarm(t, tr, oci.Blob{Registry: o.Host(), Repo: "team/app", Digest: d}, infos[d]); !bytes.Equal(got, b) {
			t.Fatalf("%s: bytes from the restarted seeder differ from the blob", d)
		}
	}
	for d := range blobs {
		if n := o.BlobGETs(d); n != 1 {
			t.Fatalf("origin served %s %d times, want once", d, n)
		}
	}
}

// fetchFromSwarm downloads blob ref as a mirror would, with peers and
// piece hashes from the tracker only, and returns the stored bytes.
func fetchFromSwarm(t *testing.T, tr *harness.Process, ref oci.Blob, info []byte) []byte {
	t.Helper()
	d := ref.Digest
	parsed, err := torrentmeta.Parse(info, d)
	if err != nil {
		t.Fatal(err)
	}
	trackers := trackerclient.New([]string{tr.URL()}, trackerclient.Options{Timeout: 10 * time.Second})
	hashes := func(ctx context.Context, got func(int, [20]byte)) error {
		return trackers.Pieces(ctx, ref, 0, parsed.NumPieces(), got)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw, err := swarm.New(swarm.Config{ListenAddr: "127.0.0.1:0"}, st, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	p, err := st.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	fl := flight.New(p)
	defer fl.Release()
	dl, err := sw.Download(t.Context(), d, info, []string{tr.URL() + api.AnnouncePath}, fl, hashes, nil)
	if err != nil {
		fl.Abort()
		t.Fatalf("download %s through the tracker: %v", d, err)
	}
	if err := fl.Commit(); err != nil {
		dl.Drop()
		t.Fatalf("commit %s: %v", d, err)
	}
	if err := dl.Seed(); err != nil {
		t.Fatalf("seed %s: %v", d, err)
	}
	fl.Finish(nil)
	f, err := st.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
