package mirror

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Stats and /metrics count the same events, so they must agree.
func TestStatsAgreeWithTheMetrics(t *testing.T) {
	m := &Mirror{metrics: newMetrics()}
	m.metrics.bytesServed.Add(5 << 30)
	m.metrics.originBytes.Add(1234)
	for _, result := range []string{"hit", "hit", "miss", "joined"} {
		m.metrics.cache.WithLabelValues("blob", result).Inc()
	}
	m.metrics.cache.WithLabelValues("manifest", "hit").Inc()

	want := Stats{BytesServed: 5 << 30, BytesFromOrigin: 1234, BlobHits: 2, BlobMisses: 2}
	if got := m.Stats(); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	cache := m.metrics.cache.CounterVec
	for _, c := range []struct {
		name   string
		metric prometheus.Counter
		want   float64
	}{
		{"served bytes", m.metrics.bytesServed.Counter, 5 << 30},
		{"origin bytes", m.metrics.originBytes.Counter, 1234},
		{"blob hits", cache.WithLabelValues("blob", "hit"), 2},
		{"blob misses", cache.WithLabelValues("blob", "miss"), 1},
		{"manifest hits", cache.WithLabelValues("manifest", "hit"), 1},
	} {
		var d dto.Metric
		if err := c.metric.Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != c.want {
			t.Errorf("metric of %s = %v, want %v", c.name, got, c.want)
		}
	}
}
