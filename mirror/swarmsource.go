package mirror

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// swarmSource gets blobs from the fleet: the torrent from the tracker, the
// pieces from other mirrors and the tracker's seeder. It falls back to the
// origin when the tracker cannot be reached or the swarm stops making
// progress, so the mirror is never worse than a plain one.
type swarmSource struct {
	swarm    *swarm.Swarm
	trackers *trackerclient.Client
	origin   *originSource
	counters sourceCounters
	log      *slog.Logger
	// metainfoTimeout bounds waiting for the tracker's seeder to fetch a
	// blob from the origin.
	metainfoTimeout time.Duration
}

func (s *swarmSource) Fetch(ctx context.Context, ref oci.Blob, fl *flight.Flight) (Fetched, error) {
	mctx, cancel := context.WithTimeout(ctx, s.metainfoTimeout)
	info, err := s.trackers.Metainfo(mctx, ref)
	cancel()
	if err != nil {
		var oci errcode.Error
		if errors.As(err, &oci) && oci.Code == errcode.ErrorCodeBlobUnknown {
			// The tracker asked the origin: it has no such blob.
			return nil, oci
		}
		return s.fallback(ctx, ref, fl, "tracker", err)
	}
	dl, err := s.swarm.Download(ctx, ref.Digest, info, s.trackers.AnnounceURLs(), fl, s.pieces(ref))
	if err != nil {
		return s.fallback(ctx, ref, fl, "swarm", err)
	}
	s.counters.fetches.WithLabelValues("swarm", "ok").Inc()
	return seedOnCommit{dl: dl, d: ref.Digest, log: s.log}, nil
}

// pieces reads the spans of ref a stalled swarm download lacks from the
// origin, counted as a fallback once per blob.
func (s *swarmSource) pieces(ref oci.Blob) swarm.RangeSource {
	var once sync.Once
	ranges := s.origin.ranges(ref)
	return func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		once.Do(func() { s.counters.fallbacks.WithLabelValues("pieces").Inc() })
		return ranges(ctx, off, n)
	}
}

// fallback fetches from the origin after the swarm path failed. Only what
// the swarm did not verify is asked for (or, from an origin that ignores
// the Range, everything again); readers never see less than they saw, and
// the commit checks the whole file anyway.
func (s *swarmSource) fallback(ctx context.Context, ref oci.Blob, fl *flight.Flight, reason string, err error) (Fetched, error) {
	s.counters.fallbacks.WithLabelValues(reason).Inc()
	s.log.Warn("falling back to the origin", "reason", reason, "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest, "err", err)
	fetched, ferr := s.origin.Fetch(ctx, ref, fl)
	if ferr != nil {
		if errors.As(ferr, new(*upstream.Error)) {
			return nil, ferr
		}
		return nil, errors.Join(ferr, err)
	}
	return fetched, nil
}

// seedOnCommit seeds a blob the swarm delivered once it is committed, or
// drops its torrent when the commit failed. Blobs that came from the origin
// have no torrent here and are not seeded.
type seedOnCommit struct {
	dl  *swarm.Download
	d   digest.Digest
	log *slog.Logger
}

func (c seedOnCommit) Committed(commitErr error) {
	if commitErr != nil {
		if err := c.dl.Drop(); err != nil {
			c.log.Warn("drop torrent", "digest", c.d, "err", err)
		}
		return
	}
	if err := c.dl.Seed(); err != nil {
		c.log.Warn("seed stored blob", "digest", c.d, "err", err)
	}
}
