// Package superseed is the tracker's seeder on the wire: an upload-only
// BitTorrent peer that serves blobs, stored or still arriving from the
// origin, and hands each piece out about once (see handout), so the
// mirrors trade the rest among themselves and the origin's host sends an
// image about once per rollout. It speaks the peer wire protocol through
// anacrolix's peer_protocol package (handshake, message framing); what it
// adds is the hand-out policy, which the anacrolix client does not have.
package superseed

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/opencontainers/go-digest"
	"golang.org/x/time/rate"

	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/blobswarm/uploadcap"
)

// Config tunes a Server. The zero value is usable; New applies defaults.
type Config struct {
	// ListenAddr is host:port for peer connections (default ":6881").
	ListenAddr string
	// AllowedPeers are the networks peers may connect from (none given:
	// peerfilter.DefaultAllowed, as for the mirrors).
	AllowedPeers []netip.Prefix
	// UploadRate caps piece data in bytes/s; 0 is unlimited.
	UploadRate int64
	// Window is how many bytes of pieces a peer is offered ahead of what
	// it has (at least two pieces; zero: two pieces). Small, so the
	// seeder's link carries few pieces at a time and each completes, and
	// can be passed on, early: on the fleet bench 2 MiB beat 8 MiB of
	// 1 MiB pieces (4 hosts 7.4-7.7 s against 8.2 s, 8 hosts 9.7-10.0 s
	// against 10.3-10.9 s), and two pieces stayed best as pieces shrank.
	Window int64
	// Patience is how long a peer with nothing offered may gain no piece
	// before the seeder offers it one that others have (default 3s).
	Patience time.Duration
	// Spare lets the seeder, once it holds a blob, fill the window of a
	// peer gaining slower than the fastest peer has shown a host can with
	// the rarest pieces, as many peers at once as its link carries at
	// that rate (handout.spare): on a link faster than a host's it
	// otherwise idles while the fleet is short of upload.
	Spare bool
	// HandshakeTimeout bounds the BitTorrent handshake (default 2s).
	HandshakeTimeout time.Duration
	// CompleteElsewhere, when set, reports whether one of the peers the
	// seeder saw with the whole blob of an infohash on its own connections
	// (their peer IDs, never empty) still has it: peers that finish drop
	// their connection, and the tracker's peer store knows whether they
	// are still there. The seeder then leaves newcomers to the fleet. What
	// a peer says only to the tracker cannot make the seeder step back.
	CompleteElsewhere func(ih metainfo.Hash, seen [][20]byte) bool
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = ":6881"
	}
	if c.Patience <= 0 {
		c.Patience = 3 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 2 * time.Second
	}
	return c
}

// Server seeds blobs from a store.
type Server struct {
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	ln      net.Listener
	peerID  [20]byte
	limiter *rate.Limiter

	uploaded, offers atomic.Int64

	// mu guards the torrent maps; each blob guards its own peers.
	mu       sync.Mutex
	torrents map[metainfo.Hash]*blob
	byDigest map[digest.Digest]*blob

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New listens for peers and starts serving.
func New(cfg Config, st *store.Store, log *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("seeder listen on %s: %w", cfg.ListenAddr, err)
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		log:      log,
		ln:       ln,
		torrents: map[metainfo.Hash]*blob{},
		byDigest: map[digest.Digest]*blob{},
	}
	copy(s.peerID[:], peerid.SeederPrefix)
	if _, err := rand.Read(s.peerID[len(peerid.SeederPrefix):]); err != nil {
		ln.Close()
		return nil, fmt.Errorf("seeder peer id: %w", err)
	}
	if cfg.UploadRate > 0 {
		s.limiter = uploadcap.Limiter(cfg.UploadRate, maxRequest)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.accept()
	go s.tick()
	return s, nil
}

// ListenPort is the port peers connect to.
func (s *Server) ListenPort() int { return s.ln.Addr().(*net.TCPAddr).Port }

// PeerID is what the seeder calls itself in handshakes and announces.
func (s *Server) PeerID() [20]byte { return s.peerID }

// Close stops serving and drops every peer.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	ts := s.byDigest
	s.torrents, s.byDigest = map[metainfo.Hash]*blob{}, map[digest.Digest]*blob{}
	s.mu.Unlock()
	for _, t := range ts {
		t.close()
	}
	s.wg.Wait()
	return err
}

// Seed serves stored blob d under the torrent of infoBytes. Seeding a
// blob again with the same info bytes is a no-op.
func (s *Server) Seed(d digest.Digest, infoBytes []byte) error {
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		return err
	}
	ih := metainfo.HashBytes(infoBytes)
	s.mu.Lock()
	old, ok := s.byDigest[d]
	s.mu.Unlock()
	if ok {
		if old.hash != ih {
			return fmt.Errorf("seed %s: already seeded with other info bytes", d)
		}
		return nil
	}
	f, err := s.openStored(d, info)
	if err != nil {
		return err
	}
	t := newBlob(d, ih, info, f, s.configure(newHandout(info.NumPieces(), s.window(info), s.cfg.Patience), info), &s.offers)
	t.file = f
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byDigest[d]; ok || s.ctx.Err() != nil {
		// Lost a race with another Seed, or closing.
		f.Close()
		return nil
	}
	s.byDigest[d], s.torrents[ih] = t, t
	return nil
}

// openStored opens stored blob d, which must be as long as its torrent.
func (s *Server) openStored(d digest.Digest, info metainfo.Info) (*os.File, error) {
	f, err := s.store.Open(d)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", d, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != info.Length {
		f.Close()
		return nil, fmt.Errorf("seed %s: stored blob does not match its torrent (%d bytes expected): %w", d, info.Length, err)
	}
	return f, nil
}

// configure gives a blob's hand-out the server's spare offers and the
// blob's piece length, for stored and growing blobs alike.
func (s *Server) configure(h *handout, info metainfo.Info) *handout {
	h.spare, h.pieceLen = s.cfg.Spare, float64(info.PieceLength)
	return h
}

// window is how many pieces of a blob a peer is offered at once.
func (s *Server) window(info metainfo.Info) int {
	return int(max(2, s.cfg.Window/info.PieceLength)) // two pieces when Window is zero
}

// Growing is a blob the seeder serves while it arrives from the origin:
// peers are offered the pieces it has been told about, and nothing else.
type Growing struct {
	s *Server
	t *blob
}

// SeedGrowing serves blob d under the torrent of infoBytes while its bytes
// arrive in r, from before the first one: peers connect and wait, and
// each piece is offered once Have says r holds it. Stored moves it to the
// store's file, Drop ends it; until one of them, r must stay readable.
func (s *Server) SeedGrowing(d digest.Digest, infoBytes []byte, r io.ReaderAt) (*Growing, error) {
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		return nil, err
	}
	ih := metainfo.HashBytes(infoBytes)
	t := newBlob(d, ih, info, r, s.configure(newGrowingHandout(info.NumPieces(), s.window(info), s.cfg.Patience), info), &s.offers)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("seed %s: %w", d, net.ErrClosed)
	}
	if _, ok := s.byDigest[d]; ok {
		return nil, fmt.Errorf("seed %s while it arrives: already seeded", d)
	}
	s.byDigest[d], s.torrents[ih] = t, t
	return &Growing{s: s, t: t}, nil
}

// Have says the reader holds piece i, whole: it is offered at once to a
// peer with room for it.
func (g *Growing) Have(i int) {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	g.t.deliver(g.t.policy.hold(i, time.Now()))
}

// Stored says the blob is in the store: it is served from the store's file
// from now on, every piece held, and the reader SeedGrowing was given is
// not read again once Stored returns.
func (g *Growing) Stored() error {
	f, err := g.s.openStored(g.t.d, g.t.info)
	if err != nil {
		return err
	}
	g.t.dataMu.Lock()
	if g.t.data == nil {
		g.t.dataMu.Unlock()
		f.Close()
		return fmt.Errorf("seed %s from the store: dropped", g.t.d)
	}
	g.t.data, g.t.file = f, f
	g.t.dataMu.Unlock()
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	now := time.Now()
	for i := range g.t.info.NumPieces() {
		g.t.deliver(g.t.policy.hold(i, now))
	}
	return nil
}

// Drop stops serving the blob and disconnects its peers: its bytes turned
// out wrong, or never all came. The reader is not read again once Drop
// returns.
func (g *Growing) Drop() { g.s.drop(g.t) }

// Drop stops serving blob d, stored or arriving, and disconnects its
// peers: it is leaving the store. It returns the infohash it was served
// under, and false if it was not served.
func (s *Server) Drop(d digest.Digest) (metainfo.Hash, bool) {
	s.mu.Lock()
	t, ok := s.byDigest[d]
	s.mu.Unlock()
	if !ok {
		return metainfo.Hash{}, false
	}
	s.drop(t)
	return t.hash, true
}

// drop stops serving t, unless another torrent of its blob took its place.
func (s *Server) drop(t *blob) {
	s.mu.Lock()
	if s.byDigest[t.d] == t {
		delete(s.byDigest, t.d)
		delete(s.torrents, t.hash)
	}
	s.mu.Unlock()
	t.close()
}

// Seeding lists the infohashes being served, for announcing them.
func (s *Server) Seeding() []metainfo.Hash {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]metainfo.Hash, 0, len(s.torrents))
	for ih := range s.torrents {
		out = append(out, ih)
	}
	return out
}

// Stats is a snapshot for metrics and tests.
type Stats struct {
	// Uploaded counts piece data sent since start; Offers the pieces
	// advertised to peers since start.
	Uploaded, Offers int64
	Torrents         []TorrentStats
}

// TorrentStats is one seeded blob.
type TorrentStats struct {
	Digest digest.Digest
	// Pieces is the blob's piece count; Offers how many times a piece was
	// advertised to a peer. Offers/Pieces near 1 is the point of the seeder.
	Pieces, Offers, Peers int
}

// Stats reports counters and every torrent.
func (s *Server) Stats() Stats {
	st := Stats{Uploaded: s.uploaded.Load(), Offers: s.offers.Load()}
	s.mu.Lock()
	ts := make([]*blob, 0, len(s.byDigest))
	for _, t := range s.byDigest {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		st.Torrents = append(st.Torrents, t.stats())
	}
	slices.SortFunc(st.Torrents, func(a, b TorrentStats) int { return cmp.Compare(a.Digest, b.Digest) })
	return st
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("seeder stopped accepting peers", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.serve(nc); err != nil {
				s.log.Debug("peer connection ended", "peer", nc.RemoteAddr(), "err", err)
			}
		}()
	}
}

// TickEvery is how often the server lets its policies act on time
// passing: a quarter of the patience, and with spare offers at least
// every 250 ms, since a starved peer's gain rate falls between its haves.
func TickEvery(patience time.Duration, spare bool) time.Duration {
	if spare {
		return min(patience/4, 250*time.Millisecond)
	}
	return patience / 4
}

// tick lets each torrent's policy act on time passing: a peer that waited
// out its patience gets a piece, one short of supply spare offers.
func (s *Server) tick() {
	defer s.wg.Done()
	tk := time.NewTicker(TickEvery(s.cfg.Patience, s.cfg.Spare))
	defer tk.Stop()
	// best is the highest rate the seeder sent at over a second, what its
	// link has shown it can carry.
	var best float64
	mark, markBytes := time.Now(), s.uploaded.Load()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tk.C:
			if d := now.Sub(mark); d >= time.Second {
				up := s.uploaded.Load()
				best = max(best, float64(up-markBytes)/d.Seconds())
				mark, markBytes = now, up
			}
			s.mu.Lock()
			ts := make([]*blob, 0, len(s.torrents))
			for _, t := range s.torrents {
				ts = append(ts, t)
			}
			s.mu.Unlock()
			for _, t := range ts {
				if t.peers() > 0 {
					t.setElsewhere(s.completeElsewhere(t))
				}
				t.tick(now, best)
			}
		}
	}
}

func (s *Server) completeElsewhere(t *blob) bool {
	if s.cfg.CompleteElsewhere == nil {
		return false
	}
	seen := t.seenComplete()
	return len(seen) > 0 && s.cfg.CompleteElsewhere(t.hash, seen)
}

func (s *Server) allowed(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && peerfilter.Allowed(s.cfg.AllowedPeers, tcp.AddrPort().Addr())
}

// serve runs one peer connection from handshake to close.
func (s *Server) serve(nc net.Conn) error {
	defer nc.Close()
	if !s.allowed(nc.RemoteAddr()) {
		return errors.New("peer outside the allowed networks")
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	// No extension bits: without the fast extension a peer learns what the
	// seeder has from have messages only, which is what the hand-out needs.
	res, err := pp.Handshake(ctx, nc, nil, s.peerID, pp.PeerExtensionBits{})
	cancel()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s.mu.Lock()
	t, ok := s.torrents[res.Hash]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("peer asked for infohash %s, which is not seeded here", res.Hash)
	}
	c := newConn(s, t, nc, res.PeerID)
	defer c.close()
	t.setElsewhere(s.completeElsewhere(t))
	if !t.add(c) {
		return errors.New("torrent dropped")
	}
	defer t.remove(c)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := c.write(); err != nil {
			s.log.Debug("peer write ended", "peer", nc.RemoteAddr(), "err", err)
		}
		c.close()
	}()
	return c.read()
}

// blob is one seeded blob and its peers.
type blob struct {
	d    digest.Digest
	hash metainfo.Hash
	info metainfo.Info

	// dataMu guards where the bytes are read from: a growing blob's partial
	// file until Stored swaps in the store's, nothing after close, so
	// neither swap nor close waits on a peer, nor a peer on them, beyond
	// one read.
	dataMu sync.RWMutex
	data   io.ReaderAt
	file   *os.File // the store's file, once the blob is stored

	// mu guards the policy, the peer set and complete.
	mu     sync.Mutex
	policy *handout
	conns  map[int]*conn
	nextID int
	closed bool
	// complete are the peer IDs of peers that had every piece on one of
	// the seeder's connections, for CompleteElsewhere.
	complete map[[20]byte]struct{}
	// offers is the server's count of pieces advertised.
	offers *atomic.Int64
}

func newBlob(d digest.Digest, ih metainfo.Hash, info metainfo.Info, data io.ReaderAt, policy *handout, offers *atomic.Int64) *blob {
	return &blob{
		d: d, hash: ih, info: info, data: data,
		policy:   policy,
		conns:    map[int]*conn{},
		complete: map[[20]byte]struct{}{},
		offers:   offers,
	}
}

// readAt reads piece bytes for a peer.
func (t *blob) readAt(b []byte, off int64) error {
	t.dataMu.RLock()
	defer t.dataMu.RUnlock()
	if t.data == nil {
		return fmt.Errorf("blob %s no longer seeded", t.d)
	}
	_, err := t.data.ReadAt(b, off)
	return err
}

// add registers a connected peer and queues its first offers.
func (t *blob) add(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	c.id = t.nextID
	t.nextID++
	t.conns[c.id] = c
	t.deliver(t.policy.join(c.id, time.Now()))
	return true
}

func (t *blob) remove(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[c.id]; !ok {
		return
	}
	delete(t.conns, c.id)
	t.deliver(t.policy.leave(c.id))
}

func (t *blob) have(c *conn, pieces []int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deliver(t.policy.have(c.id, pieces, time.Now()))
	if t.policy.hasAll(c.id) {
		t.complete[c.peerID] = struct{}{}
	}
}

// seenComplete lists the peers seen with every piece.
func (t *blob) seenComplete() [][20]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][20]byte, 0, len(t.complete))
	for id := range t.complete {
		out = append(out, id)
	}
	return out
}

func (t *blob) mayRequest(c *conn, piece int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.policy.offered(c.id, piece)
}

func (t *blob) peers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

func (t *blob) setElsewhere(v bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.policy.elsewhere = v
}

func (t *blob) tick(now time.Time, seederRate float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.policy.seederRate = seederRate
	t.deliver(t.policy.tick(now))
}

// deliver queues have messages; t.mu is held.
func (t *blob) deliver(offers []offer) {
	t.offers.Add(int64(len(offers)))
	for _, o := range offers {
		if c, ok := t.conns[o.peer]; ok {
			c.queueHave(o.piece)
		}
	}
}

func (t *blob) stats() TorrentStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TorrentStats{Digest: t.d, Pieces: t.info.NumPieces(), Offers: t.policy.offers, Peers: len(t.conns)}
}

// close disconnects every peer and releases the file.
func (t *blob) close() {
	t.mu.Lock()
	t.closed = true
	conns := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	t.dataMu.Lock()
	defer t.dataMu.Unlock()
	t.data = nil
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
}
