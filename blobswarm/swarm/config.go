package swarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/iplist"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"

	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/blobswarm/uploadcap"
)

// Config is the node's BitTorrent setup. The zero value is usable; defaults
// are applied by New.
type Config struct {
	// ListenAddr is host:port for peer connections (default ":6881"). A
	// specific IP in it is also what the node tells the tracker to hand out.
	ListenAddr string
	// UploadRate and DownloadRate cap piece data in bytes/s; 0 is unlimited.
	UploadRate, DownloadRate int64
	// AllowedPeers are the networks peers may be in, for connections both
	// ways (default: loopback and private ranges). anacrolix applies the
	// same filter to tracker addresses, so the tracker must be inside too.
	AllowedPeers []netip.Prefix
	// StallTimeout ends a download that received no piece data for this
	// long (default 30s), so the caller can fall back to the origin.
	StallTimeout time.Duration
	// HandshakeTimeout bounds dialing a peer and the BitTorrent handshake
	// (default 2s: peers are in the same datacenter).
	HandshakeTimeout time.Duration
	// MaxConnsPerTorrent caps established peer connections per blob
	// (default DefaultConnsPerTorrent).
	MaxConnsPerTorrent int
	// ChunkSize is the size of one piece request (default 64 KiB; the
	// protocol's usual 16 KiB costs more CPU per byte, see the benchmark).
	ChunkSize int
	// AuthorizeAnnounce, when set, adds the fleet's credential to each
	// HTTP announce before it is sent, so that the announce URL, which
	// the library logs when an announce fails, holds none.
	AuthorizeAnnounce func(*http.Request) error
}

// DefaultConnsPerTorrent is few on purpose: every connection of a host
// feeds the same downlink, and dozens of senders at once overflow its
// queue (retransmits) and make the library move requests between them
// (chunks received twice). On the fleet bench (16 MiB at 10 Mbit/s,
// BENCHMARKS.md 8c), with the seeder's spare offers on, 64 hosts took
// 1.41-1.45x the limit with 4, 6 or 8 connections, 1.54x with 10 and
// 1.62x with 16; fewer than 6 leaves a host few sources to lose.
const DefaultConnsPerTorrent = 6

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = ":6881"
	}
	if c.AllowedPeers == nil {
		c.AllowedPeers = peerfilter.DefaultAllowed
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 2 * time.Second
	}
	if c.MaxConnsPerTorrent <= 0 {
		c.MaxConnsPerTorrent = DefaultConnsPerTorrent
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 64 << 10
	}
	return c
}

// clientConfig is the anacrolix configuration for a datacenter: peers are
// close, trusted to be ours by address, and known through the tracker only.
func (c Config) clientConfig() (*torrent.ClientConfig, error) {
	host, portStr, err := net.SplitHostPort(c.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", c.ListenAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: bad port: %w", c.ListenAddr, err)
	}
	cc := torrent.NewDefaultClientConfig()
	cc.Bep20 = peerid.MirrorPrefix
	cc.ListenHost = func(string) string { return host }
	cc.ListenPort = port
	if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
		// Only the listening family can be served, and the tracker should
		// hand out the address peers can reach.
		if ip.Is4() {
			cc.DisableIPv6 = true
			cc.PublicIp4 = ip.AsSlice()
		} else {
			cc.DisableIPv4 = true
			cc.PublicIp6 = ip.AsSlice()
		}
		// The tracker hands out the address an announce came from (it
		// ignores ip= from untrusted sources), so announce from the
		// address peers should dial: on a host with several addresses,
		// or several nodes on one loopback, the default source is wrong.
		src := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: c.HandshakeTimeout}
		cc.TrackerDialContext = src.DialContext
	}
	if cc.TrackerDialContext == nil {
		cc.TrackerDialContext = (&net.Dialer{Timeout: c.HandshakeTimeout}).DialContext
	}
	cc.TrackerDialContext = capTrackerAnswers(cc.TrackerDialContext)

	// Peers come from the tracker only.
	cc.NoDHT = true
	cc.DisablePEX = true
	cc.DisableWebtorrent = true
	cc.DisableWebseeds = true
	cc.NoDefaultPortForwarding = true
	cc.DisableUTP = true
	cc.IPBlocklist = allowList(c.AllowedPeers)
	cc.HttpRequestDirector = c.AuthorizeAnnounce

	// Plain TCP: encryption buys nothing inside the datacenter and costs CPU.
	cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: true}

	cc.HandshakesTimeout = c.HandshakeTimeout
	cc.NominalDialTimeout = c.HandshakeTimeout
	cc.MinDialTimeout = c.HandshakeTimeout
	cc.DialRateLimiter = rate.NewLimiter(200, 50)
	cc.EstablishedConnsPerTorrent = c.MaxConnsPerTorrent
	cc.HalfOpenConnsPerTorrent = max(c.MaxConnsPerTorrent/2, 1)
	// Dials for many blobs at once (an image's layers) must not queue
	// behind each other.
	cc.TotalHalfOpenConns = max(4*c.MaxConnsPerTorrent, 400)
	cc.DropDuplicatePeerIds = true

	// The library asks peers only for pieces within its first 64 MiB (by
	// default) of pieces in request order, counting pieces no peer has;
	// rarest first, those come first, so a super-seeder's two offered
	// pieces of a larger blob were never asked for and the download
	// stalled until the origin fallback. Pieces go to disk as they come,
	// so unverified bytes need no cap.
	cc.MaxUnverifiedBytes = 0
	// Upload to anyone who asks, also while still downloading: a node
	// shares what it has from its first verified piece.
	cc.Seed = true
	// A leecher keeps up to 1024 requests outstanding per connection; an
	// uploader whose allowance is smaller waits for memory that is never
	// released, and the upload stalls after a few MiB.
	cc.MaxAllocPeerRequestDataPerConn = 1024 * c.ChunkSize
	// The connection writer can miss the wake-up for a chunk that was read
	// while it was deciding to sleep (it fills its buffer, then asks for
	// the signal); only its keep-alive timer wakes it again. With the
	// default minute a fresh connection with one request in flight sits
	// idle for up to a minute: the "unexplained stall". A short timer
	// bounds that to a second, for a 4-byte keep-alive on idle connections.
	cc.KeepAliveTimeout = time.Second
	if c.UploadRate > 0 {
		// The library refuses requests longer than the burst: mirrors ask
		// for ChunkSize, other clients for 16 KiB.
		cc.UploadRateLimiter = uploadcap.Limiter(c.UploadRate, max(c.ChunkSize, 128<<10))
	}
	if c.DownloadRate > 0 {
		cc.DownloadRateLimiter = rate.NewLimiter(rate.Limit(c.DownloadRate), 0)
	}
	// Every torrent brings its own storage; the library's default would
	// put files and a completion database in the working directory.
	cc.DefaultStorage = noStorage{}
	return cc, nil
}

// allowList turns the allowed networks into anacrolix's block list: an
// address is blocked unless a prefix contains it.
type allowList []netip.Prefix

func (a allowList) Lookup(ip net.IP) (iplist.Range, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return iplist.Range{First: ip, Last: ip, Description: "not an IP address"}, true
	}
	if peerfilter.Allowed(a, addr) {
		return iplist.Range{}, false
	}
	return iplist.Range{First: ip, Last: ip, Description: "outside the allowed peer networks"}, true
}

func (a allowList) NumRanges() int { return len(a) }

type noStorage struct{}

func (noStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{}, errors.New("torrent added without blob storage")
}
