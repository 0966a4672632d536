package superseed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
)

type seeded struct {
	s         *Server
	data      []byte
	d         digest.Digest
	infoBytes []byte
}

// seed stores a random blob and serves it.
func seed(t *testing.T, size int, cfg Config) seeded {
	t.Helper()
	st, data, d := randomBlob(t, size)
	p, err := st.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	info, _, err := torrentmeta.Build(d, bytes.NewReader(data), int64(size))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg, st)
	if err := s.Seed(d, info); err != nil {
		t.Fatal(err)
	}
	return seeded{s, data, d, info}
}

func (sd seeded) addr() netip.AddrPort { return loopback(sd.s) }

// randomBlob is size random bytes and their digest, with an empty store.
func randomBlob(t *testing.T, size int) (*store.Store, []byte, digest.Digest) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	return st, data, digest.FromBytes(data)
}

// startServer serves st with cfg, on a loopback port unless cfg says.
func startServer(t *testing.T, cfg Config, st *store.Store) *Server {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	s, err := New(cfg, st, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func loopback(s *Server) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.ListenPort()))
}

// leecher is a stock anacrolix client, as the mirrors run, on its own
// loopback address.
func leecher(t *testing.T, ip, dir string) *torrent.Client {
	t.Helper()
	cc := torrent.NewDefaultClientConfig()
	cc.DataDir = dir
	cc.DefaultStorage = storage.NewFile(cc.DataDir)
	cc.ListenHost = func(string) string { return ip }
	cc.ListenPort = 0
	cc.DisableIPv6 = true
	cc.NoDHT, cc.DisablePEX, cc.DisableUTP, cc.DisableWebtorrent, cc.DisableWebseeds = true, true, true, true, true
	cc.NoDefaultPortForwarding = true
	cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{RequirePreferred: true}
	cc.Seed = true
	cc.KeepAliveTimeout = time.Second
	cc.Slogger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := torrent.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// meshedLeechers starts n stock clients on 127.0.0.<firstIP+i>, each
// downloading the torrent of info from the seeder at seeder and from all
// the others, and returns their torrents and data directories.
func meshedLeechers(t *testing.T, n, firstIP int, info []byte, seeder netip.AddrPort) ([]*torrent.Torrent, []string) {
	t.Helper()
	var clients []*torrent.Client
	var ts []*torrent.Torrent
	var dirs []string
	for i := range n {
		dirs = append(dirs, t.TempDir())
		c := leecher(t, fmt.Sprintf("127.0.0.%d", firstIP+i), dirs[i])
		tt, _ := c.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: metainfo.HashBytes(info), InfoBytes: info})
		clients = append(clients, c)
		ts = append(ts, tt)
	}
	for i, tt := range ts {
		peers := []torrent.PeerInfo{{Addr: net.TCPAddrFromAddrPort(seeder), Source: torrent.PeerSourceDirect}}
		for j, c := range clients {
			if j != i {
				peers = append(peers, torrent.PeerInfo{Addr: c.ListenAddrs()[0], Source: torrent.PeerSourceDirect})
			}
		}
		tt.AddPeers(peers)
		tt.DownloadAll()
	}
	return ts, dirs
}

// awaitLeechers waits for every leecher of meshedLeechers to complete
// and checks that each holds blob d.
func awaitLeechers(ctx context.Context, t *testing.T, ts []*torrent.Torrent, dirs []string, d digest.Digest, size int64, start time.Time) {
	t.Helper()
	for i, tt := range ts {
		select {
		case <-tt.Complete().On():
		case <-ctx.Done():
			t.Fatalf("leecher %d: %d of %d bytes after 2 minutes", i, tt.BytesCompleted(), size)
		}
		t.Logf("leecher %d done after %v", i, time.Since(start))
		got, err := os.ReadFile(filepath.Join(dirs[i], d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(got) != d {
			t.Fatalf("leecher %d: blob has digest %s, want %s", i, digest.FromBytes(got), d)
		}
	}
}

// A fleet of stock clients gets the blob intact, and the seeder offers
// and sends each piece about once: the rest travels between the clients.
func TestFleetGetsBlobWithEachPieceSentOnce(t *testing.T) {
	const size, n = 24 << 20, 5
	start := time.Now()
	// A small window spreads the pieces over all five; the seeder is
	// slower than the leechers' links, as an origin's host is.
	sd := seed(t, size, Config{Window: 1 << 20, UploadRate: 64 << 20})
	ts, dirs := meshedLeechers(t, n, 10, sd.infoBytes, sd.addr())
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	awaitLeechers(ctx, t, ts, dirs, sd.d, size, start)
	st := sd.s.Stats()
	ts0 := st.Torrents[0]
	t.Logf("seeder sent %.2fx the blob; %d offers for %d pieces", float64(st.Uploaded)/size, ts0.Offers, ts0.Pieces)
	if st.Uploaded > size*5/4 {
		t.Errorf("seeder sent %d bytes for a %d-byte blob to %d leechers: more than 1.25x", st.Uploaded, size, n)
	}
	if st.Uploaded < size {
		t.Errorf("seeder sent %d bytes, less than the blob (%d): where did the rest come from?", st.Uploaded, size)
	}
}

// dial completes a handshake for ih and returns the connection.
func dial(t *testing.T, to netip.AddrPort, ih metainfo.Hash) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", to.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var id [20]byte
	copy(id[:], "-TEST00-")
	if _, err := pp.Handshake(t.Context(), nc, &ih, id, pp.PeerExtensionBits{}); err != nil {
		t.Fatal(err)
	}
	return nc
}

// closed reports whether the seeder hung up, reading whatever it sent.
func closed(nc net.Conn) bool {
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	return err == nil // EOF: the seeder closed the connection
}

func send(t *testing.T, nc net.Conn, m pp.Message) {
	t.Helper()
	w := bufio.NewWriter(nc)
	if err := m.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Peers that break the rules are dropped, and get nothing.
func TestMisbehavingPeersAreDropped(t *testing.T) {
	sd := seed(t, 4<<20, Config{Window: 256 << 10}) // 16 pieces, 2 offered at a time
	ih := metainfo.HashBytes(sd.infoBytes)
	cases := map[string]pp.Message{
		"request for a piece not offered": {Type: pp.Request, Index: 40, Begin: 0, Length: 16 << 10},
		"request past the piece's end":    {Type: pp.Request, Index: 0, Begin: 256<<10 - 1, Length: 16 << 10},
		"oversized request":               {Type: pp.Request, Index: 0, Begin: 0, Length: 1 << 20},
		"a piece sent to the seeder":      {Type: pp.Piece, Index: 0, Begin: 0, Piece: []byte("x")},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			nc := dial(t, sd.addr(), ih)
			send(t, nc, m)
			if !closed(nc) {
				t.Fatal("connection still open")
			}
		})
	}
	t.Run("unknown infohash", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", sd.addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var id [20]byte
		res, err := pp.Handshake(t.Context(), nc, &metainfo.Hash{1}, id, pp.PeerExtensionBits{})
		if err == nil && res.Hash == (metainfo.Hash{1}) && !closed(nc) {
			t.Fatal("seeder kept a connection for a torrent it does not have")
		}
	})
	sd.s.Stats()
	if up := sd.s.Stats().Uploaded; up != 0 {
		t.Fatalf("misbehaving peers were sent %d bytes", up)
	}
}

// A peer outside the allowed networks is hung up on before the handshake.
func TestPeerOutsideAllowedNetworks(t *testing.T) {
	sd := seed(t, 1<<20, Config{AllowedPeers: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	nc, err := net.DialTimeout("tcp", sd.addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var ih metainfo.Hash = metainfo.HashBytes(sd.infoBytes)
	var id [20]byte
	if _, err := pp.Handshake(t.Context(), nc, &ih, id, pp.PeerExtensionBits{}); err == nil {
		t.Fatal("handshake with a peer outside the allowed networks succeeded")
	}
}

// A well-behaved peer gets what it was offered, byte for byte.
func TestOfferedPieceIsServed(t *testing.T) {
	sd := seed(t, 1<<20, Config{})
	nc := dial(t, sd.addr(), metainfo.HashBytes(sd.infoBytes))
	send(t, nc, pp.Message{Type: pp.Interested})
	send(t, nc, pp.Message{Type: pp.Request, Index: 1, Begin: 100, Length: 1000})
	dec := pp.Decoder{R: bufio.NewReader(nc), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 1<<17); return &b }}}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type != pp.Piece || m.Keepalive {
			continue
		}
		off := 1*256<<10 + 100
		if m.Index != 1 || m.Begin != 100 || !bytes.Equal(m.Piece, sd.data[off:off+1000]) {
			t.Fatalf("got piece %d at %d (%d bytes), not the bytes asked for", m.Index, m.Begin, len(m.Piece))
		}
		return
	}
}

// growing is a blob on its way into the store, seeded while it arrives.
type growing struct {
	s       *Server
	st      *store.Store
	p       *store.Partial
	g       *Growing
	data    []byte
	d       digest.Digest
	info    []byte
	written int
}

// seedGrowing starts seeding a random blob of which nothing has arrived,
// under its torrentmeta.ForBlob torrent, or Build's when build is set.
func seedGrowing(t *testing.T, size int, cfg Config, build bool) *growing {
	t.Helper()
	st, data, d := randomBlob(t, size)
	info, err := torrentmeta.ForBlob(d, int64(size))
	if build {
		info, _, err = torrentmeta.Build(d, bytes.NewReader(data), int64(size))
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s := startServer(t, cfg, st)
	g, err := s.SeedGrowing(d, info, p)
	if err != nil {
		t.Fatal(err)
	}
	return &growing{s: s, st: st, p: p, g: g, data: data, d: d, info: info}
}

func (gr *growing) addr() netip.AddrPort { return loopback(gr.s) }

// arrive writes the blob's next pieces, as the origin would send them,
// and tells the seeder.
func (gr *growing) arrive(t *testing.T, pieces int) {
	t.Helper()
	pl := int(torrentmeta.PieceLength(int64(len(gr.data))))
	for range pieces {
		i := gr.written / pl
		end := min(gr.written+pl, len(gr.data))
		if _, err := gr.p.Write(gr.data[gr.written:end]); err != nil {
			t.Fatal(err)
		}
		gr.written = end
		gr.g.Have(i)
	}
}

// decoder reads what the seeder sends on nc.
func decoder(nc net.Conn) *pp.Decoder {
	return &pp.Decoder{R: bufio.NewReader(nc), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 1<<17); return &b }}}
}

// awaitHave reads until the seeder offers piece i.
func awaitHave(t *testing.T, nc net.Conn, dec *pp.Decoder, i int) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("waiting for an offer of piece %d: %v", i, err)
		}
		if !m.Keepalive && m.Type == pp.Have && int(m.Index) == i {
			return
		}
	}
}

// A peer of a blob still arriving may request only what the seeder has
// been told it holds: a request for any other piece drops it, as one
// never offered would, even if the bytes are already in the file; a piece
// that arrived is offered and served.
func TestGrowingBlobServesOnlyWhatArrived(t *testing.T) {
	gr := seedGrowing(t, 1<<20, Config{}, false) // 4 pieces
	ih := metainfo.HashBytes(gr.info)
	// Piece 0's bytes are in the partial, but Have has not said so.
	if _, err := gr.p.Write(gr.data[:256<<10]); err != nil {
		t.Fatal(err)
	}

	early := dial(t, gr.addr(), ih)
	send(t, early, pp.Message{Type: pp.Request, Index: 0, Begin: 0, Length: 16 << 10})
	if !closed(early) {
		t.Fatal("a request for a piece the seeder was not told it has left the connection open")
	}

	nc := dial(t, gr.addr(), ih)
	dec := decoder(nc)
	gr.written = 256 << 10
	gr.g.Have(0)
	awaitHave(t, nc, dec, 0)
	send(t, nc, pp.Message{Type: pp.Request, Index: 0, Begin: 100, Length: 1000})
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Keepalive || m.Type != pp.Piece {
			continue
		}
		if m.Index != 0 || m.Begin != 100 || !bytes.Equal(m.Piece, gr.data[100:1100]) {
			t.Fatalf("got piece %d at %d (%d bytes), not the bytes asked for", m.Index, m.Begin, len(m.Piece))
		}
		break
	}
	send(t, nc, pp.Message{Type: pp.Request, Index: 1, Begin: 0, Length: 16 << 10})
	if !closed(nc) {
		t.Fatal("a request for piece 1, not arrived yet, left the connection open")
	}
	if up := gr.s.Stats().Uploaded; up != 1000 {
		t.Fatalf("seeder sent %d bytes, want the 1000 asked for of the piece it had", up)
	}
}

// Stored moves a growing blob to the store's file: every piece is held,
// peers keep being served, and the partial is not read again. Drop ends
// the torrent and its peers.
func TestGrowingBlobStoredThenDropped(t *testing.T) {
	gr := seedGrowing(t, 1<<20, Config{}, false)
	ih := metainfo.HashBytes(gr.info)
	nc := dial(t, gr.addr(), ih)
	dec := decoder(nc)
	gr.arrive(t, 4)
	if err := gr.p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := gr.g.Stored(); err != nil {
		t.Fatal(err)
	}
	// The partial's file is gone from the reader's view: whatever is
	// served now comes from the store.
	gr.p.Close()
	awaitHave(t, nc, dec, 1)
	off := 1*256<<10 + 5
	send(t, nc, pp.Message{Type: pp.Request, Index: 1, Begin: 5, Length: 1000})
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Keepalive || m.Type != pp.Piece {
			continue
		}
		if !bytes.Equal(m.Piece, gr.data[off:off+1000]) {
			t.Fatal("stored blob served other bytes")
		}
		break
	}
	gr.g.Drop()
	if !closed(nc) {
		t.Fatal("a peer of a dropped blob still connected")
	}
	if n := len(gr.s.Seeding()); n != 0 {
		t.Fatalf("%d torrents seeded after the only one was dropped", n)
	}
}

// A fleet of stock clients gets a blob that arrives while they download,
// each piece offered as it comes and sent about once.
func TestFleetGetsAGrowingBlob(t *testing.T) {
	const size, n = 8 << 20, 3
	// Stock clients check pieces against the info dictionary, so this
	// torrent carries the real hashes; what is under test is the seeder
	// serving a blob that grows.
	gr := seedGrowing(t, size, Config{Window: 512 << 10}, true)
	start := time.Now()
	ts, dirs := meshedLeechers(t, n, 20, gr.info, gr.addr())
	// The blob arrives once the fleet is connected, so each piece meets
	// peers waiting for it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for gr.s.Stats().Torrents[0].Peers < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d leechers connected to the seeder", gr.s.Stats().Torrents[0].Peers, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	gr.arrive(t, size/(256<<10))
	if err := gr.p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := gr.g.Stored(); err != nil {
		t.Fatal(err)
	}
	awaitLeechers(ctx, t, ts, dirs, gr.d, size, start)
	st := gr.s.Stats()
	t.Logf("seeder sent %.2fx the blob; %d offers for %d pieces", float64(st.Uploaded)/size, st.Torrents[0].Offers, st.Torrents[0].Pieces)
	if st.Uploaded > size*5/4 {
		t.Errorf("seeder sent %d bytes for a %d-byte blob to %d leechers: more than 1.25x", st.Uploaded, size, n)
	}
}
