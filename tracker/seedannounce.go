package tracker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/peerid"
	"github.com/blobswarm/blobswarm/blobswarm/superseed"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
	"github.com/blobswarm/blobswarm/tracker/seeder"
)

// seedAnnouncer lists the tracker's seeder in the swarm of every blob it
// serves, straight in the peer store: the seeder speaks the peer wire
// protocol itself and has no client that would announce over HTTP. With
// Redis every replica's seeder is listed, so a mirror asking one replica
// also finds the blob at another.
type seedAnnouncer struct {
	*superseed.Server
	peers peerstore.Store
	self  peerstore.Peer
	ttl   time.Duration
	log   *slog.Logger
}

// Seed serves the blob and lists the seeder in its swarm at once, before a
// mirror given the metainfo announces.
func (a *seedAnnouncer) Seed(d digest.Digest, infoBytes []byte) error {
	if err := a.Server.Seed(d, infoBytes); err != nil {
		return err
	}
	a.announce(context.Background(), metainfo.HashBytes(infoBytes))
	return nil
}

// SeedGrowing serves a blob while it arrives from the origin, and lists
// the seeder in its swarm at once, as Seed does.
func (a *seedAnnouncer) SeedGrowing(d digest.Digest, infoBytes []byte, r io.ReaderAt) (seeder.Growing, error) {
	g, err := a.Server.SeedGrowing(d, infoBytes, r)
	if err != nil {
		return nil, err
	}
	ih := metainfo.HashBytes(infoBytes)
	a.announce(context.Background(), ih)
	return &announcedGrowing{Growing: g, a: a, ih: ih}, nil
}

// announcedGrowing withdraws the seeder's listing when its blob is
// dropped, so mirrors stop dialing a seeder that no longer has it.
type announcedGrowing struct {
	*superseed.Growing
	a  *seedAnnouncer
	ih metainfo.Hash
}

func (g *announcedGrowing) Drop() {
	g.Growing.Drop()
	g.a.withdraw(g.ih)
}

// Drop stops serving a blob leaving the store and withdraws the seeder's
// listing in its swarm.
func (a *seedAnnouncer) Drop(d digest.Digest) {
	if ih, ok := a.Server.Drop(d); ok {
		a.withdraw(ih)
	}
}

// withdraw takes the seeder out of a swarm, so mirrors stop dialing a
// seeder that no longer has the blob.
func (a *seedAnnouncer) withdraw(ih metainfo.Hash) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.peers.Remove(ctx, ih, a.self.ID); err != nil {
		a.log.Warn("withdrawing the seeder from a dropped blob's swarm", "infohash", ih, "err", err)
	}
}

func (a *seedAnnouncer) announce(ctx context.Context, ih metainfo.Hash) {
	if err := a.peers.Announce(ctx, ih, a.self, a.ttl); err != nil {
		a.log.Warn("listing the seeder in a swarm", "infohash", ih, "err", err)
	}
}

// run renews the listings well within their TTL until ctx ends, then
// withdraws them so mirrors stop dialing a seeder that is gone.
func (a *seedAnnouncer) run(ctx context.Context) {
	tk := time.NewTicker(a.ttl / 3)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for _, ih := range a.Seeding() {
				if err := a.peers.Remove(wctx, ih, a.self.ID); err != nil {
					a.log.Warn("withdrawing the seeder from a swarm", "infohash", ih, "err", err)
				}
			}
			return
		case <-tk.C:
			for _, ih := range a.Seeding() {
				a.announce(ctx, ih)
			}
		}
	}
}

// mirrorHasAll reports whether a mirror the seeder saw with the whole blob
// on its own connection (seen) is still listed in the swarm with it.
// Mirrors that finish drop their connection to the seeder, so only the
// tracker still knows they are there. An announce alone counts for
// nothing: any client that announced a mirror's peer-ID prefix and left=0
// would otherwise hold the seeder back, and one that then served bad
// pieces left the fleet with nothing but the seeder's patience (a 2 s pull
// took 26 s).
func mirrorHasAll(peers peerstore.Store, ih metainfo.Hash, seen []peerstore.PeerID) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Seeders are handed out first; besides the tracker replicas' own,
	// a few more are enough to find a mirror among them.
	ps, err := peers.Peers(ctx, ih, 8, nil)
	if err != nil {
		return false
	}
	for _, p := range ps {
		if p.Seeder() && bytes.HasPrefix(p.ID[:], []byte(peerid.MirrorPrefix)) && slices.Contains(seen, p.ID) {
			return true
		}
	}
	return false
}

// resolveSeeder turns the seeder's address as mirrors see it (host:port,
// the host possibly a name) into the address listed in swarms.
func resolveSeeder(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("seeder port %q: %w", portStr, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("seeder address %s: cannot resolve %q (set --peer-listen to an IP or --announce-url to a host peers reach): %w", hostport, host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(port)), nil
}
