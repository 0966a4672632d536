package mirror

import (
	"context"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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
	// In the order a client asks for them, config first: the tracker's
	// seeder reads an image's bodies from the origin in the order asked.
	var blobs []ocispec.Descriptor
	if img.Config != nil {
		blobs = append(blobs, *img.Config)
	}
	for _, b := range append(blobs, img.Layers...) {
		if b.Digest.Validate() != nil {
			continue
		}
		fl, _, err := m.flight(oci.Blob{Registry: registry, Repo: repo, Digest: b.Digest})
		if err != nil {
			m.log.Warn("readahead", "digest", b.Digest, "err", err)
			continue
		}
		if fl != nil {
			fl.Release()
		}
	}
}
