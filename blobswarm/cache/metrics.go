package cache

import "github.com/prometheus/client_golang/prometheus"

// NewCollector exports c's state as Prometheus metrics named
// <namespace>_cache_...: the mirror's and the tracker's caches alike.
func NewCollector(c *Cache, namespace string) prometheus.Collector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_cache_"+name, help, nil, nil)
	}
	return collector{c: c,
		bytes:     desc("bytes", "Bytes of blobs in the store."),
		reserved:  desc("reserved_bytes", "Bytes held against the quota for blobs arriving."),
		quota:     desc("quota_bytes", "Configured cache quota; 0 is unlimited."),
		blobs:     desc("blobs", "Blobs in the store."),
		evictions: desc("evictions_total", "Blobs evicted to stay under the quota or make room on a full disk."),
		evicted:   desc("evicted_bytes_total", "Bytes of evicted blobs."),
	}
}

type collector struct {
	c                                                 *Cache
	bytes, reserved, quota, blobs, evictions, evicted *prometheus.Desc
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.reserved, c.quota, c.blobs, c.evictions, c.evicted} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.reserved, prometheus.GaugeValue, float64(st.Reserved))
	ch <- prometheus.MustNewConstMetric(c.quota, prometheus.GaugeValue, float64(st.Quota))
	ch <- prometheus.MustNewConstMetric(c.blobs, prometheus.GaugeValue, float64(st.Blobs))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.EvictedBytes))
}
