package mirror

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/store"
)

// openCache accounts what the store holds and the room blobs arriving
// hold (cache.Open), and starts evicting past the quota.
func (m *Mirror) openCache(ctx context.Context, cfg cache.Config) error {
	var err error
	if m.cache, err = cache.Open(cfg, m.store); err != nil {
		return err
	}
	m.metrics.registry.MustRegister(cache.NewCollector(m.cache, "blobswarm_mirror"))
	go m.cache.Run(ctx, m.evict)
	return nil
}

// evict removes a blob from the swarm first, which tells the tracker the
// node no longer has it, then from disk. A client still reading it keeps
// its open file.
func (m *Mirror) evict(d digest.Digest) error {
	if m.swarm != nil {
		m.swarm.Drop(d)
	}
	if err := m.store.Delete(d); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Warn("evict", "digest", d, "err", err)
		return err
	}
	m.log.Info("evicted blob", "digest", d)
	return nil
}

// stored accounts a fetch that ended on a disk that ran out of room,
// which makes room for the next try at once. (A blob stored is accounted
// by the store's commit, cache.Open.)
func (m *Mirror) stored(err error) {
	var full *store.NoSpaceError
	if !errors.As(err, &full) {
		return
	}
	// Free what the blob lacked, plus a margin for the metadata that goes
	// with it.
	avail, aerr := cache.Available(m.cfg.Data)
	if aerr != nil {
		m.log.Warn("disk full", "err", aerr)
		return
	}
	need := full.Size - avail + 1<<20
	m.log.Error("disk full: evicting least recently used blobs", "need", need, "err", err)
	if err := m.cache.Squeeze(context.Background(), need, m.evict); err != nil {
		m.log.Warn("disk full and no room can be made", "err", err)
	}
}
