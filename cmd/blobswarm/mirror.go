package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/blobswarm/blobswarm/internal/cliconfig"
	"github.com/blobswarm/blobswarm/internal/debugserver"
	"github.com/blobswarm/blobswarm/mirror"
)

// drainTimeout bounds how long a stopping mirror waits for blob fetches in
// progress; what is cut off is fetched again on demand after a restart.
const drainTimeout = 5 * time.Second

func bindMirrorFlags(fs *pflag.FlagSet, c *mirror.Config) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address the registry API listens on")
	fs.StringVar(&c.Data, "data", c.Data, "directory for blobs and manifests")
	fs.StringArrayVar(&c.Upstream, "upstream", c.Upstream, "HOST=URL: the registry clients call HOST is reached at URL (repeatable); other hosts are reached at https://HOST")
	fs.StringVar(&c.DefaultUpstream, "default-upstream", c.DefaultUpstream, "registry for requests without ?ns= (Docker's registry-mirrors only mirror Docker Hub)")
	fs.StringArrayVar(&c.Registry, "registry", c.Registry, "a further registry clients may name with ?ns=, reached at https://HOST (repeatable); only these, default-upstream and the hosts of upstream and credentials are fetched from")
	fs.BoolVar(&c.AnyRegistry, "any-registry", c.AnyRegistry, "fetch from any registry a client names: an open proxy for whoever reaches the listener (see README)")
	fs.BoolVar(&c.AllowPrivateNetworks, "allow-private-networks", c.AllowPrivateNetworks, "let upstream redirects, token realms and registries allowed only by --any-registry reach loopback, link-local and private addresses")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", c.UpstreamTimeout, "time to connect to an upstream and get its response headers")
	fs.DurationVar(&c.FetchIdleTimeout, "fetch-idle-timeout", c.FetchIdleTimeout, "give up a blob fetch whose upstream sends nothing for this long: its slot and its partial file are freed, its clients' answers break")
	fs.IntVar(&c.MaxConcurrentFetches, "max-concurrent-fetches", c.MaxConcurrentFetches, "blob fetches in progress at once per upstream registry; more wait their turn, in the order asked")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.DebugListen, "debug-listen", c.DebugListen, "address for Go's CPU and heap profiles at /debug/pprof/ (empty: off; they show the command line, so keep it on localhost)")
	fs.StringArrayVar(&c.Tracker, "tracker", c.Tracker, "tracker base URL (repeatable, one per replica); without one the mirror is a plain pull-through cache")
	fs.StringVar(&c.PeerListen, "peer-listen", c.PeerListen, "this node's BitTorrent address")
	fs.StringArrayVar(&c.PeerCIDR, "peer-cidr", c.PeerCIDR, "networks peers may be in (repeatable; default loopback and private ranges)")
	fs.BoolVar(&c.Readahead, "readahead", c.Readahead, "start all layers of a manifest into the swarm when a client fetches it")
	fs.IntVar(&c.ReadaheadBlobs, "readahead-blobs", c.ReadaheadBlobs, "blobs of one manifest read ahead, config first; clients ask for the rest")
	fs.IntVar(&c.ReadaheadFetches, "readahead-fetches", c.ReadaheadFetches, "read-ahead starts no fetch while this many wait for a fetch slot")
	fs.StringVar(&c.Platform, "platform", c.Platform, "platform whose manifest of an index is read ahead")
	fs.DurationVar(&c.MetainfoTimeout, "metainfo-timeout", c.MetainfoTimeout, "how long to wait for the tracker's seeder before fetching from the origin")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", c.StallTimeout, "fall back to the origin when the swarm delivers nothing for this long")
	fs.IntVar(&c.PeerConns, "peer-conns", c.PeerConns, "peer connections per blob: few, so a host's senders do not overflow its downlink")
	fs.Int64Var(&c.UploadRate, "upload-rate", c.UploadRate, "upload cap to peers in bytes/s (0: unlimited)")
	fs.Int64Var(&c.DownloadRate, "download-rate", c.DownloadRate, "download cap from peers in bytes/s (0: unlimited)")
	fs.StringVar(&c.CacheSize, "cache-size", c.CacheSize, "quota for cached blobs: bytes (50GiB) or percent of the data filesystem (80%); empty: unlimited")
	fs.IntVar(&c.CacheHighWatermark, "cache-high-watermark", c.CacheHighWatermark, "percent of the quota above which least recently used blobs are evicted")
	fs.IntVar(&c.CacheLowWatermark, "cache-low-watermark", c.CacheLowWatermark, "percent of the quota eviction brings the cache down to")
	fs.StringVar(&c.CA, "ca", c.CA, "PEM file of an extra certificate authority to trust for upstreams and https trackers")
	fs.StringVar(&c.TrackerSecretFile, "tracker-secret-file", c.TrackerSecretFile, "file holding the fleet's shared secret, if the tracker requires one")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token the admin API (mirrorctl) requires; empty: no token (set it in the config file to keep it out of process listings)")
}

func mirrorCmd() *cobra.Command {
	var configPath string
	flagCfg := mirror.Defaults()
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Run the node-local registry mirror",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := mirror.Defaults()
			if err := cliconfig.Load(cmd, configPath, &cfg, bindMirrorFlags); err != nil {
				return err
			}
			log, err := newLogger(cfg.LogLevel)
			if err != nil {
				return err
			}
			m, err := mirror.New(cfg, log)
			if err != nil {
				return err
			}
			defer m.Close()
			dbg, err := debugserver.Start(cfg.DebugListen, log)
			if err != nil {
				return err
			}
			defer dbg.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			log.Info("mirror listening", "addr", ln.Addr().String(), "data", cfg.Data, "default-upstream", cfg.DefaultUpstream)
			serveErr := serve(cmd.Context(), ln, m.Handler())
			drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			if err := m.Drain(drain); err != nil {
				log.Warn("stopping with blob fetches in progress; they start over on demand", "err", err)
			}
			return serveErr
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML file whose keys are these flags' names (flags given here win)")
	bindMirrorFlags(cmd.Flags(), &flagCfg)
	return cmd
}
