package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
)

// fetch streams the blob from the origin into the store, seeding it and
// learning its piece hashes on the way, or, for a blob stored before its
// hashes were saved, reads them from the store. Then it saves the hashes,
// publishes the torrent, and hands out the last piece's hash.
func (s *Seeder) fetch(j *job, pl places) (known, error) {
	defer pl.leave()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FetchTimeout)
	defer cancel()
	d := j.ref.Digest
	var k known
	size, err := s.store.Stat(d)
	switch {
	case err == nil:
		pl.leave()
		k, err = s.rehash(j, size)
	case errors.Is(err, store.ErrNotFound):
		k, err = s.download(ctx, j, pl)
		pl.leave()
	}
	if err != nil {
		return known{}, err
	}
	if err := s.hashes.Put(d, k.sums); err != nil {
		// The blob is stored and seeded; only a restart misses the
		// hashes, and reads the blob again for them.
		s.log.Warn("piece hashes not saved", "digest", d, "err", err)
	}
	if s.cfg.Shared != nil {
		if err := s.cfg.Shared.Put(ctx, d, k.info, k.sums); err != nil {
			// The blob is stored and seeded here, and its hash streams
			// must not break over it (Redis failing over, say): only the
			// other replicas miss the torrent, and one asked for the blob
			// fetches it from the origin itself.
			s.log.Warn("torrent not published to the other replicas", "digest", d, "err", err)
		}
	}
	j.release()
	return k, nil
}

// download streams the blob from the origin. The torrent is handed out as
// soon as the origin's headers give the size; each piece is seeded and its
// hash recorded as soon as its bytes are in the partial file; bytes that
// fail the digest are never stored, and their torrent is dropped.
func (s *Seeder) download(ctx context.Context, j *job, pl places) (known, error) {
	ref := j.ref
	// Nothing is opened before the fetch's turn: a blob waiting for it
	// holds neither a connection nor a file.
	if err := pl.fetch.Wait(ctx); err != nil {
		return known{}, fmt.Errorf("waiting for a turn to fetch %s from %s: %w", ref.Digest, ref.Registry, err)
	}
	body, size, err := s.upstream.GetBlob(ctx, ref.Registry, ref.Repo, ref.Digest)
	if err != nil {
		return known{}, err
	}
	defer body.Close()
	info, mi, err := forBlob(ref.Digest, size)
	if err != nil {
		return known{}, err
	}
	p, err := s.store.NewPartial(ref.Digest)
	if err != nil {
		return known{}, err
	}
	defer p.Close()
	if err := p.Reserve(size); err != nil {
		p.Abort()
		return known{}, err
	}
	g, err := s.seeds.SeedGrowing(ref.Digest, info, p)
	if err != nil {
		p.Abort()
		return known{}, fmt.Errorf("seed %s: %w", ref.Digest, err)
	}
	j.start(info, mi.NumPieces())

	if size <= quickRead {
		pl.read.Leave()
	} else if err := pl.read.Wait(ctx); err != nil {
		g.Drop()
		p.Abort()
		return known{}, fmt.Errorf("waiting for a turn to read %s from %s: %w", ref.Digest, ref.Registry, err)
	}
	hasher := torrentmeta.NewPieceHasher(mi.PieceLength, size, func(i int, sum [sumSize]byte) {
		// The partial has the piece's bytes: the hasher is written to
		// after it.
		j.hashed(i, sum)
		g.Have(i)
	})
	n, err := io.Copy(io.MultiWriter(p, hasher), body)
	pl.read.Leave()
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		g.Drop()
		p.Abort()
		return known{}, fmt.Errorf("fetch %s from %s: %w", ref.Digest, ref.Registry, err)
	}
	if err := p.Commit(); err != nil {
		g.Drop()
		if errors.Is(err, store.ErrDigestMismatch) {
			// A client's error, not ours: the origin's bytes are wrong.
			bad := errcode.ErrorCodeDigestInvalid.WithMessage(fmt.Sprintf("upstream %s sent bytes that do not match %s", ref.Registry, ref.Digest))
			return known{}, fmt.Errorf("%w: %w", bad, err)
		}
		return known{}, err
	}
	if err := g.Stored(); err != nil {
		// Stored and checked, but not seeded: the next ask seeds it from
		// the store.
		g.Drop()
		return known{}, err
	}
	return known{info: info, sums: j.allHashes()}, nil
}

// rehash seeds a stored blob and reads its piece hashes from the store:
// the blob was checked against its digest when it was stored.
func (s *Seeder) rehash(j *job, size int64) (known, error) {
	d := j.ref.Digest
	info, mi, err := forBlob(d, size)
	if err != nil {
		return known{}, err
	}
	if err := s.seeds.Seed(d, info); err != nil {
		return known{}, fmt.Errorf("seed %s: %w", d, err)
	}
	j.start(info, mi.NumPieces())
	f, err := s.store.Open(d)
	if err != nil {
		return known{}, err
	}
	defer f.Close()
	hasher := torrentmeta.NewPieceHasher(mi.PieceLength, size, j.hashed)
	if _, err := io.Copy(hasher, io.NewSectionReader(f, 0, size)); err != nil {
		return known{}, fmt.Errorf("hash the pieces of stored blob %s: %w", d, err)
	}
	if hasher.Pieces() != mi.NumPieces() {
		return known{}, fmt.Errorf("hash the pieces of stored blob %s: %w", d, io.ErrUnexpectedEOF)
	}
	return known{info: info, sums: j.allHashes()}, nil
}

// forBlob is blob d's torrent and its dictionary.
func forBlob(d digest.Digest, size int64) ([]byte, metainfo.Info, error) {
	info, err := torrentmeta.ForBlob(d, size)
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("torrent of %s: %w", d, err)
	}
	mi, err := torrentmeta.Parse(info, d)
	return info, mi, err
}
