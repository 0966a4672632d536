package mirror

import (
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

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
		BytesServed:     counterValue(m.metrics.bytesServed),
		BytesFromOrigin: counterValue(m.metrics.originBytes),
		BlobHits:        counterValue(m.metrics.cache.WithLabelValues("blob", "hit")),
		BlobMisses:      counterValue(m.metrics.cache.WithLabelValues("blob", "miss")) + counterValue(m.metrics.cache.WithLabelValues("blob", "joined")),
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

func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return int64(d.GetCounter().GetValue())
}
