// Package tags coalesces tag resolution for a fleet: when a thousand hosts
// resolve app:latest within the same seconds, the origin is asked once and
// every host gets the same answer.
package tags

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/blobswarm/blobswarm/internal/coalesce"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// Resolver answers tag lookups from a short-lived cache.
type Resolver struct {
	up  *upstream.Client
	ttl time.Duration
	now func() time.Time

	group coalesce.Group[oci.Manifest]
	mu    sync.Mutex
	cache map[string]entry
}

type entry struct {
	m       oci.Manifest
	expires time.Time
}

// New returns a resolver that keeps answers for ttl. A short ttl (seconds)
// keeps tags fresh while still folding a rollout's burst into one request.
func New(up *upstream.Client, ttl time.Duration) *Resolver {
	return &Resolver{up: up, ttl: ttl, now: time.Now, cache: map[string]entry{}}
}

// Resolve returns the manifest registry/repo:tag names for a client that
// accepts the given media types.
func (r *Resolver) Resolve(ctx context.Context, registry, repo, tag string, accept []string) (oci.Manifest, error) {
	key := strings.Join([]string{registry, repo, tag, strings.Join(accept, ",")}, "\x00")
	r.mu.Lock()
	e, ok := r.cache[key]
	r.mu.Unlock()
	if ok && r.now().Before(e.expires) {
		return e.m, nil
	}
	return r.group.Do(ctx, key, func(ctx context.Context) (oci.Manifest, error) {
		data, mediaType, err := r.up.GetManifest(ctx, registry, repo, tag, accept)
		if err != nil {
			return oci.Manifest{}, err
		}
		m := oci.NewManifest(mediaType, data)
		r.mu.Lock()
		r.cache[key] = entry{m: m, expires: r.now().Add(r.ttl)}
		r.sweepLocked()
		r.mu.Unlock()
		return m, nil
	})
}

// sweepLocked drops expired answers so the cache stays as small as the set
// of tags resolved within one ttl.
func (r *Resolver) sweepLocked() {
	now := r.now()
	for k, e := range r.cache {
		if now.After(e.expires) {
			delete(r.cache, k)
		}
	}
}
