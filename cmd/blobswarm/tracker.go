package main

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/blobswarm/blobswarm/internal/cliconfig"
	"github.com/blobswarm/blobswarm/internal/debugserver"
	"github.com/blobswarm/blobswarm/tracker"
)

func bindTrackerFlags(fs *pflag.FlagSet, c *tracker.Config) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address for announces, metainfo, tag resolution, health and metrics")
	fs.StringVar(&c.Data, "data", c.Data, "directory for the seeder's blobs and torrents")
	fs.StringVar(&c.PeerListen, "peer-listen", c.PeerListen, "the seeder's BitTorrent address")
	fs.StringVar(&c.AnnounceURL, "announce-url", c.AnnounceURL, "announce URL peers reach this tracker at (default http://<listen>/announce)")
	fs.StringArrayVar(&c.Upstream, "upstream", c.Upstream, "HOST=URL: the registry clients call HOST is reached at URL (repeatable)")
	fs.StringArrayVar(&c.Registry, "registry", c.Registry, "a registry the seeder and tag cache fetch from, reached at https://HOST (repeatable; a list given replaces the default); only these and the hosts of upstream and credentials are fetched from, whatever a mirror asks")
	fs.BoolVar(&c.AnyRegistry, "any-registry", c.AnyRegistry, "fetch from any registry a request names: an open proxy, with the tracker's credentials, for whoever reaches it (see README)")
	fs.BoolVar(&c.AllowPrivateNetworks, "allow-private-networks", c.AllowPrivateNetworks, "let upstream redirects, token realms and registries allowed only by --any-registry reach loopback, link-local and private addresses")
	fs.StringVar(&c.Redis, "redis", c.Redis, "redis://host:port/db shared by tracker replicas, or redis://sentinel:port/db?master_name=NAME&addr=sentinel2:port for Redis Sentinel (default: in memory)")
	fs.DurationVar(&c.AnnounceInterval, "announce-interval", c.AnnounceInterval, "how often peers are asked to announce")
	fs.IntVar(&c.MaxPeers, "max-peers", c.MaxPeers, "peers handed out per announce")
	fs.StringArrayVar(&c.PeerCIDR, "peer-cidr", c.PeerCIDR, "networks that may use the tracker (all but /healthz and /readyz) and trade with the seeder (repeatable; default loopback and private ranges)")
	fs.DurationVar(&c.TagTTL, "tag-ttl", c.TagTTL, "how long one tag resolution serves the whole fleet")
	fs.DurationVar(&c.MetainfoWait, "metainfo-wait", c.MetainfoWait, "how long a metainfo request waits for the origin's answer (the blob's size) before answering 202")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", c.UpstreamTimeout, "time to connect to an upstream and get its response headers")
	fs.DurationVar(&c.FetchIdleTimeout, "fetch-idle-timeout", c.FetchIdleTimeout, "give up an origin fetch whose body sends nothing for this long while the seeder reads it: its partial file goes and its piece-hash streams break")
	fs.IntVar(&c.OriginFetches, "origin-fetches", c.OriginFetches, "blobs the seeder fetches from one origin registry at once, each an open connection and a partial file; later ones wait, in the order asked")
	fs.IntVar(&c.OriginQueue, "origin-queue", c.OriginQueue, "blobs that may wait for an origin fetch; past it the tracker answers 503 and mirrors fetch from the origin themselves")
	fs.IntVar(&c.OriginReads, "origin-reads", c.OriginReads, "of the fetches from one origin registry, those that read their body at once; later ones wait, in the order asked, so an image's first layers finish first")
	fs.StringVar(&c.CacheSize, "cache-size", c.CacheSize, "quota for the seeder's blobs: bytes (500GiB) or percent of the data filesystem (80%); empty: unlimited")
	fs.IntVar(&c.CacheHighWatermark, "cache-high-watermark", c.CacheHighWatermark, "percent of the quota above which the least recently asked for blobs are evicted")
	fs.IntVar(&c.CacheLowWatermark, "cache-low-watermark", c.CacheLowWatermark, "percent of the quota eviction brings the store down to")
	fs.Int64Var(&c.UploadRate, "upload-rate", c.UploadRate, "seeder upload cap in bytes/s (0: unlimited)")
	fs.BoolVar(&c.SeedSpare, "seed-spare", c.SeedSpare, "once the seeder holds a blob, send the rarest pieces to peers gaining slower than the fastest peer, as many at once as its link carries at that rate")
	fs.Int64Var(&c.SeedWindow, "seed-window", c.SeedWindow, "bytes of pieces the seeder offers each peer ahead of what it has (0: two pieces; at least two)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.DebugListen, "debug-listen", c.DebugListen, "address for Go's CPU and heap profiles at /debug/pprof/ (empty: off; they show the command line, so keep it on localhost)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate: serve the HTTP endpoints over HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.CA, "ca", c.CA, "PEM file of an extra certificate authority to trust for upstreams")
	fs.StringVar(&c.SecretFile, "secret-file", c.SecretFile, "file holding the fleet's shared secret: announces, metainfo, pieces and tags require credentials made from it, and metainfo and tag answers are signed with a key made from it")
}

func trackerCmd() *cobra.Command {
	var configPath string
	flagCfg := tracker.Defaults()
	cmd := &cobra.Command{
		Use:   "tracker",
		Short: "Run the central tracker and origin seeder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := tracker.Defaults()
			if err := cliconfig.Load(cmd, configPath, &cfg, bindTrackerFlags); err != nil {
				return err
			}
			log, err := newLogger(cfg.LogLevel)
			if err != nil {
				return err
			}
			settings, err := cfg.Resolve()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			if settings.TLS != nil {
				ln = tls.NewListener(ln, settings.TLS)
			}
			t, err := tracker.Start(settings, log)
			if err != nil {
				ln.Close()
				return err
			}
			defer t.Close()
			dbg, err := debugserver.Start(cfg.DebugListen, log)
			if err != nil {
				return err
			}
			defer dbg.Close()
			log.Info("tracker listening", "addr", ln.Addr().String(), "data", cfg.Data)
			return serve(cmd.Context(), ln, t.Handler())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML file whose keys are these flags' names (flags given here win)")
	bindTrackerFlags(cmd.Flags(), &flagCfg)
	return cmd
}
