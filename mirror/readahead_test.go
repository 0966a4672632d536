package mirror

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// askedSource serves blobs by digest and notes the order in which their
// fetches reached it, after a few milliseconds of jitter as on the way to
// a tracker.
type askedSource struct {
	blobs map[digest.Digest][]byte

	mu    sync.Mutex
	asked []digest.Digest
}

func (s *askedSource) Fetch(_ context.Context, ref oci.Blob, fl *flight.Flight) (Fetched, error) {
	time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
	s.mu.Lock()
	s.asked = append(s.asked, ref.Digest)
	s.mu.Unlock()
	b := s.blobs[ref.Digest]
	if err := fl.Reserve(int64(len(b))); err != nil {
		return nil, err
	}
	_, err := fl.Write(b)
	return nil, err
}

// The source (the tracker, with a swarm) hears of an image's blobs in the
// order a client asks for them: the config, then the layers in manifest
// order.
func TestReadaheadAsksForTheConfigThenEachLayerInOrder(t *testing.T) {
	src := &askedSource{blobs: map[digest.Digest][]byte{}}
	var descs []ocispec.Descriptor
	for i := range 6 {
		b := testBytes(1000 + i)
		d := digest.FromBytes(b)
		src.blobs[d] = b
		descs = append(descs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(b))})
	}
	data, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: descs[0], Layers: descs[1:]})
	if err != nil {
		t.Fatal(err)
	}
	f := newPullFixture(t, src)
	f.m.readahead("registry.example", "library/app", oci.Manifest{MediaType: ocispec.MediaTypeImageManifest, Data: data})
	f.settled(t)
	var want []digest.Digest
	for _, d := range descs {
		want = append(want, d.Digest)
		f.storedBytes(t, d.Digest)
	}
	if !slices.Equal(src.asked, want) {
		t.Fatalf("blobs asked for in the order %v, want the config then the layers: %v", src.asked, want)
	}
}
