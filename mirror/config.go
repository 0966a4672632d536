package mirror

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/platforms"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/internal/secretfile"
	"github.com/blobswarm/blobswarm/internal/tlsfiles"
)

// Config is everything `blobswarm mirror` can be told, by flag or by the
// YAML file; the yaml keys are the flag names.
type Config struct {
	Listen string `yaml:"listen"`
	Data   string `yaml:"data"`
	// Upstream entries are HOST=URL: the registry clients call HOST is
	// reached at URL.
	Upstream        []string `yaml:"upstream"`
	DefaultUpstream string   `yaml:"default-upstream"`
	// Credentials per upstream host; only in the config file, never flags,
	// so secrets stay out of process listings.
	Credentials map[string]upstream.CredentialFiles `yaml:"credentials"`
	// Registry lists further registries clients may name with ?ns=,
	// reached at https://HOST. Only these, default-upstream and the hosts
	// of upstream and credentials are fetched from.
	Registry []string `yaml:"registry"`
	// AnyRegistry fetches from whatever registry a client names: an open
	// proxy to anyone who reaches the listener.
	AnyRegistry bool `yaml:"any-registry"`
	// AllowPrivateNetworks lets redirects, token realms and registries
	// allowed only by any-registry reach loopback, link-local and private
	// addresses.
	AllowPrivateNetworks bool `yaml:"allow-private-networks"`

	UpstreamTimeout time.Duration `yaml:"upstream-timeout"`
	// FetchIdleTimeout gives up a blob fetch whose upstream body sends
	// nothing for this long: its slot frees, its partial file goes, and
	// its clients' answers break.
	FetchIdleTimeout time.Duration `yaml:"fetch-idle-timeout"`
	// MaxConcurrentFetches bounds the blob fetches in progress per
	// upstream registry; more wait their turn, in the order asked.
	MaxConcurrentFetches int    `yaml:"max-concurrent-fetches"`
	LogLevel             string `yaml:"log-level"`
	// DebugListen serves Go's profiles (/debug/pprof/) when set.
	DebugListen string `yaml:"debug-listen"`

	// Tracker base URLs (one per replica). Without any, the mirror is a
	// plain pull-through cache.
	Tracker []string `yaml:"tracker"`
	// PeerListen is this node's BitTorrent address.
	PeerListen string `yaml:"peer-listen"`
	// PeerCIDR are the networks peers may be in (default: loopback and
	// private ranges).
	PeerCIDR []string `yaml:"peer-cidr"`
	// Readahead starts the layers of a manifest into the swarm as soon as
	// a client fetches the manifest, as many as ReadaheadBlobs and
	// ReadaheadFetches allow.
	Readahead bool `yaml:"readahead"`
	// ReadaheadBlobs is how many blobs of one manifest are read ahead,
	// config first; clients ask for the rest themselves.
	ReadaheadBlobs int `yaml:"readahead-blobs"`
	// ReadaheadFetches stops read-ahead while this many fetches wait for
	// a slot, whoever asked for them.
	ReadaheadFetches int `yaml:"readahead-fetches"`
	// Platform picks the manifest of an index to read ahead (os/arch).
	Platform string `yaml:"platform"`
	// MetainfoTimeout bounds waiting for the tracker's seeder, for a blob's
	// torrent and then for each next piece hash, before fetching what is
	// missing from the origin directly.
	MetainfoTimeout time.Duration `yaml:"metainfo-timeout"`
	// StallTimeout falls back to the origin when the swarm delivers
	// nothing for this long.
	StallTimeout time.Duration `yaml:"stall-timeout"`
	UploadRate   int64         `yaml:"upload-rate"`
	PeerConns    int           `yaml:"peer-conns"`
	DownloadRate int64         `yaml:"download-rate"`
	// CacheSize is the quota for stored blobs: bytes ("50GiB") or percent
	// of the data filesystem ("80%"); empty is unlimited. Eviction starts
	// above the high watermark and goes down to the low one (percent of
	// the quota).
	CacheSize          string `yaml:"cache-size"`
	CacheHighWatermark int    `yaml:"cache-high-watermark"`
	CacheLowWatermark  int    `yaml:"cache-low-watermark"`
	// CA adds an authority to trust for upstream registries and https
	// trackers.
	CA string `yaml:"ca"`
	// TrackerSecretFile holds the fleet's shared secret, when the tracker
	// requires one.
	TrackerSecretFile string `yaml:"tracker-secret-file"`
	// AdminToken, when set, is the bearer token every admin API request
	// (mirrorctl) must carry.
	AdminToken string `yaml:"admin-token"`
}

// Defaults returns the configuration a mirror runs with when told nothing.
func Defaults() Config {
	return Config{
		Listen:               "127.0.0.1:5000",
		Data:                 "/var/lib/blobswarm/mirror",
		DefaultUpstream:      "docker.io",
		UpstreamTimeout:      30 * time.Second,
		FetchIdleTimeout:     30 * time.Second,
		MaxConcurrentFetches: 32,
		LogLevel:             "info",
		PeerListen:           ":6881",
		Readahead:            true,
		ReadaheadBlobs:       128,
		ReadaheadFetches:     256,
		Platform:             runtime.GOOS + "/" + runtime.GOARCH,
		MetainfoTimeout:      10 * time.Minute,
		StallTimeout:         30 * time.Second,
		PeerConns:            swarm.DefaultConnsPerTorrent,
		CacheHighWatermark:   95,
		CacheLowWatermark:    85,
	}
}

// Endpoints resolves the upstream entries and credential files.
func (c Config) Endpoints() (map[string]upstream.Endpoint, error) {
	return upstream.ParseEndpoints(c.Upstream, c.Credentials)
}

// AllowList is the registries the configuration lets clients name:
// default-upstream, registry, and the hosts of upstream and credentials;
// any with any-registry.
func (c Config) AllowList(eps map[string]upstream.Endpoint) (*upstream.AllowList, error) {
	hosts := append([]string{c.DefaultUpstream}, c.Registry...)
	for h := range eps {
		hosts = append(hosts, h)
	}
	return upstream.NewAllowList("mirror", hosts, c.AnyRegistry)
}

// settings is a Config with its upstreams, files, networks and cache
// parsed and read once: what Validate checks is what New runs with.
type settings struct {
	Config
	endpoints map[string]upstream.Endpoint
	allow     *upstream.AllowList
	cache     cache.Config
	roots     *x509.CertPool
	secret    string
	peerCIDRs []netip.Prefix
}

// Validate checks what can be checked before anything starts, naming the
// offending key.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

func (c Config) resolve() (settings, error) {
	s := settings{Config: c}
	if c.Listen == "" {
		return s, fmt.Errorf("listen: must not be empty")
	}
	// Checked here, not first at net.Listen, which comes after the data
	// dir is created.
	if _, err := net.ResolveTCPAddr("tcp", c.Listen); err != nil {
		return s, fmt.Errorf("listen: %w", err)
	}
	if _, err := net.ResolveTCPAddr("tcp", c.PeerListen); err != nil {
		return s, fmt.Errorf("peer-listen: %w", err)
	}
	if c.Data == "" {
		return s, fmt.Errorf("data: must not be empty")
	}
	if _, err := oci.ParseRegistry(c.DefaultUpstream); err != nil {
		return s, fmt.Errorf("default-upstream: %q is not a registry host (HOST or HOST:PORT)", c.DefaultUpstream)
	}
	for _, r := range c.Registry {
		if _, err := oci.ParseRegistry(r); err != nil {
			return s, fmt.Errorf("registry: %q is not a registry host (HOST or HOST:PORT)", r)
		}
	}
	if c.MaxConcurrentFetches < 1 {
		return s, fmt.Errorf("max-concurrent-fetches: must be at least 1, got %d", c.MaxConcurrentFetches)
	}
	if c.UpstreamTimeout <= 0 {
		return s, fmt.Errorf("upstream-timeout: must be positive, got %s", c.UpstreamTimeout)
	}
	if c.FetchIdleTimeout <= 0 {
		return s, fmt.Errorf("fetch-idle-timeout: must be positive, got %s", c.FetchIdleTimeout)
	}
	var err error
	if s.endpoints, err = c.Endpoints(); err != nil {
		return s, fmt.Errorf("upstream: %w", err)
	}
	// Every name was checked above.
	if s.allow, err = c.AllowList(s.endpoints); err != nil {
		return s, err
	}
	for _, t := range c.Tracker {
		if u, err := url.Parse(t); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, fmt.Errorf("tracker: %q is not an http(s) URL", t)
		}
	}
	if s.cache, err = cache.ParseConfig(c.CacheSize, c.CacheHighWatermark, c.CacheLowWatermark, c.Data); err != nil {
		return s, err
	}
	if s.roots, err = tlsfiles.Roots(c.CA); err != nil {
		return s, err
	}
	if s.secret, err = secretfile.Read(c.TrackerSecretFile); err != nil {
		return s, fmt.Errorf("tracker-%w", err)
	}
	if s.peerCIDRs, err = peerfilter.ParseCIDRs(c.PeerCIDR); err != nil {
		return s, fmt.Errorf("peer-cidr: %w", err)
	}
	if _, err := platforms.Parse(c.Platform); err != nil {
		return s, fmt.Errorf("platform: %w", err)
	}
	switch {
	case c.MetainfoTimeout <= 0:
		return s, fmt.Errorf("metainfo-timeout: must be positive")
	case c.StallTimeout <= 0:
		return s, fmt.Errorf("stall-timeout: must be positive")
	case c.ReadaheadBlobs < 1:
		return s, fmt.Errorf("readahead-blobs: must be at least 1, got %d", c.ReadaheadBlobs)
	case c.ReadaheadFetches < 1:
		return s, fmt.Errorf("readahead-fetches: must be at least 1, got %d", c.ReadaheadFetches)
	case c.PeerConns <= 0:
		return s, fmt.Errorf("peer-conns: must be positive")
	case c.UploadRate < 0 || c.DownloadRate < 0:
		return s, fmt.Errorf("upload-rate, download-rate: must not be negative")
	case strings.ContainsFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return s, fmt.Errorf("admin-token: must not contain spaces or control characters")
	}
	return s, nil
}
