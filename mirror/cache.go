package mirror

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/store"
)

// openCache accounts what the store holds and the room blobs arriving
// hold (cache.Open), and starts evicting past the quota.
func (m *Mirror) openCache(ctx context.Context, quota int64) error {
	var err error
	m.cache, err = cache.Open(cache.Config{Quota: quota, High: m.cfg.CacheHighWatermark, Low: m.cfg.CacheLowWatermark}, m.store)
	if err != nil {
		return err
	}
	m.metrics.registry.MustRegister(cacheCollector{m.cache})
	go m.cache.Run(ctx, m.evict)
	return nil
}

// evict removes a blob from the swarm first, which tells the tracker the
// node no longer has it, then from disk. A client still reading it keeps
// its open file.
func (m *Mirror) evict(d digest.Digest) error {
	if m.swarm != nil {
		m.swarm.Drop(d)
	}
	if err := m.store.Delete(d); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Warn("evict", "digest", d, "err", err)
		return err
	}
	m.log.Info("evicted blob", "digest", d)
	return nil
}

// stored accounts a fetch that ended on a disk that ran out of room,
// which makes room for the next try at once. (A blob stored is accounted
// by the store's commit, cache.Open.)
func (m *Mirror) stored(err error) {
	var full *store.NoSpaceError
	switch {
	case errors.As(err, &full):
		// Free what the blob lacked, plus a margin for the metadata that
		// goes with it.
		avail, aerr := cache.Available(m.cfg.Data)
		if aerr != nil {
			m.log.Warn("disk full", "err", aerr)
			return
		}
		need := full.Size - avail + 1<<20
		m.log.Error("disk full: evicting least recently used blobs", "need", need, "err", err)
		if err := m.cache.Squeeze(context.Background(), need, m.evict); err != nil {
			m.log.Warn("disk full and no room can be made", "err", err)
		}
	}
}

type cacheCollector struct{ c *cache.Cache }

var (
	cacheBytesDesc     = prometheus.NewDesc("blobswarm_mirror_cache_bytes", "Bytes of blobs in the store.", nil, nil)
	cacheReservedDesc  = prometheus.NewDesc("blobswarm_mirror_cache_reserved_bytes", "Bytes held against the quota for blobs arriving.", nil, nil)
	cacheQuotaDesc     = prometheus.NewDesc("blobswarm_mirror_cache_quota_bytes", "Configured cache quota; 0 is unlimited.", nil, nil)
	cacheBlobsDesc     = prometheus.NewDesc("blobswarm_mirror_cache_blobs", "Blobs in the store.", nil, nil)
	cacheEvictionsDesc = prometheus.NewDesc("blobswarm_mirror_cache_evictions_total", "Blobs evicted to stay under the quota or make room on a full disk.", nil, nil)
	cacheEvictedDesc   = prometheus.NewDesc("blobswarm_mirror_cache_evicted_bytes_total", "Bytes of evicted blobs.", nil, nil)
)

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheBytesDesc
	ch <- cacheReservedDesc
	ch <- cacheQuotaDesc
	ch <- cacheBlobsDesc
	ch <- cacheEvictionsDesc
	ch <- cacheEvictedDesc
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(cacheReservedDesc, prometheus.GaugeValue, float64(st.Reserved))
	ch <- prometheus.MustNewConstMetric(cacheQuotaDesc, prometheus.GaugeValue, float64(st.Quota))
	ch <- prometheus.MustNewConstMetric(cacheBlobsDesc, prometheus.GaugeValue, float64(st.Blobs))
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheEvictedDesc, prometheus.CounterValue, float64(st.EvictedBytes))
}
