package mirror

import (
	"context"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// Fetch brings ref into the store through the one fetch of it that client
// requests also share: it starts that fetch, or joins the one in progress,
// and returns once the blob is committed (its digest checked). fetched is
// false when the blob was in the store already; such a blob counts as just
// used, since whoever asks for it ahead of a pull is about to need it.
//
// size is what the manifest that names the blob gives it (-1: none is
// known); a source that claims another size is refused.
//
// progress hears how many bytes from the start of the blob have been
// verified: 0 once the fetch is joined, then each time the count grows.
// When ctx ends Fetch returns, and the fetch goes on without the caller.
func (m *Mirror) Fetch(ctx context.Context, ref oci.Blob, size int64, progress func(verified int64)) (fetched bool, err error) {
	if _, err := m.store.Stat(ref.Digest); err == nil {
		m.cache.Use(ref.Digest)()
		return false, nil
	}
	fl, _, err := m.flight(ref, ask{size: size})
	if err != nil {
		return false, err
	}
	if fl == nil {
		// Committed since the Stat, and so used just now.
		return false, nil
	}
	defer fl.Release()
	progress(0)
	total, err := fl.Size(ctx)
	if err != nil {
		return false, err
	}
	for n := int64(0); n < total; {
		if n, err = fl.Progress(ctx, n); err != nil {
			return false, err
		}
		progress(n)
	}
	if err := fl.Wait(ctx); err != nil {
		return false, err
	}
	return true, nil
}
