// Package cache bounds the disk a node's blobs take: it accounts every
// stored blob, and the room held for every blob still arriving, remembers
// when each was last used, and when the total passes the high watermark
// evicts the least recently used whole blobs until it is under the low
// one. A blob in use (being served or seeded from) is never chosen, and
// nothing is evicted for a blob that could not fit anyway.
package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
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
	total     int64 // bytes of the items
	reserved  int64 // bytes held for blobs arriving (Reserve)
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

// Open accounts what st holds, each blob last used as of its file's
// modification time, and makes every partial of st reserve its size here
// (store.Quota). Run starts the eviction.
func Open(cfg Config, st *store.Store) (*Cache, error) {
	c := New(cfg)
	err := st.Walk(func(d digest.Digest, size int64) error {
		used := time.Now()
		if fi, err := os.Stat(st.Path(d)); err == nil {
			used = fi.ModTime()
		}
		c.Add(d, size, used)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("account the cache: %w", err)
	}
	st.Account(c)
	return c, nil
}

// Add accounts a blob that entered the store, last used at used.
func (c *Cache) Add(d digest.Digest, size int64, used time.Time) {
	c.mu.Lock()
	c.addLocked(d, size, used)
	over := c.overLocked()
	c.mu.Unlock()
	if over {
		c.signal()
	}
}

func (c *Cache) addLocked(d digest.Digest, size int64, used time.Time) {
	if it, ok := c.items[d]; ok {
		c.total -= it.size
		it.size, it.used = size, used
	} else {
		c.items[d] = &item{size: size, used: used}
	}
	c.total += size
}

// overLocked reports whether blobs and reservations together are past the
// high watermark.
func (c *Cache) overLocked() bool {
	return c.cfg.Quota > 0 && c.total+c.reserved > c.high
}

// QuotaError refuses room for a blob: larger than the quota, or larger
// than what the quota has left beside the blobs arriving and those in
// use, which cannot be evicted. Nothing was evicted for it.
type QuotaError struct {
	Digest digest.Digest
	Size   int64
	Quota  int64
	// Held is what blobs arriving and blobs in use hold of the quota.
	Held int64
}

func (e *QuotaError) Error() string {
	if e.Size > e.Quota {
		return fmt.Sprintf("blob %s is %d bytes, over the cache quota of %d bytes: not stored", e.Digest, e.Size, e.Quota)
	}
	return fmt.Sprintf("blob %s (%d bytes) does not fit the cache quota of %d bytes beside the %d bytes of blobs arriving and in use: not stored", e.Digest, e.Size, e.Quota, e.Held)
}

// Reserve holds size bytes of the quota for blob d while it arrives
// (store.Quota): they count as a stored blob's do, and past the high
// watermark the least recently used blobs are evicted to make room. A
// blob that would not fit even if every blob not in use went is refused
// with a *QuotaError, and nothing is evicted for it.
func (c *Cache) Reserve(d digest.Digest, size int64) (store.Reservation, error) {
	c.mu.Lock()
	if q := c.cfg.Quota; q > 0 {
		held := c.reserved
		for _, it := range c.items {
			if it.pins > 0 {
				held += it.size
			}
		}
		if held+size > q {
			c.mu.Unlock()
			return nil, &QuotaError{Digest: d, Size: size, Quota: q, Held: held}
		}
	}
	c.reserved += size
	over := c.overLocked()
	c.mu.Unlock()
	if over {
		c.signal()
	}
	return &reservation{c: c, d: d, size: size}, nil
}

// reservation is room Reserve holds for one blob.
type reservation struct {
	c    *Cache
	d    digest.Digest
	size int64
	once sync.Once
}

// Stored turns the room into the stored blob's, used now, in one step:
// the bytes are never counted twice, nor not at all.
func (r *reservation) Stored() { r.settle(true) }

// Release gives the room back.
func (r *reservation) Release() { r.settle(false) }

// settle ends the reservation once, whichever way comes first.
func (r *reservation) settle(stored bool) {
	r.once.Do(func() {
		c := r.c
		c.mu.Lock()
		defer c.mu.Unlock()
		c.reserved -= r.size
		if stored {
			c.addLocked(r.d, r.size, time.Now())
		}
	})
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
	target := c.total + c.reserved - n
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
			over := c.overLocked()
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
	vs := victims(c.items, c.total+c.reserved, target)
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
	// Bytes are the stored blobs'; Reserved is held for blobs arriving.
	Bytes, Reserved, Quota  int64
	Blobs                   int
	Evictions, EvictedBytes int64
}

// Stats reports the cache's current state.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Bytes: c.total, Reserved: c.reserved, Quota: c.cfg.Quota, Blobs: len(c.items), Evictions: c.evictions, EvictedBytes: c.evicted}
}
