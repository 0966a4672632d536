package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/tracker/api"
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
	// metainfoTimeout bounds waiting for the tracker's seeder: for a blob's
	// torrent, and then for each next piece hash.
	metainfoTimeout time.Duration
}

func (s *swarmSource) Fetch(ctx context.Context, ref oci.Blob, fl *flight.Flight) (Fetched, error) {
	mctx, cancel := context.WithTimeout(ctx, s.metainfoTimeout)
	infoBytes, err := s.trackers.Metainfo(mctx, ref)
	cancel()
	if err != nil {
		var e errcode.Error
		if errors.As(err, &e) && e.Code == errcode.ErrorCodeBlobUnknown {
			// The tracker asked the origin: it has no such blob.
			return nil, e
		}
		if upstream.RateLimited(err) {
			// The origin rate-limits the fleet and the tracker holds
			// that for every mirror: asking the origin from here would
			// only add to its count.
			return nil, err
		}
		return s.fallback(ctx, ref, fl, trackerReason(err), err)
	}
	info, err := blobTorrent(ref.Digest, infoBytes)
	if err != nil {
		return s.fallback(ctx, ref, fl, reasonTrackerError, err)
	}
	dl, err := s.swarm.Download(ctx, ref.Digest, infoBytes, s.trackers.AnnounceURLs(), fl,
		s.hashes(ref, info.NumPieces(), fl), s.pieces(ref))
	if err != nil {
		return s.fallback(ctx, ref, fl, "swarm", err)
	}
	s.counters.fetches.WithLabelValues("swarm", "ok").Inc()
	return seedOnCommit{dl: dl, d: ref.Digest, log: s.log}, nil
}

// Why a blob went to the origin whole, for want of the tracker: the
// reason label of origin_fallbacks_total.
const (
	reasonTrackerDown    = "tracker-down"    // no replica reachable
	reasonTrackerRefused = "tracker-refused" // secret, peer-cidr or an unsigned answer
	reasonTrackerBusy    = "tracker-busy"    // its seeder has no room for the blob now
	reasonTrackerOrigin  = "tracker-origin"  // it answered that its origin failed
	reasonTrackerSlow    = "tracker-slow"    // its seeder had no torrent within metainfo-timeout
	reasonTrackerError   = "tracker-error"   // anything else it answered: a 500, a wrong torrent
)

// trackerReason says why the tracker could not give a blob's torrent. An
// answer names the cause better than a replica that did not answer.
func trackerReason(err error) string {
	var ae *trackerclient.AnswerError
	var e errcode.Error
	switch {
	case errors.As(err, &ae) && errors.As(ae.Err, &e) && e.Code == api.ErrorCodeBusy:
		return reasonTrackerBusy
	case errors.As(err, &ae) && ae.Status >= http.StatusBadGateway:
		return reasonTrackerOrigin
	case errors.As(err, &ae):
		return reasonTrackerError
	case errors.Is(err, trackerclient.ErrRefused), errors.Is(err, trackerclient.ErrUnsigned):
		return reasonTrackerRefused
	case errors.Is(err, trackerclient.ErrUnavailable):
		return reasonTrackerDown
	case errors.Is(err, context.DeadlineExceeded):
		return reasonTrackerSlow
	}
	return reasonTrackerError
}

// blobTorrent checks that the tracker's torrent for blob d is the one its
// digest and size make (torrentmeta.ForBlob), whose pieces are checked
// against the hashes the tracker streams. Any other torrent's piece hashes
// would go unchecked here, so it is refused.
func blobTorrent(d digest.Digest, infoBytes []byte) (metainfo.Info, error) {
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		return info, fmt.Errorf("tracker's torrent: %w", err)
	}
	if !torrentmeta.IsForBlob(infoBytes, d, info.Length) {
		return info, fmt.Errorf("tracker's torrent for %s is not the one its digest and size make", d)
	}
	return info, nil
}

// errHashesLate stops following hashes that do not come.
var errHashesLate = errors.New("no piece hash from the tracker within the metainfo timeout")

// hashes follows the tracker's hashes of ref's n pieces for the download's
// life. A tracker that cannot be reached only loses them: peers may still
// hold pieces whose hashes came, and a stall takes the rest from the
// origin. So does one whose stream stays open but sends nothing for the
// metainfo timeout (its seeder stuck on the origin): a download waiting
// for hashes is not stalled, and would wait as long as the stream lasts;
// the seeder gets as long for each hash as it got for the whole blob
// before hashes were streamed. Any other error is the tracker's word that
// its seeder failed the blob (the origin's bytes did not match the digest,
// say): the download ends, and so does the origin fallback, at the digest
// check. Every hash given, the tracker has checked the blob's digest (it
// hands out the last one after its check), so fl may answer ranges within
// the pieces checked against them, if the fleet's key says the hashes are
// the tracker's.
func (s *swarmSource) hashes(ref oci.Blob, n int, fl *flight.Flight) swarm.PieceHashes {
	return func(ctx context.Context, got func(int, [20]byte)) error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		late := time.AfterFunc(s.metainfoTimeout, func() { cancel(errHashesLate) })
		defer late.Stop()
		err := s.trackers.Pieces(ctx, ref, 0, n, func(i int, sum [20]byte) {
			late.Reset(s.metainfoTimeout)
			got(i, sum)
		})
		switch {
		case errors.Is(context.Cause(ctx), errHashesLate):
			return fmt.Errorf("%w: %w", swarm.ErrHashesLost, errHashesLate)
		case errors.Is(err, trackerclient.ErrUnavailable):
			return fmt.Errorf("%w: %w", swarm.ErrHashesLost, err)
		case err == nil && s.trackers.Signed():
			fl.Vouch()
		}
		return err
	}
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
	if _, ferr := s.origin.Fetch(ctx, ref, fl); ferr != nil {
		if errors.As(ferr, new(*upstream.Error)) {
			return nil, ferr
		}
		return nil, errors.Join(ferr, err)
	}
	return seedStored{s: s, d: ref.Digest}, nil
}

// seedStored offers the fleet a blob the origin delivered, once it is
// committed: its torrent follows from its digest and size, so the next
// mirror to ask the swarm for it can get it here, and a tracker that was
// unreachable hears of it when it is back.
type seedStored struct {
	s *swarmSource
	d digest.Digest
}

func (c seedStored) Committed(commitErr error) {
	if commitErr != nil {
		return
	}
	if err := c.s.swarm.Seed(c.d, c.s.trackers.AnnounceURLs()); err != nil && !errors.Is(err, torrentmeta.ErrEmpty) {
		c.s.log.Warn("seed stored blob", "digest", c.d, "err", err)
	}
}

// seedOnCommit seeds a blob the swarm delivered once it is committed, or
// drops its torrent when the commit failed.
type seedOnCommit struct {
	dl  *swarm.Download
	d   digest.Digest
	log *slog.Logger
}

func (c seedOnCommit) Committed(commitErr error) {
	if commitErr != nil {
		c.dl.Drop()
		return
	}
	if err := c.dl.Seed(); err != nil {
		c.log.Warn("seed stored blob", "digest", c.d, "err", err)
	}
}
