// Package seeder is the tracker's origin seeder: the one place that fetches
// a blob from the origin registry, so a fleet costs the origin one copy of
// each layer.
//
// It streams. A blob's torrent (torrentmeta.ForBlob) is a function of its
// digest and size, so the seeder hands it out as soon as the origin's
// answer says the size; each piece is seeded, and its SHA-1 handed to
// mirrors, as soon as its bytes have arrived; the whole blob is checked
// against its digest and stored at the end. A pull through the swarm then
// takes about as long as the slower of the origin's link and the fleet's,
// not their sum.
package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/infobytes"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/internal/turns"
)

// ErrPending means the origin has not said how big the blob is yet; ask
// again.
var ErrPending = errors.New("blob is being fetched from the origin")

// ErrBusy means as many blobs as Config.OriginQueue lets wait are waiting
// for an origin fetch: the seeder starts nothing for this one, and the
// asker had better fetch it from the origin itself.
var ErrBusy = errors.New("tracker busy: its seeder has as many blobs waiting for the origin as origin-queue lets wait")

// SharedInfo is a digest-to-torrent map shared by tracker replicas
// (Redis), so one replica can answer for a blob another one seeded: its
// info bytes and the hashes of its pieces (20 bytes each, in order).
type SharedInfo interface {
	Get(ctx context.Context, d digest.Digest) (info, sums []byte, err error)
	Put(ctx context.Context, d digest.Digest, info, sums []byte) error
	// Delete forgets blob d, evicted here: a replica that holds it
	// itself still answers for it, one that does not fetches it again.
	Delete(ctx context.Context, d digest.Digest) error
}

// Seeds is what serves blobs to the swarm (superseed.Server).
type Seeds interface {
	// Seed serves stored blob d under the torrent of infoBytes; seeding
	// it again is a no-op.
	Seed(d digest.Digest, infoBytes []byte) error
	// SeedGrowing serves blob d under the torrent of infoBytes while its
	// bytes arrive in r.
	SeedGrowing(d digest.Digest, infoBytes []byte, r io.ReaderAt) (Growing, error)
	// Drop stops serving blob d: it leaves the store.
	Drop(d digest.Digest)
}

// Growing is a blob seeded while it arrives (superseed.Growing).
type Growing interface {
	// Have says piece i is whole in the reader.
	Have(i int)
	// Stored moves the blob to the store's file.
	Stored() error
	// Drop ends the torrent; the reader is not read again.
	Drop()
}

// Config tunes a Seeder.
type Config struct {
	// FailureTTL is how long an origin failure is repeated to askers
	// before the next ask tries the origin again.
	FailureTTL time.Duration
	// FetchTimeout bounds one origin fetch, body included.
	FetchTimeout time.Duration
	// OriginFetches is how many blobs are fetched from one origin
	// registry at once, each an open connection and a partial file, from
	// their answer's headers to their last byte; 0 is no limit.
	OriginFetches int
	// OriginQueue is how many blobs may wait for an origin fetch, of all
	// registries; past it the seeder is busy (ErrBusy). 0 is no limit.
	OriginQueue int
	// OriginReads is how many of the fetches from one origin registry read
	// their body at once (see readqueue.go); default 2.
	OriginReads int
	// Shared, when set, publishes torrents to other replicas.
	Shared SharedInfo
}

// Seeder fetches and seeds blobs for the tracker.
type Seeder struct {
	cfg      Config
	store    *store.Store
	hashes   infobytes.Dir // piece hashes of stored blobs, for restarts
	seeds    Seeds
	upstream *upstream.Client
	fetches  *turns.Queue // origin fetches, per registry
	reads    *turns.Queue // body reads of the fetches, per registry
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
	// seeded has the torrent of every blob this replica seeds, set once a
	// fetch has also published it: every metainfo and pieces request
	// asks, so the answer must not wait on the disk.
	seeded map[digest.Digest]known
}

// known is the torrent of a blob whose every piece hash is known.
type known struct {
	info []byte
	sums []byte // 20 bytes per piece
}

// New returns a seeder that keeps blobs in st and serves them with seeds.
func New(cfg Config, st *store.Store, seeds Seeds, up *upstream.Client, log *slog.Logger) *Seeder {
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = 5 * time.Second
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 30 * time.Minute
	}
	if cfg.OriginReads <= 0 {
		cfg.OriginReads = 2
	}
	return &Seeder{cfg: cfg, store: st, hashes: infobytes.NewPieceHashes(st), seeds: seeds, upstream: up,
		fetches: turns.New(cfg.OriginFetches), reads: turns.New(cfg.OriginReads), log: log,
		inflight: map[digest.Digest]*job{}, failed: map[oci.Blob]*job{}, seeded: map[digest.Digest]known{}}
}

// Metainfo returns the blob's info bytes. A blob the seeder does not hold
// yet is fetched from the origin in the background, once however many
// ask; Metainfo returns as soon as the origin has said how big the blob
// is, and ErrPending if it has not within wait.
func (s *Seeder) Metainfo(ctx context.Context, ref oci.Blob, wait time.Duration) ([]byte, error) {
	if k, err := s.known(ctx, ref.Digest); err == nil {
		return k.info, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	j, err := s.started(ctx, ref, timer.C)
	if err != nil {
		return nil, err
	}
	info, _ := j.torrent()
	return info, nil
}

// Hashes follows the piece hashes of the blob's torrent. Like Metainfo it
// starts the fetch of a blob the seeder does not hold; it waits, as long
// as ctx lets it, for the origin to say how big the blob is.
func (s *Seeder) Hashes(ctx context.Context, ref oci.Blob) (*Hashes, error) {
	if k, err := s.known(ctx, ref.Digest); err == nil {
		return &Hashes{n: len(k.sums) / sumSize, sums: k.sums}, nil
	}
	j, err := s.started(ctx, ref, nil)
	if err != nil {
		return nil, err
	}
	_, n := j.torrent()
	return &Hashes{n: n, j: j}, nil
}

// started returns the fetch of ref's blob once it has the blob's torrent,
// ref's recent failure, or ErrPending when timeout fires first.
func (s *Seeder) started(ctx context.Context, ref oci.Blob, timeout <-chan time.Time) (*job, error) {
	j, err := s.job(ref)
	if err != nil {
		return nil, err
	}
	for {
		info, err, changed := j.state()
		switch {
		case err != nil && j.ref == ref:
			return nil, err
		case err != nil:
			// The fetch for another repository failed; this one may
			// still have the blob.
			if j, err = s.job(ref); err != nil {
				return nil, err
			}
			continue
		case info != nil:
			return j, nil
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, ErrPending
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// sumSize is the size of one piece hash.
const sumSize = 20

// Hashes is the piece hashes of one blob's torrent, known or arriving.
type Hashes struct {
	n    int
	sums []byte // every piece's, for a blob the seeder holds
	j    *job   // or the fetch learning them
}

// Pieces is the torrent's piece count.
func (h *Hashes) Pieces() int { return h.n }

// Next waits until the hash of piece from is known and returns the hashes
// of pieces from, from+1, ... known by then, 20 bytes each. Once the fetch
// failed it returns the fetch's error, even for hashes it had: they may be
// of bytes that turned out wrong, and a stream of them must break.
func (h *Hashes) Next(ctx context.Context, from int) ([]byte, error) {
	if from < 0 || from >= h.n {
		return nil, fmt.Errorf("piece %d of a torrent of %d pieces", from, h.n)
	}
	if h.j == nil {
		return h.sums[from*sumSize:], nil
	}
	return h.j.hashesFrom(ctx, from)
}

// known returns the torrent of a blob this replica seeds, seeded before a
// restart, or another replica published. A blob already seeded costs a map
// lookup.
func (s *Seeder) known(ctx context.Context, d digest.Digest) (known, error) {
	s.mu.Lock()
	k, ok := s.seeded[d]
	_, fetching := s.inflight[d]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	// A fetch in progress has its blob on disk before it has published it
	// to the other replicas: answering from the disk then would send a
	// mirror to another replica that does not know the blob yet, and that
	// replica to the origin again.
	if !fetching {
		if size, err := s.store.Stat(d); err == nil {
			return s.seedStored(d, size)
		}
	}
	if s.cfg.Shared == nil {
		return known{}, infobytes.ErrNotFound
	}
	info, sums, err := s.cfg.Shared.Get(ctx, d)
	if err != nil {
		return known{}, err
	}
	mi, err := torrentmeta.Parse(info, d)
	if err == nil {
		err = fits(mi, sums)
	}
	if err != nil {
		return known{}, fmt.Errorf("torrent of %s from another replica: %w", d, err)
	}
	return known{info: info, sums: sums}, nil
}

// seedStored seeds a blob stored before a restart with its saved piece
// hashes, so the next ask is a map lookup. Without them it is not known,
// and a fetch reads them from the stored blob.
func (s *Seeder) seedStored(d digest.Digest, size int64) (known, error) {
	info, mi, err := forBlob(d, size)
	if err != nil {
		return known{}, err
	}
	sums, err := s.hashes.Get(d)
	if err != nil {
		return known{}, err
	}
	if err := fits(mi, sums); err != nil {
		return known{}, fmt.Errorf("saved piece hashes of %s: %w", d, err)
	}
	if err := s.seeds.Seed(d, info); err != nil {
		return known{}, fmt.Errorf("seed %s: %w", d, err)
	}
	k := known{info: info, sums: sums}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Evict removes blobs under the lock: one that went since the Stat
	// above is not seeded.
	if _, err := s.store.Stat(d); err != nil {
		s.seeds.Drop(d)
		return known{}, err
	}
	s.seeded[d] = k
	return k, nil
}

// Evict removes stored blob d, chosen by the cache: the seeder stops
// serving it and forgets its torrent, here and for the other replicas,
// and its piece hashes and its file go. A blob being fetched or hashed
// stays; the cache tries again later.
func (s *Seeder) Evict(d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inflight[d]; ok {
		return fmt.Errorf("evict %s: it is being fetched", d)
	}
	delete(s.seeded, d)
	s.seeds.Drop(d)
	var errs []error
	if s.cfg.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Shared.Delete(ctx, d); err != nil {
			// Another replica may answer with the torrent of a blob it
			// does not hold; mirrors then take it from the origin.
			errs = append(errs, fmt.Errorf("forget the torrent of %s for the other replicas: %w", d, err))
		}
	}
	if err := s.hashes.Delete(d); err != nil {
		errs = append(errs, err)
	}
	// Last: a blob still in the store is still accounted by the cache.
	if err := s.store.Delete(d); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(errs) > 0 {
		s.log.Warn("evicted blob", "digest", d, "err", errors.Join(errs...))
	}
	return nil
}

// fits checks that sums are as many piece hashes as the torrent has
// pieces.
func fits(mi metainfo.Info, sums []byte) error {
	if len(sums) != mi.NumPieces()*sumSize {
		return fmt.Errorf("%d bytes of piece hashes for %d pieces", len(sums), mi.NumPieces())
	}
	return nil
}

// job returns ref's recent failure, the fetch of its blob in progress, or
// a new fetch; ErrBusy when the queue for origin fetches is full.
func (s *Seeder) job(ref oci.Blob) (*job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.failed[ref]; ok && time.Since(j.finished) < s.cfg.FailureTTL {
		return j, nil
	}
	if j, ok := s.inflight[ref.Digest]; ok {
		return j, nil
	}
	// Under the lock, like every start of a fetch, so the queue is never
	// longer than its cap.
	if s.cfg.OriginQueue > 0 && s.fetches.Waiting() >= s.cfg.OriginQueue {
		return nil, ErrBusy
	}
	j := newJob(ref)
	s.inflight[ref.Digest] = j
	// The turns to fetch and to read from the origin are taken here,
	// under the lock, so they follow the order blobs were asked for.
	go s.run(j, places{fetch: s.fetches.Enqueue(ref.Registry), read: s.reads.Enqueue(ref.Registry)})
	return j, nil
}

// places are a fetch's places in the lines for fetching from its origin
// registry and for reading the body.
type places struct{ fetch, read *turns.Ticket }

// leave gives both places up.
func (t places) leave() {
	t.fetch.Leave()
	t.read.Leave()
}

func (s *Seeder) run(j *job, pl places) {
	ref, start := j.ref, time.Now()
	k, err := s.fetch(j, pl)
	s.mu.Lock()
	j.finished = time.Now()
	delete(s.inflight, ref.Digest)
	delete(s.failed, ref)
	if err != nil {
		s.forgetOldFailuresLocked()
		s.failed[ref] = j
	} else {
		s.seeded[ref.Digest] = k
	}
	s.mu.Unlock()
	// After the maps: whoever wakes finds the blob seeded or failed.
	j.finish(err)
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
