// Package mirror is the node-local registry: the distribution-spec pull API
// in front of one or more upstream registries, with a content-addressed
// blob store and a manifest cache on local disk.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/coalesce"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/internal/turns"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
	"github.com/blobswarm/blobswarm/mirror/manifestcache"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// BlobSource fills a flight with a blob's bytes: it reserves the size,
// then writes bytes that are final as they come, or writes bytes at any
// offset and advances the verified prefix as checked ones extend it. It
// returns once every byte is written; the mirror then checks the digest,
// commits, and tells the Fetched, if the source returned one, how the
// commit went. A failed Fetch returns no Fetched.
type BlobSource interface {
	Fetch(ctx context.Context, b oci.Blob, fl *flight.Flight) (Fetched, error)
}

// Fetched is what a source still has to do for a blob it wrote whole once
// the mirror's commit is over: err is the commit's.
type Fetched interface {
	Committed(err error)
}

// Mirror serves the pull API.
type Mirror struct {
	cfg       Config
	log       *slog.Logger
	store     *store.Store
	cache     *cache.Cache
	stop      context.CancelFunc
	manifests *manifestcache.Cache
	upstream  *upstream.Client
	source    BlobSource
	metrics   *metrics
	// swarm and trackers are nil for a plain pull-through mirror.
	swarm    *swarm.Swarm
	trackers *trackerclient.Client

	// fetchSlots bounds the blob fetches of each upstream registry, so a
	// burst of distinct blobs cannot exhaust file descriptors or flood an
	// upstream, and a registry that is slow to send holds up only its own
	// blobs.
	fetchSlots *turns.Queue

	mu      sync.Mutex
	flights map[digest.Digest]*flight.Flight
	// fetches runs the fetch goroutines, so a graceful stop can wait for
	// them (Drain).
	fetches sync.WaitGroup

	tags coalesce.Group[oci.Manifest]
}

// New opens the mirror's data directory. It does not listen; use Handler.
func New(cfg Config, log *slog.Logger) (*Mirror, error) {
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if cfg.AnyRegistry {
		log.Warn("any-registry is set: this mirror fetches from whatever registry a client names, for anyone who reaches its listener")
	}
	st, err := store.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	mc, err := manifestcache.Open(filepath.Join(cfg.Data, "manifests"))
	if err != nil {
		return nil, err
	}
	m := &Mirror{
		cfg:       cfg,
		log:       log,
		store:     st,
		manifests: mc,
		upstream: upstream.New(upstream.Config{Endpoints: s.endpoints, Allow: s.allow, AllowPrivateNetworks: cfg.AllowPrivateNetworks,
			HTTP: upstream.HTTPClient(cfg.UpstreamTimeout, s.roots), IdleTimeout: cfg.FetchIdleTimeout}),
		metrics:    newMetrics(),
		fetchSlots: turns.New(cfg.MaxConcurrentFetches),
		flights:    map[digest.Digest]*flight.Flight{},
	}
	origin := &originSource{up: m.upstream, counters: sourceCounters{
		originBytes: m.metrics.originBytes,
		fetches:     m.metrics.fetchesBySource,
		fallbacks:   m.metrics.fallbacks,
	}}
	m.source = origin
	var ctx context.Context
	ctx, m.stop = context.WithCancel(context.Background())
	if err := m.openCache(ctx, s.cache); err != nil {
		m.stop()
		return nil, err
	}
	if len(cfg.Tracker) > 0 {
		if err := m.joinSwarm(s, origin); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// joinSwarm makes the fleet the source of missing blobs, with origin to
// fall back on.
func (m *Mirror) joinSwarm(s settings, origin *originSource) error {
	// A tracker answers within its metainfo-wait (seconds) or says 202; a
	// hung one must not hold a pull for the full upstream timeout twice
	// (tag, then blob) before the origin fallback.
	m.trackers = trackerclient.New(m.cfg.Tracker, trackerclient.Options{Timeout: trackerTimeout, Roots: s.roots, Secret: s.secret})
	var err error
	m.swarm, err = swarm.New(swarm.Config{
		ListenAddr:         m.cfg.PeerListen,
		AllowedPeers:       s.peerCIDRs,
		StallTimeout:       m.cfg.StallTimeout,
		UploadRate:         m.cfg.UploadRate,
		DownloadRate:       m.cfg.DownloadRate,
		MaxConnsPerTorrent: m.cfg.PeerConns,
		AuthorizeAnnounce:  m.trackers.AuthorizeAnnounce,
	}, m.store, m.log.With("component", "swarm"))
	if err != nil {
		return fmt.Errorf("join swarm: %w", err)
	}
	m.metrics.registry.MustRegister(swarmCollector{m})
	m.source = &swarmSource{swarm: m.swarm, trackers: m.trackers, origin: origin, counters: origin.counters,
		log: m.log, metainfoTimeout: m.cfg.MetainfoTimeout}
	go m.reseed()
	return nil
}

// reseed offers the fleet every stored blob, so a restarted node is a peer
// again at once: a blob's torrent follows from its digest and size.
func (m *Mirror) reseed() {
	n := 0
	err := m.store.Walk(func(d digest.Digest, _ int64) error {
		err := m.swarm.Seed(d, m.trackers.AnnounceURLs())
		switch {
		case errors.Is(err, torrentmeta.ErrEmpty):
			// Nothing to share.
		case err != nil:
			m.log.Warn("reseed", "digest", d, "err", err)
		default:
			n++
		}
		return nil
	})
	if err != nil {
		m.log.Warn("reseed: walking the store failed", "err", err)
	}
	m.log.Info("seeding stored blobs", "count", n)
}

const trackerTimeout = 10 * time.Second

// Close stops evicting and leaves the swarm.
func (m *Mirror) Close() error {
	m.stop()
	if m.swarm != nil {
		return m.swarm.Close()
	}
	return nil
}

// Drain waits until the blob fetches in progress have ended, or ctx has.
// Call it once the server takes no more requests: a blob whose last bytes
// already went to a client is then committed, not lost with the process.
func (m *Mirror) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.fetches.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler serves the registry API plus health and metrics endpoints.
func (m *Mirror) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", m.ready)
	mux.Handle("/metrics", promhttp.HandlerFor(m.metrics.registry, promhttp.HandlerOpts{}))
	mux.Handle(adminapi.Prefix, m.adminHandler())
	// ServeMux would redirect /v2/a/../b/... to /v2/b/... and /v2//x to
	// /v2/x: another repository, or no API path at all. Such a name is
	// invalid, and the API says so with NAME_INVALID.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			m.serveAPI(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (m *Mirror) ready(w http.ResponseWriter, _ *http.Request) {
	if _, err := m.store.Stat(digest.FromString("readyz")); err != nil && err != store.ErrNotFound {
		http.Error(w, "store unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}
