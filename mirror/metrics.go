package mirror

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are per mirror instance (not the global registry) so several
// mirrors can live in one test process.
type metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	cache           *counterVec
	bytesServed     *counter
	originBytes     *counter
	upstreamErrors  *prometheus.CounterVec
	inflight        prometheus.Gauge
	staleManifests  prometheus.Counter
	fetchesBySource *prometheus.CounterVec
	fallbacks       *prometheus.CounterVec
}

func newMetrics() *metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &metrics{
		registry: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_mirror_requests_total", Help: "Registry API requests by kind, method and status code.",
		}, []string{"kind", "method", "code"}),
		cache: &counterVec{CounterVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_mirror_cache_total", Help: "Blob and manifest lookups by result (hit, miss, joined: a miss that joined an in-flight fetch).",
		}, []string{"kind", "result"})},
		bytesServed: &counter{Counter: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blobswarm_mirror_served_bytes_total", Help: "Blob bytes sent to clients.",
		})},
		originBytes: &counter{Counter: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blobswarm_mirror_received_bytes_total", Help: "Blob bytes received, by source (origin, peers, seeder).",
			ConstLabels: prometheus.Labels{"source": "origin"},
		})},
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_mirror_upstream_errors_total", Help: "Failed upstream requests by upstream registry.",
		}, []string{"upstream"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blobswarm_mirror_inflight_fetches", Help: "Blob fetches in progress.",
		}),
		staleManifests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blobswarm_mirror_stale_manifests_total", Help: "Tags answered from the cache because the upstream was unreachable or rate limited (429).",
		}),
		fetchesBySource: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_mirror_fetches_total", Help: "Completed blob fetches by source and result.",
		}, []string{"source", "result"}),
	}
	f(m.requests)
	f(m.cache)
	f(m.bytesServed)
	f(m.originBytes)
	f(m.upstreamErrors)
	f(m.inflight)
	f(m.staleManifests)
	f(m.fetchesBySource)
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blobswarm_mirror_origin_fallbacks_total", Help: "Blob fetches that went to the origin: all of the blob for want of the tracker (reason=tracker-down: no replica reachable; tracker-refused: secret, peer-cidr or an unsigned answer; tracker-busy: its seeder had no room; tracker-origin: it answered that its origin failed; tracker-slow: no torrent within metainfo-timeout; tracker-error: any other answer) or because the swarm failed (reason=swarm), or the pieces a stalled swarm lacked (reason=pieces); and tags resolved at the origin because no tracker gave a usable answer (reason=tag: down, refused, or unsigned).",
	}, []string{"reason"})
	f(m.fallbacks)
	return m
}

// counter is a Prometheus counter that also keeps its value as an integer,
// which Stats reads: a prometheus.Counter gives its value back only
// through the exposition format. Counts are whole numbers of bytes or
// lookups.
type counter struct {
	prometheus.Counter
	n atomic.Int64
}

func (c *counter) Inc() { c.Add(1) }

func (c *counter) Add(v float64) {
	c.Counter.Add(v)
	c.n.Add(int64(v))
}

func (c *counter) value() int64 { return c.n.Load() }

// counterVec is a CounterVec whose children are counters.
type counterVec struct {
	*prometheus.CounterVec
	children sync.Map // label values joined by "\xff", which UTF-8 never has -> *counter
}

func (v *counterVec) WithLabelValues(lvs ...string) *counter {
	key := strings.Join(lvs, "\xff")
	if c, ok := v.children.Load(key); ok {
		return c.(*counter)
	}
	c, _ := v.children.LoadOrStore(key, &counter{Counter: v.CounterVec.WithLabelValues(lvs...)})
	return c.(*counter)
}

// swarmCollector reports what the BitTorrent client counted, split by
// whether the other end was the tracker's seeder or another mirror.
type swarmCollector struct{ m *Mirror }

var (
	receivedDesc  = prometheus.NewDesc("blobswarm_mirror_received_bytes_total", "Blob bytes received, by source (origin, peers, seeder).", []string{"source"}, nil)
	uploadedDesc  = prometheus.NewDesc("blobswarm_mirror_uploaded_bytes_total", "Piece bytes uploaded to peers.", nil, nil)
	redundantDesc = prometheus.NewDesc("blobswarm_mirror_redundant_bytes_total", "Piece bytes received from peers that the node already had (asked of two peers), thrown away.", nil, nil)
	bannedDesc    = prometheus.NewDesc("blobswarm_mirror_banned_peers", "Peers banned for sending data that failed a piece hash.", nil, nil)
	swarmsDesc    = prometheus.NewDesc("blobswarm_mirror_torrents", "Torrents this node is downloading or seeding.", nil, nil)
)

func (c swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- uploadedDesc
	ch <- redundantDesc
	ch <- bannedDesc
	ch <- swarmsDesc
}

func (c swarmCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.swarm.Stats()
	peers, seeder := c.m.swarmReceived(st)
	ch <- prometheus.MustNewConstMetric(receivedDesc, prometheus.CounterValue, float64(peers), "peers")
	ch <- prometheus.MustNewConstMetric(receivedDesc, prometheus.CounterValue, float64(seeder), "seeder")
	ch <- prometheus.MustNewConstMetric(uploadedDesc, prometheus.CounterValue, float64(st.Uploaded))
	ch <- prometheus.MustNewConstMetric(redundantDesc, prometheus.CounterValue, float64(st.Redundant))
	ch <- prometheus.MustNewConstMetric(bannedDesc, prometheus.GaugeValue, float64(len(st.Banned)))
	ch <- prometheus.MustNewConstMetric(swarmsDesc, prometheus.GaugeValue, float64(len(st.Torrents)))
}
