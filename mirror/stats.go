package mirror

import (
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
}

// Stats reads the mirror's counters.
func (m *Mirror) Stats() Stats {
	src := func(s string) int64 { return counterValue(m.metrics.bytesBySource.WithLabelValues(s)) }
	return Stats{
		BytesServed:     counterValue(m.metrics.bytesServed),
		BytesFromOrigin: src("origin"),
		BytesFromPeers:  src("peers"),
		BytesFromSeeder: src("seeder"),
		BlobHits:        counterValue(m.metrics.cache.WithLabelValues("blob", "hit")),
		BlobMisses:      counterValue(m.metrics.cache.WithLabelValues("blob", "miss")) + counterValue(m.metrics.cache.WithLabelValues("blob", "joined")),
	}
}

func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return int64(d.GetCounter().GetValue())
}
