// Package tags coalesces tag resolution for a fleet: when a thousand hosts
// resolve app:latest within the same seconds, the origin is asked once and
// every host gets the same answer.
package tags

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// Manifest is a tag's resolution: the exact manifest bytes and their type.
type Manifest struct {
	MediaType string
	Digest    digest.Digest
	Data      []byte
}

// Resolver answers tag lookups from a short-lived cache.
type Resolver struct {
	up  *upstream.Client
	ttl time.Duration
	now func() time.Time

	group singleflight.Group
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
	ch := r.group.DoChan(key, func() (any, error) {
		// The shared request outlives an asker who leaves, since others
		// wait on it, but keeps the first asker's deadline: a stalled
		// origin must not hold the tag, and everyone queued on it, forever.
		dctx := context.WithoutCancel(ctx)
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			dctx, cancel = context.WithDeadline(dctx, deadline)
			defer cancel()
		}
		data, mediaType, err := r.up.GetManifest(dctx, registry, repo, tag, accept)
		if err != nil {
			return oci.Manifest{}, err
		}
		m := oci.Manifest{MediaType: mediaType, Digest: digest.FromBytes(data), Data: data}
		r.mu.Lock()
		r.cache[key] = entry{m: m, expires: r.now().Add(r.ttl)}
		r.sweepLocked()
		r.mu.Unlock()
		return m, nil
	})
	select {
	case res := <-ch:
		return res.Val.(oci.Manifest), res.Err
	case <-ctx.Done():
		return oci.Manifest{}, ctx.Err()
	}
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
