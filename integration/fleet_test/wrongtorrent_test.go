package fleet_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestWrongTorrentPeer adds a peer that claims every piece of each layer
// and serves, for each torrent, the pieces of another layer of the same
// size: every block it sends is genuine blob data at the right offset and
// length, only of the wrong torrent. The mirrors drop it as they drop a
// peer sending garbage, and store and serve only the right bytes.
func TestWrongTorrentPeer(t *testing.T) {
	// A capped seeder makes the liar, who answers at once, worth asking.
	f := newFleet(t, fleetOptions{mirrors: fleetSize, trackerArgs: []string{"--upload-rate", strconv.Itoa(8 << 20)}})
	image := f.pushSameSize(t, "team/app:1", imageLayers, 8<<20)
	layers := image.Images[0].Layers
	infos := make([][]byte, len(layers))
	for i, l := range layers {
		infos[i] = awaitMetainfo(t, f, image, l.Digest)
	}
	checkSameShape(t, infos)
	liar := newLiar(t)
	for i, info := range infos {
		other := layers[(i+1)%len(layers)].Digest
		liar.seed(t, info, liarFile{path: harness.BlobPath(f.trackerData, other)})
		liar.announce(t, f.tracker, info)
	}

	liar.checkDropped(t, f, image, "the wrong-torrent peer")
}

// pushSameSize puts an OCI image on the origin as repo:tag whose layers are
// each exactly size random bytes. testimage's gzip tarballs differ in size
// by a few bytes, so one layer's last piece would not fit another's
// torrent; these layers' torrents have the very same pieces but for their
// hashes. Nothing in the fleet unpacks a layer, so plain bytes under the
// uncompressed layer type pull like any other.
func (f *fleet) pushSameSize(t *testing.T, repoTag string, layers int, size int64) testimage.Pushed {
	t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	put := func(mediaType string, b []byte) ocispec.Descriptor {
		d, n, err := harness.PushBlob(t.Context(), f.origin.Server.URL, repo, bytes.NewReader(b), digest.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: n}
	}
	var img testimage.Image
	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	cfg := ocispec.Image{Platform: platform, RootFS: ocispec.RootFS{Type: "layers"}}
	for range layers {
		b := make([]byte, size)
		rand.Read(b)
		l := put(ocispec.MediaTypeImageLayer, b)
		img.Layers = append(img.Layers, l)
		// An uncompressed layer's diff ID is its digest.
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	img.Config = put(ocispec.MediaTypeImageConfig, b)
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    img.Layers,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.PushManifest(t.Context(), f.origin.Server.URL, repo, tag, ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		t.Fatal(err)
	}
	img.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(manifest)), Platform: &platform}
	return testimage.Pushed{
		Ref:        f.origin.Host() + "/" + repoTag,
		Repository: repo,
		Tag:        tag,
		Top:        img.Manifest,
		Images:     []testimage.Image{img},
	}
}

// checkSameShape fails the test unless the torrents, as the tracker made
// them, have the same length and piece length: only then is every piece of
// one a genuine piece of another.
func checkSameShape(t *testing.T, infos [][]byte) {
	t.Helper()
	var first metainfo.Info
	for i, b := range infos {
		var info metainfo.Info
		if err := bencode.Unmarshal(b, &info); err != nil {
			t.Fatalf("decode metainfo %d: %v", i, err)
		}
		if i == 0 {
			first = info
			continue
		}
		if info.TotalLength() != first.TotalLength() || info.PieceLength != first.PieceLength {
			t.Fatalf("torrent %d is %d bytes in pieces of %d, torrent 0 %d in pieces of %d; the test proves nothing",
				i, info.TotalLength(), info.PieceLength, first.TotalLength(), first.PieceLength)
		}
	}
	t.Logf("%d torrents of %d bytes, each %d pieces of %d", len(infos), first.TotalLength(), first.NumPieces(), first.PieceLength)
}
