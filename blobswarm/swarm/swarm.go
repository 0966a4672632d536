// Package swarm shares blobs between nodes over BitTorrent: it downloads a
// blob into a sink from whoever has it and seeds what the store holds.
//
// One torrent per blob (see torrentmeta), storage backed by the blob store
// (see torrentstore), and an anacrolix client tuned for a datacenter: peers
// from the tracker only, plain TCP, short timeouts, many connections, and
// only peers inside the allowed networks.
package swarm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

// ErrStalled is returned by Download when no piece data arrived for the
// configured stall timeout.
var ErrStalled = errors.New("swarm download stalled")

// ErrActive is returned when a torrent for the blob is already running.
var ErrActive = errors.New("blob already in the swarm")

// Swarm is a node's BitTorrent client.
type Swarm struct {
	cfg    Config
	store  *store.Store
	log    *slog.Logger
	client *torrent.Client
	// bootstrap peers are added to every torrent; tests use them instead
	// of a tracker.
	bootstrap []netip.AddrPort

	// mu orders adding and dropping torrents. It may be held while calling
	// into the client, so nothing the client calls back may take it.
	mu       sync.Mutex
	torrents map[digest.Digest]*entry
	// byHash is read from client callbacks, with the client's lock held.
	byHash sync.Map // metainfo.Hash -> *entry

	// fromSeeders counts piece bytes from trackers' seeders, known by their
	// peer ID prefix: on one host every node shares an IP.
	fromSeeders atomic.Int64
}

type entry struct {
	t        *torrent.Torrent
	blob     *torrentstore.Blob
	received atomic.Int64 // piece bytes from peers, for the stall watchdog
}

// New starts the client listening for peers.
func New(cfg Config, st *store.Store, logger *slog.Logger) (*Swarm, error) {
	cfg = cfg.withDefaults()
	cc, err := cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	s := &Swarm{
		cfg:      cfg,
		store:    st,
		log:      logger,
		torrents: make(map[digest.Digest]*entry),
	}
	cc.Slogger = logger.With("component", "bittorrent")
	cc.Callbacks.ReceivedUsefulData = append(cc.Callbacks.ReceivedUsefulData, s.countReceived)
	s.client, err = torrent.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("start bittorrent client on %s: %w", cfg.ListenAddr, err)
	}
	return s, nil
}

// Close stops every torrent and the client.
func (s *Swarm) Close() error {
	return errors.Join(s.client.Close()...)
}

// ListenPort is the port peers connect to.
func (s *Swarm) ListenPort() int { return s.client.LocalPort() }

// Sink is where a download puts a blob: its file, with the one record of
// its verified bytes (in the mirror, the blob's flight).
type Sink interface {
	// Reserve gives the blob its size before the first piece arrives.
	Reserve(size int64) error
	torrentstore.Partial
	// OnWant has fn hear of the spans readers wait for, until
	// OnWant(nil): the download asks for their pieces first.
	OnWant(fn func(off, end int64))
}

// PieceHashes follows the real SHA-1 of each piece of a blob's torrent,
// calling got for each as it learns it (in any order), until it gave every
// piece's hash (then it returns nil) or ctx ends. A blob's torrent is made
// before its bytes exist, with placeholder piece hashes
// (torrentmeta.ForBlob): the tracker streams the real ones as its seeder
// reads the origin, and a download checks pieces against them alone.
//
// An error wrapping ErrHashesLost says the hashes stopped coming but the
// blob is not known to be bad (the tracker cannot be reached): the download
// goes on with what peers can give, and a stall fill takes the pieces
// still without a hash from the origin, hashing them itself. Any other
// error says the blob is bad (the tracker's seeder failed it), and ends the
// download.
type PieceHashes func(ctx context.Context, got func(i int, sum [20]byte)) error

// ErrHashesLost is wrapped by a PieceHashes error that leaves the blob
// open; see PieceHashes.
var ErrHashesLost = errors.New("piece hashes lost")

// Download fetches blob d from the swarm into sink. It reserves the blob's
// size, writes pieces as they come and advances the sink as verified
// pieces extend the run from the start, so readers stream while the rest
// arrives. The node uploads what it has from its first verified piece.
//
// Pieces are checked against the hashes from hashes, whatever the
// torrent's own piece hashes say, and no piece is asked of peers before its
// hash is known: a piece that cannot be checked yet would be fetched for
// nothing.
//
// When no piece data arrives for the stall timeout, the pieces still
// missing come from fill (if not nil) while the torrent keeps trading;
// without fill the download ends with ErrStalled.
//
// It returns once every piece is verified. The torrent still uploads from
// the sink then, which must stay open: the caller commits the sink's bytes
// to the store and then calls the Download's Seed, or its Drop if the
// commit failed. On any error (ctx, ErrStalled, a failed fill, hashes that
// say the blob is bad, bad info bytes) the torrent is gone and no longer
// touches the sink, and the caller may fall back to the origin with the
// same sink.
func (s *Swarm) Download(ctx context.Context, d digest.Digest, infoBytes []byte, announce []string, sink Sink, hashes PieceHashes, fill RangeSource) (*Download, error) {
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		return nil, err
	}
	if hashes == nil {
		return nil, fmt.Errorf("download %s: no source of piece hashes", d)
	}
	if err := sink.Reserve(info.Length); err != nil {
		return nil, err
	}
	known := torrentstore.NewHashes(info.NumPieces())
	e, err := s.add(d, infoBytes, torrentstore.InFlight(s.store, d, sink, known), announce)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	u := newUrgency(e.t, known, info.PieceLength)
	sink.OnWant(u.want)
	err = s.await(ctx, e, &info, u, hashes, fill)
	sink.OnWant(nil)
	u.stop()
	if err != nil {
		s.remove(d)
		return nil, fmt.Errorf("download %s from swarm: %w", d, err)
	}
	s.log.Debug("swarm download complete", "digest", d, "bytes", info.Length, "took", time.Since(start))
	return &Download{s: s, d: d, announce: announce}, nil
}

// Download is a blob the swarm delivered whole into its sink, whose torrent
// runs on until the caller, having committed the sink (or failed to),
// calls Seed or Drop.
type Download struct {
	s        *Swarm
	d        digest.Digest
	announce []string
}

// Seed keeps sharing the committed blob, now from the stored file; see
// Swarm.Seed.
func (dl *Download) Seed() error { return dl.s.Seed(dl.d, dl.announce) }

// Drop ends the torrent of a blob whose commit failed; see Swarm.Drop.
func (dl *Download) Drop() { dl.s.Drop(dl.d) }

// await drives one download to its end: it follows the piece hashes,
// letting the client ask for each piece once its hash is known, and fills
// from the origin what a stalled swarm does not deliver.
func (s *Swarm) await(ctx context.Context, e *entry, info *metainfo.Info, u *urgency, hashes PieceHashes, fill RangeSource) error {
	t, known, learn := e.t, u.known, u.learn
	ctx, cancel := context.WithCancel(ctx)
	// Every piece waits at no priority until its hash is known, then goes
	// to the one priority all pieces share, so the library fetches rarest
	// first among the pieces it can check. An in-order window ahead of the
	// verified prefix (16 MiB, to stream to the reader sooner) had every
	// mirror of a fleet asking for the same few pieces from the same few
	// holders: more requests moved between peers and answered twice, and
	// the rollout took longer (fleet bench, 8 x 128 MiB: 13.7-14.9 s
	// without it, 14.5-14.9 s with it, 4.3 against 6.1 MiB per host
	// received twice). Docker and containerd verify a layer before they
	// use it, so a reader waiting for the prefix loses nothing at the end.
	// A reader of a range is another matter: it waits for its few pieces
	// and nothing else (urgency).
	followed := make(chan error, 1) // set while the hashes are followed
	go func() { followed <- hashes(ctx, learn) }()
	// Closed once the hashes stopped coming, with or without all of them.
	hashesDone := make(chan struct{})
	var filled chan error // set while the filler runs
	defer func() {
		// No write from the filler, and no hash, may land after the
		// caller commits.
		cancel()
		if filled != nil {
			<-filled
		}
		if followed != nil {
			<-followed
		}
	}()

	tick := time.NewTicker(s.cfg.StallTimeout / 4)
	defer tick.Stop()
	last, lastAt := e.received.Load(), time.Now()
	for {
		select {
		case <-t.Complete().On():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.Closed():
			return errors.New("torrent closed")
		case err := <-followed:
			followed = nil
			if err != nil && !errors.Is(err, ErrHashesLost) {
				return fmt.Errorf("piece hashes: %w", err)
			}
			if err != nil {
				s.log.Warn("piece hashes stopped coming: pieces without one will be checked against the origin's bytes",
					"infohash", t.InfoHash(), "err", err)
			}
			close(hashesDone)
		case err := <-filled:
			filled = nil
			if err != nil {
				return err
			}
			// Every piece was verified; Complete fires next.
		case now := <-tick.C:
			if n := e.received.Load(); n != last || awaitingHashes(t, known, hashesDone) {
				// Data came, or none could: a swarm that has every piece
				// whose hash is known waits for the tracker's seeder,
				// which reads the origin for the whole fleet, and is not
				// stalled.
				last, lastAt = n, now
				continue
			}
			stalled := now.Sub(lastAt)
			if stalled < s.cfg.StallTimeout || filled != nil {
				continue
			}
			if fill == nil {
				return fmt.Errorf("%w: nothing received for %s from %d peers", ErrStalled, stalled.Round(time.Second), len(t.PeerConns()))
			}
			s.log.Warn("swarm stalled: taking the missing pieces from the origin", "infohash", t.InfoHash(),
				"missing_bytes", t.BytesMissing(), "peers", len(t.PeerConns()), "stalled", stalled.Round(time.Millisecond))
			filled = make(chan error, 1)
			f := newFiller(t, info, fill, known, learn, hashesDone)
			go func() { filled <- f.run(ctx) }()
		}
	}
}

// awaitingHashes says whether every piece the torrent lacks still waits
// for a hash that may come.
func awaitingHashes(t *torrent.Torrent, known *torrentstore.Hashes, hashesDone <-chan struct{}) bool {
	select {
	case <-hashesDone:
		return false
	default:
	}
	for i := range t.NumPieces() {
		if _, ok := known.Get(i); ok && !t.PieceState(i).Complete {
			return false
		}
	}
	return true
}

// Seed shares blob d from the store: after its download was committed (the
// running torrent switches from the sink to the stored file), or for a
// blob found in the store at startup, under its torrent
// torrentmeta.ForBlob(d, size), which the node builds itself.
func (s *Swarm) Seed(d digest.Digest, announce []string) error {
	s.mu.Lock()
	e, ok := s.torrents[d]
	s.mu.Unlock()
	if ok {
		if err := e.blob.Promote(); err != nil {
			// It must not go on reading the sink, which the caller
			// closes next.
			s.remove(d)
			return err
		}
		e.t.AddTrackers([][]string{announce})
		return nil
	}
	size, err := s.store.Stat(d)
	if err != nil {
		return fmt.Errorf("seed %s: %w", d, err)
	}
	infoBytes, err := torrentmeta.ForBlob(d, size)
	if err != nil {
		return fmt.Errorf("seed %s: %w", d, err)
	}
	blob, err := torrentstore.Stored(s.store, d)
	if err != nil {
		return err
	}
	_, err = s.add(d, infoBytes, blob, announce)
	return err
}

// Drop stops seeding blob d (its file is about to be evicted) and tells the
// trackers. Dropping an unknown blob is a no-op.
func (s *Swarm) Drop(d digest.Digest) { s.remove(d) }

// add starts the torrent of blob d on the given storage, which it owns from
// here on.
func (s *Swarm) add(d digest.Digest, infoBytes []byte, blob *torrentstore.Blob, announce []string) (*entry, error) {
	ih := metainfo.HashBytes(infoBytes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.torrents[d]; ok {
		blob.Close()
		return nil, fmt.Errorf("add %s: %w", d, ErrActive)
	}
	opened := &openResult{ClientImpl: blob}
	t, isNew := s.client.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  ih,
		InfoBytes: infoBytes,
		Storage:   opened,
		ChunkSize: pp.Integer(s.cfg.ChunkSize),
	})
	if !isNew {
		blob.Close()
		return nil, fmt.Errorf("add %s: infohash %s: %w", d, ih, ErrActive)
	}
	select {
	case <-t.GotInfo():
	default:
		// The client swallows storage errors; a torrent without info
		// never downloads or seeds anything.
		t.Drop()
		blob.Close()
		return nil, fmt.Errorf("add %s: %w", d, cmp.Or(opened.err, errors.New("client refused the info bytes")))
	}
	e := &entry{t: t, blob: blob}
	s.torrents[d] = e
	s.byHash.Store(ih, e)
	if len(announce) > 0 {
		t.AddTrackers([][]string{announce})
	}
	if len(s.bootstrap) > 0 {
		t.AddPeers(peerInfos(s.bootstrap))
	}
	s.log.Debug("torrent added", "digest", d, "infohash", ih, "trackers", announce)
	return e, nil
}

// remove drops the torrent of blob d; its storage closes with it.
func (s *Swarm) remove(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.torrents[d]
	if !ok {
		return
	}
	delete(s.torrents, d)
	s.byHash.Delete(e.t.InfoHash())
	e.t.Drop()
	s.log.Debug("torrent dropped", "digest", d)
}

// addPeers hands peer addresses to a running torrent, as a tracker would.
func (s *Swarm) addPeers(d digest.Digest, peers ...netip.AddrPort) error {
	s.mu.Lock()
	e, ok := s.torrents[d]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("add peers: %s not in the swarm", d)
	}
	e.t.AddPeers(peerInfos(peers))
	return nil
}

func peerInfos(addrs []netip.AddrPort) []torrent.PeerInfo {
	infos := make([]torrent.PeerInfo, len(addrs))
	for i, a := range addrs {
		infos[i] = torrent.PeerInfo{Addr: net.TCPAddrFromAddrPort(a), Source: torrent.PeerSourceDirect}
	}
	return infos
}

// countReceived runs for every useful chunk, with the client's lock held.
func (s *Swarm) countReceived(ev torrent.ReceivedUsefulDataEvent) {
	n := int64(len(ev.Message.Piece))
	if e, ok := s.byHash.Load(ev.Peer.Torrent().InfoHash()); ok {
		e.(*entry).received.Add(n)
	}
	if pc, ok := ev.Peer.TryAsPeerConn(); ok && bytes.HasPrefix(pc.PeerID[:], []byte(peerid.SeederPrefix)) {
		s.fromSeeders.Add(n)
	}
}

// openResult keeps the storage's error, which the client does not report.
type openResult struct {
	storage.ClientImpl
	err error
}

func (o *openResult) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	ti, err := o.ClientImpl.OpenTorrent(ctx, info, ih)
	o.err = err
	return ti, err
}

// Stats is a snapshot for metrics.
type Stats struct {
	// Downloaded and Uploaded count piece data received from and sent to
	// peers since the swarm started.
	Downloaded, Uploaded int64
	// Redundant counts piece data received that the node already had: a
	// chunk asked of two peers (a request moved to a faster peer, or the
	// end of a download), paid for on the wire and thrown away.
	Redundant int64
	// FromSeeders is the part of Downloaded that came from trackers'
	// seeders rather than from other mirrors.
	FromSeeders int64
	// Banned are peers that sent data failing a piece hash.
	Banned   []netip.Addr
	Torrents []TorrentStats
}

// TorrentStats is one blob's torrent.
type TorrentStats struct {
	Digest digest.Digest
	// Length is the blob size; Completed counts the bytes the node holds,
	// verified or not yet.
	Length, Completed int64
	Complete          bool
	Peers             int
}

// Stats reports counters and the state of every torrent.
func (s *Swarm) Stats() Stats {
	cs := s.client.Stats()
	st := Stats{
		Downloaded:  cs.BytesReadUsefulData.Int64(),
		Redundant:   cs.BytesReadData.Int64() - cs.BytesReadUsefulData.Int64(),
		Uploaded:    cs.BytesWrittenData.Int64(),
		FromSeeders: s.fromSeeders.Load(),
	}
	for _, ip := range s.client.BadPeerIPs() {
		if a, err := netip.ParseAddr(ip); err == nil {
			st.Banned = append(st.Banned, a.Unmap())
		}
	}
	// anacrolix may list one peer as both ::ffff:a.b.c.d and a.b.c.d.
	slices.SortFunc(st.Banned, netip.Addr.Compare)
	st.Banned = slices.Compact(st.Banned)
	s.mu.Lock()
	for d, e := range s.torrents {
		st.Torrents = append(st.Torrents, TorrentStats{
			Digest:    d,
			Length:    e.t.Length(),
			Completed: e.t.BytesCompleted(),
			Complete:  e.t.Complete().Bool(),
			Peers:     len(e.t.PeerConns()),
		})
	}
	s.mu.Unlock()
	slices.SortFunc(st.Torrents, func(a, b TorrentStats) int { return cmp.Compare(a.Digest, b.Digest) })
	return st
}
