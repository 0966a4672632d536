package mirror

import (
	"context"
	"errors"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"

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
				if child, err := m.manifestForReadahead(registry, repo, d.Digest); err == nil {
					m.readahead(registry, repo, child)
				}
				return
			}
		}
		return
	}
	blobs := img.Layers
	if img.Config != nil {
		blobs = append(blobs, *img.Config)
	}
	for _, b := range blobs {
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

// manifestForReadahead gets a child manifest of an index from the cache or
// the upstream, caching it for the client's request that will follow.
func (m *Mirror) manifestForReadahead(registry, repo string, d digest.Digest) (oci.Manifest, error) {
	if man, err := m.manifests.Get(d); err == nil {
		return man, nil
	}
	data, mediaType, err := m.upstream.GetManifest(context.Background(), registry, repo, d.String(), defaultAccept)
	if err != nil {
		return oci.Manifest{}, err
	}
	man := oci.Manifest{MediaType: mediaType, Digest: digest.FromBytes(data), Data: data}
	if man.Digest != d {
		return oci.Manifest{}, errWrongDigest
	}
	return man, m.manifests.Put(man)
}

var errWrongDigest = errors.New("upstream sent a manifest that does not match its digest")
