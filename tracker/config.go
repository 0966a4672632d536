// Package tracker is the central service of a blobswarm fleet: BitTorrent
// announces, the digest-to-torrent service backed by the origin seeder, and
// coalesced tag resolution.
package tracker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/internal/secretfile"
	"github.com/blobswarm/blobswarm/internal/tlsfiles"
)

// Config is everything `blobswarm tracker` can be told; yaml keys are the
// flag names.
type Config struct {
	Listen string `yaml:"listen"`
	Data   string `yaml:"data"`
	// PeerListen is the seeder's BitTorrent address.
	PeerListen string `yaml:"peer-listen"`
	// AnnounceURL is what the seeder's torrents announce to; it must be an
	// address peers see the seeder at. Default: http://<listen>/announce,
	// with 127.0.0.1 for a wildcard listen address.
	AnnounceURL string                              `yaml:"announce-url"`
	Upstream    []string                            `yaml:"upstream"`
	Credentials map[string]upstream.CredentialFiles `yaml:"credentials"`
	// Registry lists further registries the seeder and the tag cache
	// fetch from, reached at https://HOST; only these and the hosts of
	// upstream and credentials are fetched, whatever a mirror asks.
	Registry []string `yaml:"registry"`
	// AnyRegistry fetches from whatever registry a request names: an
	// open proxy, with the tracker's credentials, to anyone who reaches it.
	AnyRegistry bool `yaml:"any-registry"`
	// AllowPrivateNetworks lets redirects, token realms and registries
	// allowed only by any-registry reach loopback, link-local and private
	// addresses.
	AllowPrivateNetworks bool `yaml:"allow-private-networks"`
	// Redis, when set, holds the swarms and the digest-to-torrent map so
	// several tracker replicas act as one: redis://host:port/db for one
	// server, or go-redis's failover URL for a primary that Redis Sentinel
	// watches, redis://sentinel:port/db?master_name=NAME&addr=sentinel2:port
	// (master_name says it is the sentinels' address).
	Redis            string        `yaml:"redis"`
	AnnounceInterval time.Duration `yaml:"announce-interval"`
	MaxPeers         int           `yaml:"max-peers"`
	// PeerCIDR limits who may use the tracker (every endpoint but the
	// probes) and who the seeder trades with.
	PeerCIDR []string `yaml:"peer-cidr"`
	// TagTTL is how long a tag resolution is reused for the whole fleet.
	TagTTL time.Duration `yaml:"tag-ttl"`
	// MetainfoWait is how long a metainfo request waits for the origin to
	// answer (the blob's size is all the torrent needs) before answering
	// 202 and Retry-After.
	MetainfoWait    time.Duration `yaml:"metainfo-wait"`
	UpstreamTimeout time.Duration `yaml:"upstream-timeout"`
	// FetchIdleTimeout gives up an origin fetch whose body sends nothing
	// for this long while the seeder reads it: the blob's partial file
	// goes, and its piece-hash streams break.
	FetchIdleTimeout time.Duration `yaml:"fetch-idle-timeout"`
	// OriginFetches is how many blobs the seeder fetches from one origin
	// registry at once, each an open connection and a partial file;
	// later blobs wait their turn in the order they were asked for.
	OriginFetches int `yaml:"origin-fetches"`
	// OriginQueue is how many blobs may wait for an origin fetch; past it
	// the tracker is busy, and mirrors fetch from the origin themselves.
	OriginQueue int `yaml:"origin-queue"`
	// OriginReads is how many of the fetches from one origin registry
	// read their body at once; later blobs wait their turn in the order
	// they were asked for, so an image's first layers finish first.
	OriginReads int   `yaml:"origin-reads"`
	UploadRate  int64 `yaml:"upload-rate"`
	// CacheSize is the quota for the seeder's blobs, as for the mirror:
	// bytes ("500GiB") or percent of the data filesystem ("80%"); empty
	// is unlimited. Past the high watermark (percent of the quota) the
	// least recently asked for blobs are evicted down to the low one.
	CacheSize          string `yaml:"cache-size"`
	CacheHighWatermark int    `yaml:"cache-high-watermark"`
	CacheLowWatermark  int    `yaml:"cache-low-watermark"`
	// SeedWindow is how many bytes of pieces the seeder offers each peer
	// ahead of what it has (superseed.Config.Window).
	SeedWindow int64 `yaml:"seed-window"`
	// SeedSpare lets the seeder, once it holds a blob, send the rarest
	// pieces to peers gaining slower than they can (superseed.Config.Spare).
	SeedSpare bool   `yaml:"seed-spare"`
	LogLevel  string `yaml:"log-level"`
	// DebugListen serves Go's profiles (/debug/pprof/) when set.
	DebugListen string `yaml:"debug-listen"`
	// TLSCert and TLSKey make the HTTP endpoints HTTPS; CA adds an
	// authority to trust for upstream registries.
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	CA      string `yaml:"ca"`
	// SecretFile holds the fleet's shared secret: without the credentials
	// made from it (api.Keys), strangers can neither announce nor fetch
	// metainfo, pieces or tags, and mirrors check the tracker's answers
	// with a key made from it.
	SecretFile string `yaml:"secret-file"`
}

// Defaults is the tracker's configuration when told nothing.
func Defaults() Config {
	return Config{
		Listen:     ":7070",
		Data:       "/var/lib/blobswarm/tracker",
		PeerListen: ":6881",
		// What a mirror asks for by default (its default-upstream).
		Registry:           []string{"docker.io"},
		AnnounceInterval:   5 * time.Second,
		MaxPeers:           50,
		TagTTL:             5 * time.Second,
		MetainfoWait:       2 * time.Second,
		UpstreamTimeout:    30 * time.Second,
		FetchIdleTimeout:   30 * time.Second,
		OriginFetches:      32,
		OriginQueue:        1024,
		OriginReads:        2,
		CacheHighWatermark: 95,
		CacheLowWatermark:  85,
		SeedSpare:          true,
		LogLevel:           "info",
	}
}

// Settings is a Config with its addresses, URLs, networks and files parsed
// and read once: what Validate checks is what the tracker runs with.
type Settings struct {
	Config
	// TLS serves the HTTP endpoints over HTTPS; nil for plain HTTP.
	TLS *tls.Config

	announceURL string
	peerCIDRs   []netip.Prefix
	newRedis    func() redis.UniversalClient // nil: peers and info bytes in memory
	endpoints   map[string]upstream.Endpoint
	allow       *upstream.AllowList
	cache       cache.Config
	roots       *x509.CertPool
	secret      string
}

// Validate checks the configuration before anything starts, naming the
// offending key.
func (c Config) Validate() error {
	_, err := c.Resolve()
	return err
}

// Resolve validates the configuration, naming the offending key, and
// returns it parsed.
func (c Config) Resolve() (Settings, error) {
	s := Settings{Config: c}
	switch {
	case c.Listen == "":
		return s, fmt.Errorf("listen: must not be empty")
	case c.Data == "":
		return s, fmt.Errorf("data: must not be empty")
	case c.PeerListen == "":
		return s, fmt.Errorf("peer-listen: must not be empty")
	case c.AnnounceInterval < time.Second:
		return s, fmt.Errorf("announce-interval: must be at least 1s, got %s", c.AnnounceInterval)
	case c.MaxPeers < 1:
		return s, fmt.Errorf("max-peers: must be at least 1, got %d", c.MaxPeers)
	case c.TagTTL < 0:
		return s, fmt.Errorf("tag-ttl: must not be negative")
	case c.MetainfoWait < 0:
		return s, fmt.Errorf("metainfo-wait: must not be negative")
	case c.UpstreamTimeout <= 0:
		return s, fmt.Errorf("upstream-timeout: must be positive")
	case c.FetchIdleTimeout <= 0:
		return s, fmt.Errorf("fetch-idle-timeout: must be positive")
	case c.OriginFetches < 1:
		return s, fmt.Errorf("origin-fetches: must be at least 1, got %d", c.OriginFetches)
	case c.OriginQueue < 1:
		return s, fmt.Errorf("origin-queue: must be at least 1, got %d", c.OriginQueue)
	case c.OriginReads < 1:
		return s, fmt.Errorf("origin-reads: must be at least 1, got %d", c.OriginReads)
	case c.UploadRate < 0:
		return s, fmt.Errorf("upload-rate: must not be negative")
	case c.SeedWindow < 0:
		return s, fmt.Errorf("seed-window: must not be negative")
	}
	if _, err := net.ResolveTCPAddr("tcp", c.Listen); err != nil {
		return s, fmt.Errorf("listen: %w", err)
	}
	// The seeder listens only after the data dir is created.
	if _, err := net.ResolveTCPAddr("tcp", c.PeerListen); err != nil {
		return s, fmt.Errorf("peer-listen: %w", err)
	}
	var err error
	if s.announceURL, err = c.announceURL(); err != nil {
		return s, fmt.Errorf("announce-url: %w", err)
	}
	if s.peerCIDRs, err = peerfilter.ParseCIDRs(c.PeerCIDR); err != nil {
		return s, fmt.Errorf("peer-cidr: %w", err)
	}
	if c.Redis != "" {
		if s.newRedis, err = parseRedis(c.Redis); err != nil {
			return s, fmt.Errorf("redis: %w", err)
		}
	}
	if s.endpoints, err = upstream.ParseEndpoints(c.Upstream, c.Credentials); err != nil {
		return s, fmt.Errorf("upstream: %w", err)
	}
	for _, r := range c.Registry {
		if _, err := oci.ParseRegistry(r); err != nil {
			return s, fmt.Errorf("registry: %q is not a registry host (HOST or HOST:PORT)", r)
		}
	}
	// Every name was checked above.
	if s.allow, err = c.AllowList(s.endpoints); err != nil {
		return s, err
	}
	if s.cache, err = cache.ParseConfig(c.CacheSize, c.CacheHighWatermark, c.CacheLowWatermark, c.Data); err != nil {
		return s, err
	}
	if s.TLS, err = tlsfiles.Server(c.TLSCert, c.TLSKey); err != nil {
		return s, err
	}
	if s.roots, err = tlsfiles.Roots(c.CA); err != nil {
		return s, err
	}
	if s.secret, err = secretfile.Read(c.SecretFile); err != nil {
		return s, err
	}
	return s, nil
}

// AllowList is the registries the configuration names: registry, and
// the hosts of upstream and credentials; any with any-registry.
func (c Config) AllowList(eps map[string]upstream.Endpoint) (*upstream.AllowList, error) {
	hosts := append([]string{}, c.Registry...)
	for h := range eps {
		hosts = append(hosts, h)
	}
	return upstream.NewAllowList("tracker", hosts, c.AnyRegistry)
}

// parseRedis reads the redis key: a server's URL, or, with master_name,
// the sentinels' (redis.ParseFailoverURL), so that replicas follow the
// primary the sentinels elect.
func parseRedis(raw string) (func() redis.UniversalClient, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if !q.Has("master_name") {
		if q.Has("addr") {
			return nil, fmt.Errorf("%q: addr lists further sentinels, which need master_name (the primary they watch)", raw)
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		return func() redis.UniversalClient { return redis.NewClient(o) }, nil
	}
	o, err := redis.ParseFailoverURL(raw)
	if err != nil {
		return nil, err
	}
	if o.MasterName == "" {
		return nil, fmt.Errorf("%q: master_name is empty; it names the primary the sentinels watch", raw)
	}
	return func() redis.UniversalClient { return redis.NewFailoverClient(o) }, nil
}

func (c Config) announceURL() (string, error) {
	if c.AnnounceURL != "" {
		u, err := url.Parse(c.AnnounceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%q is not an http(s) URL", c.AnnounceURL)
		}
		return c.AnnounceURL, nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", err
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if c.TLSCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/announce", nil
}
