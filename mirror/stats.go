package mirror

import "github.com/blobswarm/blobswarm/blobswarm/swarm"

// Stats is a snapshot of what a mirror served and where its bytes came
// from, for the demo's table and `mirrorctl status`.
type Stats struct {
	BytesServed     int64 `json:"bytesServed"`
	BytesFromOrigin int64 `json:"bytesFromOrigin"`
	BytesFromPeers  int64 `json:"bytesFromPeers"`
	BytesFromSeeder int64 `json:"bytesFromSeeder"`
	BlobHits        int64 `json:"blobHits"`
	BlobMisses      int64 `json:"blobMisses"`
	BytesUploaded   int64 `json:"bytesUploaded"`
}

// Stats reads the mirror's counters.
func (m *Mirror) Stats() Stats {
	s := Stats{
		BytesServed:     m.metrics.bytesServed.value(),
		BytesFromOrigin: m.metrics.originBytes.value(),
		BlobHits:        m.metrics.cache.WithLabelValues("blob", "hit").value(),
		BlobMisses:      m.metrics.cache.WithLabelValues("blob", "miss").value() + m.metrics.cache.WithLabelValues("blob", "joined").value(),
	}
	if m.swarm != nil {
		st := m.swarm.Stats()
		s.BytesFromPeers, s.BytesFromSeeder = m.swarmReceived(st)
		s.BytesUploaded = st.Uploaded
	}
	return s
}

// swarmReceived splits the swarm's received bytes into those from other
// mirrors and those from a tracker's seeder.
func (m *Mirror) swarmReceived(st swarm.Stats) (peers, seeder int64) {
	return st.Downloaded - st.FromSeeders, st.FromSeeders
}
