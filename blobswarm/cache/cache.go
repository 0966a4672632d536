// Package cache bounds the disk a node's blobs take: it accounts every
// stored blob, remembers when each was last used, and when the total
// passes the high watermark evicts the least recently used whole blobs
// until it is under the low one. A blob in use (being served or seeded
// from) is never chosen.
package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Config bounds a cache. The zero value has no quota: nothing is evicted.
type Config struct {
	// Quota is the most bytes the blobs may take; 0 is unlimited.
	Quota int64
	// High and Low are watermarks in percent of Quota: eviction starts
	// above High and goes down to Low (defaults 95 and 85).
	High, Low int
}

func (c Config) withDefaults() Config {
	if c.High == 0 {
		c.High = 95
	}
	if c.Low == 0 {
		c.Low = 85
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Quota < 0:
		return errors.New("quota must not be negative")
	case c.Low <= 0 || c.High > 100 || c.Low >= c.High:
		return errors.New("watermarks must satisfy 0 < low < high <= 100 (percent of the quota)")
	}
	return nil
}

// Cache is the accounting of one store.
type Cache struct {
	cfg       Config
	high, low int64
	wake      chan struct{}

	// mu guards everything below.
	mu        sync.Mutex
	items     map[digest.Digest]*item
	total     int64
	evictions int64
	evicted   int64 // bytes
}

type item struct {
	size int64
	used time.Time
	pins int
}

// New returns an empty cache; Add what the store already holds.
func New(cfg Config) *Cache {
	cfg = cfg.withDefaults()
	return &Cache{
		cfg:   cfg,
		high:  cfg.Quota * int64(cfg.High) / 100,
		low:   cfg.Quota * int64(cfg.Low) / 100,
		wake:  make(chan struct{}, 1),
		items: map[digest.Digest]*item{},
	}
}

// Add accounts a blob that entered the store, last used at used.
func (c *Cache) Add(d digest.Digest, size int64, used time.Time) {
	c.mu.Lock()
	if it, ok := c.items[d]; ok {
		c.total -= it.size
		it.size, it.used = size, used
	} else {
		c.items[d] = &item{size: size, used: used}
	}
	c.total += size
	over := c.cfg.Quota > 0 && c.total > c.high
	c.mu.Unlock()
	if over {
		c.signal()
	}
}

// Use marks a blob as used now and keeps it from eviction until release
// is called. Using a blob the cache does not hold is harmless.
func (c *Cache) Use(d digest.Digest) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[d]
	if !ok {
		return func() {}
	}
	it.used = time.Now()
	it.pins++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			it.pins--
			c.mu.Unlock()
		})
	}
}

// Remove forgets a blob that left the store by other means.
func (c *Cache) Remove(d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[d]; ok {
		c.total -= it.size
		delete(c.items, d)
	}
}

// Squeeze frees n bytes now, whatever the quota: the disk ran out of
// space. The least recently used blobs not in use go first; if evicting
// every one of them would not free n bytes, nothing is evicted, since the
// blob that did not fit would not fit anyway.
func (c *Cache) Squeeze(ctx context.Context, n int64, evict func(digest.Digest) error) error {
	c.mu.Lock()
	var evictable int64
	for _, it := range c.items {
		if it.pins == 0 {
			evictable += it.size
		}
	}
	target := c.total - n
	c.mu.Unlock()
	if evictable < n {
		return fmt.Errorf("cannot free %d bytes: only %d bytes of blobs can be evicted", n, evictable)
	}
	return c.evictTo(ctx, target, evict)
}

// Run evicts whenever the total passes the high watermark, until ctx
// ends. evict removes a blob from wherever it is served and stored; a
// failure keeps it accounted and is retried at the next pass.
func (c *Cache) Run(ctx context.Context, evict func(digest.Digest) error) {
	if c.cfg.Quota == 0 {
		return
	}
	c.signal() // the store may have opened over quota
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			c.mu.Lock()
			over := c.total > c.high
			c.mu.Unlock()
			if over {
				// Errors are the evict callback's to report.
				_ = c.evictTo(ctx, c.low, evict)
			}
		}
	}
}

func (c *Cache) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// evictTo evicts until the total is at most target or nothing evictable
// is left.
func (c *Cache) evictTo(ctx context.Context, target int64, evict func(digest.Digest) error) error {
	c.mu.Lock()
	vs := victims(c.items, c.total, target)
	c.mu.Unlock()
	var errs []error
	for _, d := range vs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.mu.Lock()
		it, ok := c.items[d]
		inUse := ok && it.pins > 0
		c.mu.Unlock()
		if !ok || inUse {
			continue // removed, or picked up by a reader since
		}
		if err := evict(d); err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		if it, ok := c.items[d]; ok {
			c.total -= it.size
			c.evictions++
			c.evicted += it.size
			delete(c.items, d)
		}
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// victims picks blobs not in use, least recently used first, until
// dropping them brings total to target.
func victims(items map[digest.Digest]*item, total, target int64) []digest.Digest {
	type cand struct {
		d    digest.Digest
		size int64
		used time.Time
	}
	var cs []cand
	for d, it := range items {
		if it.pins == 0 {
			cs = append(cs, cand{d, it.size, it.used})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		return cmp.Or(a.used.Compare(b.used), cmp.Compare(a.d, b.d))
	})
	var out []digest.Digest
	for _, c := range cs {
		if total <= target {
			break
		}
		out = append(out, c.d)
		total -= c.size
	}
	return out
}

// Stats is a snapshot for metrics and status.
type Stats struct {
	Bytes, Quota            int64
	Blobs                   int
	Evictions, EvictedBytes int64
}

// Stats reports the cache's current state.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Bytes: c.total, Quota: c.cfg.Quota, Blobs: len(c.items), Evictions: c.evictions, EvictedBytes: c.evicted}
}
