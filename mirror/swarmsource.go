package mirror

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/prometheus/client_golang/prometheus"

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
	m        *Mirror
	swarm    *swarm.Swarm
	trackers *trackerclient.Client
	origin   BlobSource
	// metainfoTimeout bounds waiting for the tracker's seeder to fetch a
	// blob from the origin.
	metainfoTimeout time.Duration

	mu   sync.Mutex
	info map[oci.Blob][]byte // torrents downloaded, awaiting commit
}

func (s *swarmSource) Fetch(ctx context.Context, ref oci.Blob, fl *flight.Flight) error {
	mctx, cancel := context.WithTimeout(ctx, s.metainfoTimeout)
	info, err := s.trackers.Metainfo(mctx, ref)
	cancel()
	if err != nil {
		var oci errcode.Error
		if errors.As(err, &oci) && oci.Code == errcode.ErrorCodeBlobUnknown {
			// The tracker asked the origin: it has no such blob.
			return oci
		}
		return s.fallback(ctx, ref, fl, "tracker", err)
	}
	if err := s.swarm.Download(ctx, ref.Digest, info, s.trackers.AnnounceURLs(), fl, s.pieces(ref)); err != nil {
		return s.fallback(ctx, ref, fl, "swarm", err)
	}
	s.mu.Lock()
	s.info[ref] = info
	s.mu.Unlock()
	s.m.metrics.fetchesBySource.WithLabelValues("swarm", "ok").Inc()
	return nil
}

// pieces reads the spans of ref a stalled swarm download lacks from the
// origin, counted as a fallback once per blob.
func (s *swarmSource) pieces(ref oci.Blob) swarm.RangeSource {
	var once sync.Once
	return func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		once.Do(func() { s.m.metrics.fallbacks.WithLabelValues("pieces").Inc() })
		body, err := s.m.upstream.GetBlobRange(ctx, ref.Registry, ref.Repo, ref.Digest, off, n)
		if err != nil {
			return nil, err
		}
		return countingBody{body, s.m.metrics.originBytes}, nil
	}
}

// countingBody adds what is read to a counter.
type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

// fallback fetches from the origin after the swarm path failed. Bytes the
// swarm already wrote are rewritten with the same content; readers never
// see less than they saw, and the commit checks the whole file anyway.
func (s *swarmSource) fallback(ctx context.Context, ref oci.Blob, fl *flight.Flight, reason string, err error) error {
	s.m.metrics.fallbacks.WithLabelValues(reason).Inc()
	s.m.log.Warn("falling back to the origin", "reason", reason, "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest, "err", err)
	if ferr := s.origin.Fetch(ctx, ref, fl); ferr != nil {
		if errors.As(ferr, new(*upstream.Error)) {
			return ferr
		}
		return errors.Join(ferr, err)
	}
	return nil
}

// Stored seeds a blob the swarm delivered once it is committed (or drops
// its torrent when the commit failed), and starts seeding blobs that came
// from the origin too, so the fleet can get them from this node.
func (s *swarmSource) Stored(ref oci.Blob, commitErr error) {
	s.mu.Lock()
	info, ok := s.info[ref]
	delete(s.info, ref)
	s.mu.Unlock()
	if !ok {
		return
	}
	if commitErr != nil {
		if err := s.swarm.Drop(ref.Digest); err != nil {
			s.m.log.Warn("drop torrent", "digest", ref.Digest, "err", err)
		}
		return
	}
	if err := s.swarm.Seed(ref.Digest, info, s.trackers.AnnounceURLs()); err != nil {
		s.m.log.Warn("seed stored blob", "digest", ref.Digest, "err", err)
	}
}
