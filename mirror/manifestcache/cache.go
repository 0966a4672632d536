// Package manifestcache keeps the manifests a mirror has served: by digest
// forever (they are immutable), and the last digest seen for each tag, so a
// tag can still be answered while its upstream is down.
package manifestcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/durable"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// ErrNotFound is returned for a manifest or tag the cache does not hold.
var ErrNotFound = errors.New("manifest not cached")

// Manifest is the exact bytes an upstream returned and their media type.
type Manifest struct {
	MediaType string
	Digest    digest.Digest
	Data      []byte
}

// Cache stores manifests under a root directory.
type Cache struct {
	root string
}

// Open creates the cache layout under root.
func Open(root string) (*Cache, error) {
	for _, d := range []string{"by-digest", "tags", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("create manifest cache: %w", err)
		}
	}
	return &Cache{root: root}, nil
}

type record struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Data      []byte        `json:"data,omitempty"`
}

func (c *Cache) digestPath(d digest.Digest) string {
	return filepath.Join(c.root, "by-digest", d.Algorithm().String(), d.Encoded())
}

// tagPath relies on registry, repo and tag having been validated against
// the reference grammar, which has no "..", so it stays under root.
func (c *Cache) tagPath(registry, repo, tag string) string {
	return filepath.Join(c.root, "tags", registry, repo, "_tags", tag)
}

// Get returns the manifest with digest d.
func (c *Cache) Get(d digest.Digest) (oci.Manifest, error) {
	var r record
	if err := c.read(c.digestPath(d), &r); err != nil {
		return oci.Manifest{}, err
	}
	if digest.FromBytes(r.Data) != d {
		// A torn or tampered file is a miss, never an answer.
		os.Remove(c.digestPath(d))
		return oci.Manifest{}, ErrNotFound
	}
	return oci.Manifest{MediaType: r.MediaType, Digest: d, Data: r.Data}, nil
}

// Put stores m by its digest, which it must match.
func (c *Cache) Put(m oci.Manifest) error {
	if digest.FromBytes(m.Data) != m.Digest {
		return fmt.Errorf("manifest does not match digest %s", m.Digest)
	}
	return c.write(c.digestPath(m.Digest), record{MediaType: m.MediaType, Digest: m.Digest, Data: m.Data})
}

// Tag returns the digest last seen for a tag and its media type.
func (c *Cache) Tag(registry, repo, tag string) (digest.Digest, string, error) {
	var r record
	if err := c.read(c.tagPath(registry, repo, tag), &r); err != nil {
		return "", "", err
	}
	return r.Digest, r.MediaType, nil
}

// SetTag records the digest a tag resolved to.
func (c *Cache) SetTag(registry, repo, tag string, d digest.Digest, mediaType string) error {
	return c.write(c.tagPath(registry, repo, tag), record{MediaType: mediaType, Digest: d})
}

func (c *Cache) read(path string, r *record) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read manifest cache: %w", err)
	}
	if err := json.Unmarshal(b, r); err != nil {
		return ErrNotFound
	}
	return nil
}

// write replaces path atomically, so a crash leaves the old record or the
// new one, never half of either.
func (c *Cache) write(path string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode manifest record: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create manifest cache directory: %w", err)
	}
	// Temporary files stay in tmp/, where nothing reads, and not beside
	// the records.
	if err := durable.WriteFile(path, b, 0o600, renameio.WithTempDir(filepath.Join(c.root, "tmp"))); err != nil {
		return fmt.Errorf("write manifest cache: %w", err)
	}
	return nil
}
