// Package seeder is the tracker's origin seeder: the one place that fetches
// a blob from the origin registry. It verifies the blob, builds its
// deterministic torrent, seeds it, and hands the info bytes to every mirror
// that asks, so a fleet costs the origin one copy of each layer.
package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/infobytes"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// ErrPending means the blob is being fetched from the origin; ask again.
var ErrPending = errors.New("blob is being fetched from the origin")

// SharedInfo is a digest-to-info-bytes map shared by tracker replicas
// (Redis), so one replica can answer for a blob another one seeded.
type SharedInfo interface {
	Get(ctx context.Context, d digest.Digest) ([]byte, error)
	Put(ctx context.Context, d digest.Digest, info []byte) error
}

// Seeds is what serves stored blobs to the swarm (superseed.Server).
type Seeds interface {
	// Seed serves stored blob d under the torrent of infoBytes; seeding
	// it again is a no-op.
	Seed(d digest.Digest, infoBytes []byte) error
	// InfoBytes returns what Seed was last given for d, also after a
	// restart, or infobytes.ErrNotFound.
	InfoBytes(d digest.Digest) ([]byte, error)
}

// Config tunes a Seeder.
type Config struct {
	// FailureTTL is how long an origin failure is repeated to askers
	// before the next ask tries the origin again.
	FailureTTL time.Duration
	// FetchTimeout bounds one origin fetch, body included.
	FetchTimeout time.Duration
	// Shared, when set, publishes info bytes to other replicas.
	Shared SharedInfo
}

// Seeder fetches and seeds blobs for the tracker.
type Seeder struct {
	cfg      Config
	store    *store.Store
	seeds    Seeds
	upstream *upstream.Client
	log      *slog.Logger

	// mu guards the maps below: one lock for the seeder's state.
	mu sync.Mutex
	// inflight has one fetch per digest, whichever repository asked first:
	// the bytes are the same in every repository that has them.
	inflight map[digest.Digest]*job
	// failed remembers failures per blob and repository: the origin may
	// have a digest in one repository and not in another, and a failure
	// in one must not answer for the others.
	failed map[oci.Blob]*job
	// seeded has the info bytes of every blob this replica seeds, set once
	// a fetch has also published them: every metainfo request asks, so the
	// answer must not wait on the disk.
	seeded map[digest.Digest][]byte
}

type job struct {
	ref      oci.Blob
	done     chan struct{}
	err      error
	finished time.Time
}

// New returns a seeder that keeps blobs in st and serves them with seeds.
func New(cfg Config, st *store.Store, seeds Seeds, up *upstream.Client, log *slog.Logger) *Seeder {
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = 5 * time.Second
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 30 * time.Minute
	}
	return &Seeder{cfg: cfg, store: st, seeds: seeds, upstream: up, log: log,
		inflight: map[digest.Digest]*job{}, failed: map[oci.Blob]*job{}, seeded: map[digest.Digest][]byte{}}
}

// Metainfo returns the blob's info bytes. A blob the seeder does not hold
// yet is fetched from the origin in the background, once however many ask;
// Metainfo waits up to wait for it and then returns ErrPending.
func (s *Seeder) Metainfo(ctx context.Context, ref oci.Blob, wait time.Duration) ([]byte, error) {
	if info, err := s.known(ctx, ref.Digest); err == nil {
		return info, nil
	}
	j := s.job(ref)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-j.done:
			switch {
			case j.err == nil:
				return s.known(ctx, ref.Digest)
			case j.ref == ref:
				return nil, j.err
			}
			// The fetch for another repository failed; this one may
			// still have the blob.
			j = s.job(ref)
		case <-timer.C:
			return nil, ErrPending
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// known returns info bytes for a blob this replica seeds, seeded before a
// restart, or another replica published. A blob already seeded costs a map
// lookup.
func (s *Seeder) known(ctx context.Context, d digest.Digest) ([]byte, error) {
	s.mu.Lock()
	info, ok := s.seeded[d]
	_, fetching := s.inflight[d]
	s.mu.Unlock()
	if ok {
		return info, nil
	}
	// A fetch in progress has its blob on disk before it has published it
	// to the other replicas: answering from the disk then would send a
	// mirror to another replica that does not know the blob yet, and that
	// replica to the origin again.
	if _, err := s.store.Stat(d); err == nil && !fetching {
		if info, err := s.seeds.InfoBytes(d); err == nil {
			return info, s.seedAgain(d, info)
		}
	}
	if s.cfg.Shared != nil {
		return s.cfg.Shared.Get(ctx, d)
	}
	return nil, infobytes.ErrNotFound
}

// seedAgain seeds a blob seeded before a restart, from its saved info
// bytes, so the next ask is a map lookup.
func (s *Seeder) seedAgain(d digest.Digest, info []byte) error {
	if err := s.ensureSeeding(d, info); err != nil {
		return err
	}
	s.mu.Lock()
	s.seeded[d] = info
	s.mu.Unlock()
	return nil
}

// ensureSeeding starts seeding a stored blob: one just fetched, or one
// seeded before a restart.
func (s *Seeder) ensureSeeding(d digest.Digest, info []byte) error {
	if err := s.seeds.Seed(d, info); err != nil {
		return fmt.Errorf("seed %s: %w", d, err)
	}
	return nil
}

// job returns ref's recent failure, the fetch of its blob in progress, or
// a new fetch.
func (s *Seeder) job(ref oci.Blob) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.failed[ref]; ok && time.Since(j.finished) < s.cfg.FailureTTL {
		return j
	}
	if j, ok := s.inflight[ref.Digest]; ok {
		return j
	}
	j := &job{ref: ref, done: make(chan struct{})}
	s.inflight[ref.Digest] = j
	go s.run(j)
	return j
}

func (s *Seeder) run(j *job) {
	ref, start := j.ref, time.Now()
	info, err := s.fetch(ref)
	s.mu.Lock()
	j.err, j.finished = err, time.Now()
	delete(s.inflight, ref.Digest)
	delete(s.failed, ref)
	if err != nil {
		s.forgetOldFailuresLocked()
		s.failed[ref] = j
	} else {
		s.seeded[ref.Digest] = info
	}
	s.mu.Unlock()
	close(j.done)
	if err != nil {
		s.log.Warn("origin fetch failed", "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest, "err", err)
		return
	}
	s.log.Info("seeding blob from origin", "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest, "took", time.Since(start).Round(time.Millisecond))
}

// forgetOldFailuresLocked keeps the failure memory as small as the set of
// blobs that failed within one FailureTTL, however many bad digests are
// asked for.
func (s *Seeder) forgetOldFailuresLocked() {
	for ref, j := range s.failed {
		if time.Since(j.finished) >= s.cfg.FailureTTL {
			delete(s.failed, ref)
		}
	}
}

// fetch downloads the blob from the origin into the store (verified),
// builds its torrent, starts seeding it and publishes its info bytes.
func (s *Seeder) fetch(ref oci.Blob) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FetchTimeout)
	defer cancel()
	if _, err := s.store.Stat(ref.Digest); errors.Is(err, store.ErrNotFound) {
		if err := s.download(ctx, ref); err != nil {
			return nil, err
		}
	}
	f, err := s.store.Open(ref.Digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", ref.Digest, err)
	}
	info, _, err := torrentmeta.Build(ref.Digest, f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("build torrent for %s: %w", ref.Digest, err)
	}
	if err := s.ensureSeeding(ref.Digest, info); err != nil {
		return nil, err
	}
	if s.cfg.Shared != nil {
		if err := s.cfg.Shared.Put(ctx, ref.Digest, info); err != nil {
			return nil, fmt.Errorf("publish info bytes of %s: %w", ref.Digest, err)
		}
	}
	return info, nil
}

func (s *Seeder) download(ctx context.Context, ref oci.Blob) error {
	body, _, err := s.upstream.GetBlob(ctx, ref.Registry, ref.Repo, ref.Digest)
	if err != nil {
		return err
	}
	defer body.Close()
	p, err := s.store.NewPartial(ref.Digest)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := io.Copy(p, body); err != nil {
		p.Abort()
		return fmt.Errorf("fetch %s from %s: %w", ref.Digest, ref.Registry, err)
	}
	return p.Commit()
}
