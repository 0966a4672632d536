package swarm

import (
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/infobytes"
)

// ErrNoInfoBytes is returned by InfoBytes for a blob that was never seeded.
var ErrNoInfoBytes = infobytes.ErrNotFound

// InfoBytes returns the info dictionary saved when blob d was last seeded,
// so a restarted node can seed its stored blobs without asking the tracker.
func (s *Swarm) InfoBytes(d digest.Digest) ([]byte, error) {
	return s.infos().Get(d)
}

func (s *Swarm) saveInfoBytes(d digest.Digest, b []byte) error {
	return s.infos().Put(d, b)
}

func (s *Swarm) deleteInfoBytes(d digest.Digest) error {
	return s.infos().Delete(d)
}

func (s *Swarm) infos() infobytes.Dir { return infobytes.New(s.store) }
