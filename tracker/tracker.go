package tracker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/infobytes"
	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/superseed"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/tracker/announce"
	"github.com/blobswarm/blobswarm/tracker/api"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
	"github.com/blobswarm/blobswarm/tracker/seeder"
	"github.com/blobswarm/blobswarm/tracker/tags"
)

// Tracker is a running tracker (without its HTTP listener).
type Tracker struct {
	cfg    Config
	log    *slog.Logger
	seeds  *seedAnnouncer
	stop   context.CancelFunc
	done   chan struct{}
	seeder *seeder.Seeder
	// cache bounds the seeder's store; a blob is used when asked for.
	cache    *cache.Cache
	tags     *tags.Resolver
	upstream *upstream.Client
	announce *announce.Handler
	redis    redis.UniversalClient
	registry *prometheus.Registry
	seederAt string
	// keys are the fleet's secret's (nil without one); peerCIDRs admit
	// requests (none: loopback and private ranges).
	keys      *api.Keys
	peerCIDRs []netip.Prefix

	metainfoReqs, piecesReqs *prometheus.CounterVec
}

// New resolves cfg and starts a tracker with it (Start).
func New(cfg Config, log *slog.Logger) (*Tracker, error) {
	s, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	return Start(s, log)
}

// Start opens the tracker's data and starts its seeder's BitTorrent client,
// with settings from Config.Resolve.
func Start(s Settings, log *slog.Logger) (*Tracker, error) {
	cfg := s.Config
	st, err := store.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	// Before the seeder: every partial it opens reserves its size here.
	blobs, err := cache.Open(s.cache, st)
	if err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, log: log, cache: blobs, registry: prometheus.NewRegistry(), keys: api.NewKeys(s.secret), peerCIDRs: s.peerCIDRs}
	if s.secret == "" && beyondLoopback(cfg.Listen) {
		log.Warn("tracker reachable beyond loopback without a fleet secret: anyone inside peer-cidr can announce, "+
			"read the manifests and torrents of the configured registries and make the seeder fetch their blobs "+
			"with the tracker's upstream credentials; set secret-file here and tracker-secret-file on the mirrors",
			"listen", cfg.Listen, "key", "secret-file")
	}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t.metainfoReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blobswarm_tracker_metainfo_requests_total", Help: "Metainfo requests by result (ok, pending, busy: the origin queue was full, error).",
	}, []string{"result"})
	t.piecesReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blobswarm_tracker_pieces_requests_total",
		Help: "Piece-hash streams by how they ended (ok: after the last piece; busy: the origin queue was full; error: an error answer; broken: the seeder failed mid-blob; cancelled: the mirror left).",
	}, []string{"result"})
	t.registry.MustRegister(t.metainfoReqs, t.piecesReqs, cache.NewCollector(blobs, "blobswarm_tracker"))

	var peers peerstore.Store = peerstore.NewMemory(peerstore.MemoryOptions{})
	var shared seeder.SharedInfo
	if s.newRedis != nil {
		t.redis = s.newRedis()
		peers = peerstore.NewRedis(t.redis, peerstore.RedisOptions{})
		shared = &redisInfo{client: t.redis}
	}
	t.announce, err = announce.New(peers, announce.Config{
		Interval:   cfg.AnnounceInterval,
		MaxPeers:   cfg.MaxPeers,
		PeerFilter: allowFilter(s.peerCIDRs),
		Registerer: t.registry,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	srv, err := superseed.New(superseed.Config{
		ListenAddr: cfg.PeerListen, AllowedPeers: s.peerCIDRs, UploadRate: cfg.UploadRate, Window: cfg.SeedWindow, Spare: cfg.SeedSpare,
		CompleteElsewhere: func(ih metainfo.Hash, seen []peerstore.PeerID) bool { return mirrorHasAll(peers, ih, seen) },
	}, st, log.With("component", "seeder"))
	if err != nil {
		return nil, err
	}
	t.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "blobswarm_tracker_seeder_uploaded_bytes_total",
			Help: "Piece bytes the seeder sent to mirrors.",
		}, func() float64 { return float64(srv.Stats().Uploaded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "blobswarm_tracker_seeder_piece_offers_total",
			Help: "Pieces the seeder advertised to mirrors: about the piece count of each blob when the fleet trades the rest.",
		}, func() float64 { return float64(srv.Stats().Offers) }),
	)
	t.seederAt = seederAddr(cfg.PeerListen, s.announceURL, srv.ListenPort())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	self, err := resolveSeeder(ctx, t.seederAt)
	cancel()
	if err != nil {
		srv.Close()
		return nil, err
	}
	t.seeds = &seedAnnouncer{Server: srv, peers: peers, ttl: t.announce.PeerTTL(), log: log,
		self: peerstore.Peer{ID: srv.PeerID(), Addr: self}}
	var runCtx context.Context
	runCtx, t.stop = context.WithCancel(context.Background())
	t.done = make(chan struct{})
	go func() {
		defer close(t.done)
		t.seeds.run(runCtx)
	}()
	t.upstream = upstream.New(upstream.Config{Endpoints: s.endpoints, Allow: s.allow, AllowPrivateNetworks: cfg.AllowPrivateNetworks,
		HTTP: upstream.HTTPClient(cfg.UpstreamTimeout, s.roots), IdleTimeout: cfg.FetchIdleTimeout})
	t.seeder = seeder.New(seeder.Config{Shared: shared, OriginFetches: cfg.OriginFetches, OriginQueue: cfg.OriginQueue, OriginReads: cfg.OriginReads},
		st, t.seeds, t.upstream, log)
	t.tags = tags.New(t.upstream, cfg.TagTTL)
	go blobs.Run(runCtx, t.seeder.Evict)
	if cfg.AnyRegistry {
		log.Warn("any-registry is set: the tracker fetches from whatever registry a request names, with its credentials, for anyone who reaches it")
	}
	log.Info("tracker ready", "announce-url", s.announceURL, "seeder", t.seederAt, "redis", cfg.Redis != "", "registries", s.allow.Hosts())
	return t, nil
}

// seederAddr is the seeder's peer address as mirrors see it: the peer
// listen host, or the announce URL's host when listening on a wildcard.
func seederAddr(peerListen, announceURL string, port int) string {
	host, _, _ := net.SplitHostPort(peerListen)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if u, err := url.Parse(announceURL); err == nil {
			host = u.Hostname()
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// beyondLoopback reports whether a listen address can be reached from
// other hosts: a wildcard, a name other than localhost, or an IP that is
// not loopback.
func beyondLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return !ip.IsLoopback()
	}
	return host != "localhost"
}

// allowFilter admits announces from the configured networks; with none
// configured, from the same loopback and private ranges the swarm allows.
func allowFilter(cidrs []netip.Prefix) func(netip.Addr) bool {
	return func(a netip.Addr) bool { return peerfilter.Allowed(cidrs, a) }
}

// Close stops the seeder and releases Redis.
func (t *Tracker) Close() error {
	t.stop()
	<-t.done
	err := t.seeds.Close()
	if t.redis != nil {
		err = errors.Join(err, t.redis.Close())
	}
	return err
}

// Handler serves announces, metainfo, piece hashes, tag resolution, health
// and metrics. Only the probes are open to any address: everything else is
// admitted from peer-cidr, and with the fleet's credential (admit).
func (t *Tracker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+api.AnnouncePath, t.admit(announceToken, t.announce))
	mux.Handle("GET "+api.MetainfoPath, t.admit(apiToken, t.signed(http.HandlerFunc(t.serveMetainfo))))
	mux.Handle("GET "+api.PiecesPath, t.admit(apiToken, http.HandlerFunc(t.servePieces)))
	mux.Handle("GET "+api.ManifestPath, t.admit(apiToken, t.signed(http.HandlerFunc(t.serveManifest))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", t.ready)
	mux.Handle("GET /metrics", t.admit(addressOnly, promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})))
	return mux
}

func (t *Tracker) ready(w http.ResponseWriter, r *http.Request) {
	if t.redis != nil {
		if err := t.redis.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ok\n"))
}

func (t *Tracker) serveMetainfo(w http.ResponseWriter, r *http.Request) {
	b, err := api.ParseBlobQuery(r.URL.Query())
	if err == nil {
		err = t.upstream.Check(b.Registry)
	}
	if err != nil {
		t.writeError(w, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	info, err := t.seeder.Metainfo(r.Context(), b, t.cfg.MetainfoWait)
	switch {
	case errors.Is(err, seeder.ErrPending):
		t.metainfoReqs.WithLabelValues("pending").Inc()
		// The request was held for metainfo-wait already: a mirror asks
		// at most once a second, and at once after a wait that long.
		api.WritePending(w, time.Second-t.cfg.MetainfoWait)
		return
	case errors.Is(err, seeder.ErrBusy):
		t.metainfoReqs.WithLabelValues("busy").Inc()
		t.writeBusy(w, b)
		return
	case err != nil:
		t.metainfoReqs.WithLabelValues("error").Inc()
		t.writeError(w, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	t.metainfoReqs.WithLabelValues("ok").Inc()
	t.cache.Use(b.Digest)()
	w.Header().Set("Content-Type", api.MetainfoType)
	w.Header().Set("Content-Length", strconv.Itoa(len(info)))
	w.Write(info)
}

// servePieces streams the piece hashes of a blob from piece from on, each
// batch flushed as soon as the seeder knows it, and ends the answer only
// after the last piece. A seeder that fails the blob mid-stream breaks the
// answer instead of ending it, so a mirror never takes a cut stream for a
// whole one; its next request gets the error.
//
// With the fleet's secret the stream is signed like metainfo and tags, in
// a trailer after the last hash: a mirror lets a range end before the
// blob's digest matched only on pieces whose hashes the tracker vouched
// for, and the seeder gives the last hash only after the digest matched.
func (t *Tracker) servePieces(w http.ResponseWriter, r *http.Request) {
	b, from, err := api.ParsePiecesQuery(r.URL.Query())
	if err == nil {
		err = t.upstream.Check(b.Registry)
	}
	if err != nil {
		t.piecesReqs.WithLabelValues("error").Inc()
		t.writeError(w, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	h, err := t.seeder.Hashes(r.Context(), b)
	if err == nil && from > h.Pieces() {
		err = api.ErrorCodeParamInvalid.WithMessage(fmt.Sprintf("%s=%d is past the %d pieces of %s", api.ParamFrom, from, h.Pieces(), b.Digest))
	}
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			t.piecesReqs.WithLabelValues("cancelled").Inc()
			return
		case errors.Is(err, seeder.ErrBusy):
			t.piecesReqs.WithLabelValues("busy").Inc()
			t.writeBusy(w, b)
			return
		}
		t.piecesReqs.WithLabelValues("error").Inc()
		t.writeError(w, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	// Held while the hashes stream, so that a blob the fleet is fetching
	// is not evicted under it.
	defer t.cache.Use(b.Digest)()
	rc := http.NewResponseController(w)
	// The answer lasts as long as the origin takes to send the blob: a
	// server's read and write timeouts, meant for ordinary answers, must
	// not cut it. A writer without deadlines has none to lift.
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", api.PiecesType)
	var sent hash.Hash
	if t.keys != nil {
		sent = sha256.New()
		w.Header().Set("Trailer", api.SignatureHeader)
	}
	w.WriteHeader(http.StatusOK)
	// The headers go at once: the mirror knows the stream is on while the
	// first piece is still on its way from the origin.
	if err := rc.Flush(); err != nil {
		t.piecesReqs.WithLabelValues("cancelled").Inc()
		return
	}
	for i := from; i < h.Pieces(); {
		sums, err := h.Next(r.Context(), i)
		if r.Context().Err() != nil {
			t.piecesReqs.WithLabelValues("cancelled").Inc()
			return
		}
		if err != nil {
			t.piecesReqs.WithLabelValues("broken").Inc()
			t.log.Warn("piece hashes stream broken", "digest", b.Digest, "piece", i, "err", err)
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(sums); err != nil {
			t.piecesReqs.WithLabelValues("cancelled").Inc()
			return
		}
		if sent != nil {
			sent.Write(sums)
		}
		if err := rc.Flush(); err != nil {
			t.piecesReqs.WithLabelValues("cancelled").Inc()
			return
		}
		i += len(sums) / api.PieceHashSize
	}
	if sent != nil {
		t.keys.SignSum(r, http.StatusOK, w.Header(), sent.Sum(nil))
	}
	t.piecesReqs.WithLabelValues("ok").Inc()
}

func (t *Tracker) serveManifest(w http.ResponseWriter, r *http.Request) {
	registry, repo, tag, err := api.ParseTagQuery(r.URL.Query())
	if err == nil {
		err = t.upstream.Check(registry)
	}
	if err != nil {
		t.writeError(w, err, errcode.ErrorCodeManifestUnknown)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.cfg.UpstreamTimeout)
	defer cancel()
	m, err := t.tags.Resolve(ctx, registry, repo, tag, r.Header.Values("Accept"))
	if err != nil {
		t.writeError(w, err, errcode.ErrorCodeManifestUnknown)
		return
	}
	w.Header().Set("Content-Type", m.MediaType)
	w.Header().Set("Docker-Content-Digest", m.Digest.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(m.Data)))
	w.Write(m.Data)
}

// busyRetry is the Retry-After of a busy answer: the queue it found full
// drains at the origin's pace. Mirrors do not wait for it; they fetch the
// blob from the origin themselves.
const busyRetry = 5 * time.Second

// writeBusy answers a request for blob b the seeder has no room to queue:
// 503 BUSY, Retry-After, which a mirror takes for a tracker that cannot
// help with this blob now.
func (t *Tracker) writeBusy(w http.ResponseWriter, b oci.Blob) {
	t.log.Warn("origin queue full: blob refused", "registry", b.Registry, "repo", b.Repo, "digest", b.Digest, "origin-queue", t.cfg.OriginQueue)
	w.Header().Set("Retry-After", strconv.Itoa(int(busyRetry/time.Second)))
	errcode.ServeJSON(w, api.ErrorCodeBusy.WithMessage(seeder.ErrBusy.Error()))
}

func (t *Tracker) writeError(w http.ResponseWriter, err error, unknown errcode.ErrorCode) {
	if errors.As(err, new(*cache.QuotaError)) {
		// A blob the seeder has no room for: mirrors fetch it from the
		// origin themselves.
		errcode.ServeJSON(w, api.ErrorCodeBusy.WithMessage(err.Error()))
		return
	}
	upstream.SetRetryAfter(w.Header(), err)
	e, internal := upstream.ClientError(err, unknown)
	var ue *upstream.Error
	switch {
	case internal:
		t.log.Error("tracker request failed", "err", err)
	case errors.As(err, &ue) && ue.Status != http.StatusNotFound:
		// The client's message only names the upstream; why it failed
		// is for the operator.
		t.log.Warn("upstream failed", "err", err)
	}
	errcode.ServeJSON(w, e)
}

// redisInfo shares digest-to-torrent answers between tracker replicas:
// the info bytes and the piece hashes of each blob, under two keys.
type redisInfo struct{ client redis.UniversalClient }

const (
	infoKeyPrefix   = "blobswarm:info:"
	piecesKeyPrefix = "blobswarm:pieces:"
)

// Get returns both or neither: info bytes without hashes are a torrent
// published by a tracker from before they were streamed, whose pieces
// this one cannot vouch for.
func (r *redisInfo) Get(ctx context.Context, d digest.Digest) (info, sums []byte, err error) {
	vals, err := r.client.MGet(ctx, infoKeyPrefix+d.String(), piecesKeyPrefix+d.String()).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("torrent of %s from redis: %w", d, err)
	}
	info, okInfo := redisBytes(vals[0])
	sums, okSums := redisBytes(vals[1])
	if !okInfo || !okSums {
		return nil, nil, fmt.Errorf("torrent of %s in redis: %w", d, infobytes.ErrNotFound)
	}
	return info, sums, nil
}

// redisBytes is an MGET value: a string, or nil for a missing key.
func redisBytes(v any) ([]byte, bool) {
	s, ok := v.(string)
	return []byte(s), ok
}

// Delete removes both keys.
func (r *redisInfo) Delete(ctx context.Context, d digest.Digest) error {
	return r.client.Del(ctx, infoKeyPrefix+d.String(), piecesKeyPrefix+d.String()).Err()
}

// Put sets both keys in one transaction, so no replica reads one without
// the other.
func (r *redisInfo) Put(ctx context.Context, d digest.Digest, info, sums []byte) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, infoKeyPrefix+d.String(), info, 0)
		p.Set(ctx, piecesKeyPrefix+d.String(), sums, 0)
		return nil
	})
	return err
}
