package mirror

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// readahead starts every blob of an image into the swarm as soon as a
// client has its manifest: clients ask for one to three layers at a time,
// and the swarm trades best when every layer is in flight at once. For an
// index it reads ahead the manifest of this node's platform.
func (m *Mirror) readahead(registry, repo string, man oci.Manifest) {
	img, err := oci.ParseImage(man)
	if err != nil {
		return
	}
	if len(img.Manifests) > 0 {
		want, _ := platforms.Parse(m.cfg.Platform)
		match := platforms.Only(want)
		for _, d := range img.Manifests {
			if d.Platform != nil && match.Match(*d.Platform) {
				// Through the manifest cache, where the client's request
				// for this child, which comes next, will find it.
				child, err := m.manifest(context.Background(), manifestRef{registry: registry, repo: repo, digest: d.Digest}, nil)
				if err == nil {
					m.readahead(registry, repo, child)
				}
				return
			}
		}
		return
	}
	// In the order a client asks for them, config first, each once the one
	// before has an answer: the tracker's seeder reads an image's bodies
	// from the origin in the order it is asked for them, so the first
	// layers finish first; started together, they would reach it in
	// whatever order their goroutines ran. A manifest may name thousands:
	// the first readahead-blobs are read ahead, and none while
	// readahead-fetches wait for a slot; clients ask for the rest.
	var blobs []ocispec.Descriptor
	if img.Config != nil {
		blobs = append(blobs, *img.Config)
	}
	blobs = append(blobs, img.Layers...)
	started := 0
	var prev *flight.Flight
	var stopped error
	for _, b := range blobs[:min(len(blobs), m.cfg.ReadaheadBlobs)] {
		if b.Digest.Validate() != nil {
			continue
		}
		if prev != nil {
			ctx, cancel := context.WithTimeout(context.Background(), readaheadStep)
			prev.Size(ctx)
			cancel()
			prev.Release()
		}
		var err error
		prev, _, err = m.flight(oci.Blob{Registry: registry, Repo: repo, Digest: b.Digest}, ask{size: b.Size, readahead: true})
		if errors.Is(err, errQueueFull) {
			stopped = err
			break
		}
		if err != nil {
			m.log.Warn("readahead", "digest", b.Digest, "err", err)
			continue
		}
		started++
	}
	if prev != nil {
		prev.Release()
	}
	switch {
	case stopped != nil:
		m.log.Info(stopped.Error(), "registry", registry, "repo", repo, "blobs", len(blobs), "read-ahead", started, "readahead-fetches", m.cfg.ReadaheadFetches)
	case len(blobs) > m.cfg.ReadaheadBlobs:
		m.log.Info("read-ahead stopped: the manifest names more blobs than readahead-blobs", "registry", registry, "repo", repo, "blobs", len(blobs), "read-ahead", started, "readahead-blobs", m.cfg.ReadaheadBlobs)
	}
}

// readaheadStep bounds the wait for one blob's answer before the next is
// asked for: a tracker that says 202 (the origin has not answered) holds
// up the image's order, not its fetches.
const readaheadStep = time.Second
