package announce

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/torrent/tracker"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// Config tunes a Handler. The zero value gives the defaults.
type Config struct {
	// Interval is how often clients are asked to announce. Default 5s; it
	// is sent in whole seconds, so at least one.
	Interval time.Duration
	// MinInterval is sent as "min interval". Default Interval.
	MinInterval time.Duration
	// PeerTTL is how long a peer stays listed after its last announce.
	// Default three times the longer of Interval and one minute: clients may
	// announce less often than asked, and anacrolix/torrent v1.59.1 waits at
	// least a minute between announces whatever the interval says.
	PeerTTL time.Duration
	// MaxPeers caps the peers in one response, whatever numwant asks.
	// Default 50.
	MaxPeers int
	// TrustedSources are the networks whose announces may name the peer's
	// address with the ip parameter (a NAT gateway or proxy that announces
	// for hosts behind it). From anywhere else ip is ignored: any client
	// could otherwise point a whole fleet at an address of its choosing.
	// Default none.
	TrustedSources []netip.Prefix
	// PeerFilter, if set, refuses announces from peers whose address it
	// rejects (for example a CIDR allow-list).
	PeerFilter func(netip.Addr) bool
	// Registerer receives the handler's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Handler serves announces. Mount it at the path the torrents' announce URL
// names.
type Handler struct {
	store       peerstore.Store
	interval    int32 // seconds
	minInterval int32 // seconds
	peerTTL     time.Duration
	maxPeers    int
	trusted     []netip.Prefix
	filter      func(netip.Addr) bool
	metrics     *metrics
	log         *slog.Logger
}

// poolFactor is how many more peers than it hands out the handler reads from
// the store, so that the ranking has a choice in a large swarm.
const poolFactor = 4

// New returns a Handler that keeps the swarms in store.
func New(store peerstore.Store, cfg Config) (*Handler, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = cfg.Interval
	}
	if cfg.PeerTTL == 0 {
		cfg.PeerTTL = 3 * max(cfg.Interval, time.Minute)
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Interval < time.Second || cfg.MinInterval < time.Second:
		return nil, fmt.Errorf("announce intervals must be at least 1s, got %v and %v", cfg.Interval, cfg.MinInterval)
	case cfg.PeerTTL < cfg.Interval:
		return nil, fmt.Errorf("peer TTL %v is shorter than the announce interval %v", cfg.PeerTTL, cfg.Interval)
	case cfg.MaxPeers < 0:
		return nil, fmt.Errorf("max peers must not be negative, got %d", cfg.MaxPeers)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Handler{
		store:       store,
		interval:    seconds(cfg.Interval),
		minInterval: seconds(cfg.MinInterval),
		peerTTL:     cfg.PeerTTL,
		maxPeers:    cfg.MaxPeers,
		trusted:     cfg.TrustedSources,
		filter:      cfg.PeerFilter,
		metrics:     m,
		log:         cfg.Logger,
	}, nil
}

// PeerTTL is how long a peer stays listed after its last announce.
func (h *Handler) PeerTTL() time.Duration { return h.peerTTL }

func seconds(d time.Duration) int32 {
	return int32(d.Round(time.Second) / time.Second)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	req, err := ParseAnnounce(r.URL.RawQuery)
	if err != nil {
		h.log.Debug("bad announce", "remote", r.RemoteAddr, "err", err)
		h.fail(w, sc, failBadRequest, err.Error())
		return
	}
	ip, err := h.peerIP(r, req)
	if err != nil {
		h.log.Debug("bad announce", "remote", r.RemoteAddr, "err", err)
		h.fail(w, sc, failBadRequest, err.Error())
		return
	}
	if h.filter != nil && !h.filter(ip) {
		h.log.Debug("announce refused", "peer", ip, "info_hash", fmt.Sprintf("%x", req.InfoHash))
		h.fail(w, sc, failRefused, "peer address not allowed")
		return
	}
	self := peerstore.Peer{ID: req.PeerID, Addr: netip.AddrPortFrom(ip, req.Port), Left: req.Left}
	a, err := h.announce(r.Context(), req, self, sc)
	if err != nil {
		h.log.Warn("announce failed", "info_hash", fmt.Sprintf("%x", req.InfoHash), "peer", self.Addr, "err", err)
		h.fail(w, sc, failStore, "tracker storage unavailable")
		return
	}
	h.metrics.announces[req.Event].Inc()
	h.metrics.handedOut.Add(float64(len(a.peers)))
	sc.send(w, a.appendBencode)
}

// peerIP is the address other peers should dial: the request's source, or
// the ip parameter when the source is trusted to speak for others.
func (h *Handler) peerIP(r *http.Request, req Request) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("unusable remote address %q: %w", r.RemoteAddr, err)
	}
	remote, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("unusable remote address %q: %w", r.RemoteAddr, err)
	}
	remote = remote.Unmap()
	if req.IP.IsValid() {
		for _, p := range h.trusted {
			if p.Contains(remote) {
				return req.IP, nil
			}
		}
	}
	return remote, nil
}

// announce records the peer and builds its answer, its peers in sc. The
// store is written before it is read, so the counts include the requester.
func (h *Handler) announce(ctx context.Context, req Request, self peerstore.Peer, sc *scratch) (answer, error) {
	want := h.maxPeers
	if req.NumWant >= 0 {
		want = min(req.NumWant, want)
	}
	if req.Event == tracker.Stopped {
		want = 0
		if err := h.store.Remove(ctx, req.InfoHash, req.PeerID); err != nil {
			return answer{}, err
		}
	} else if err := h.store.Announce(ctx, req.InfoHash, self, h.peerTTL); err != nil {
		return answer{}, err
	}

	a := answer{interval: h.interval, minInterval: h.minInterval}
	var err error
	a.complete, a.incomplete, err = h.store.Counts(ctx, req.InfoHash)
	if err != nil || want == 0 {
		return a, err
	}
	sc.peers, err = h.store.Peers(ctx, req.InfoHash, poolFactor*want+1, sc.peers[:0])
	if err != nil {
		return a, err
	}
	a.peers = pickPeers(sc.peers, self, want)
	return a, nil
}

// fail answers with a failure reason. The status stays 200 whatever went
// wrong: anacrolix/torrent's client reports a 200 with a failure reason as
// "tracker gave failure reason: ...", but any other status as an opaque
// error quoting the raw body, and BitTorrent clients in general look for the
// reason only in a 200 response. Both retry the same way.
func (h *Handler) fail(w http.ResponseWriter, sc *scratch, reason, msg string) {
	h.metrics.failures.WithLabelValues(reason).Inc()
	sc.send(w, func(b []byte) []byte { return appendFailure(b, msg) })
}

// scratch is what an announce works in: the peers read from the store and
// the encoded answer. Both are done with once the answer is written (Write
// copies it into the connection's buffer), so a pool of them serves
// announce after announce instead of two allocations each, one of them
// the 201 peers read for an answer of 50.
type scratch struct {
	peers  []peerstore.Peer
	answer []byte
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// send writes the answer that encode appends to the buffer it is given.
func (sc *scratch) send(w http.ResponseWriter, encode func([]byte) []byte) {
	sc.answer = encode(sc.answer[:0])
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(sc.answer)
}
