// Package infobytes keeps the torrent info dictionary of each seeded blob
// beside the blob store, so a restarted node seeds its stored blobs again
// without asking the tracker or hashing them anew.
package infobytes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/internal/durable"
)

// ErrNotFound is returned by Get for a blob that was never seeded.
var ErrNotFound = errors.New("no info bytes for blob")

// Dir holds info bytes under <store root>/torrents/<alg>/<hex>, mirroring
// the store's blob layout.
type Dir struct{ root string }

// New returns the info-bytes directory of store st. Every node keeps them
// there, so whoever seeds from a store finds what was seeded from it
// before, whichever component it was.
func New(st *store.Store) Dir { return Dir{root: filepath.Join(st.Root(), "torrents")} }

func (d Dir) path(dg digest.Digest) string {
	return filepath.Join(d.root, dg.Algorithm().String(), dg.Encoded())
}

// Get returns the info bytes saved for blob dg.
func (d Dir) Get(dg digest.Digest) ([]byte, error) {
	if err := dg.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(dg))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s", ErrNotFound, dg)
	}
	if err != nil {
		return nil, fmt.Errorf("read info bytes of %s: %w", dg, err)
	}
	return b, nil
}

// Put saves b as blob dg's info bytes; a crash leaves the old file or the
// new one, never a torn one.
func (d Dir) Put(dg digest.Digest, b []byte) error {
	path := d.path(dg)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create info bytes directory: %w", err)
	}
	if err := durable.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("save info bytes of %s: %w", dg, err)
	}
	return nil
}

// Delete forgets blob dg's info bytes; deleting what is not there is not
// an error.
func (d Dir) Delete(dg digest.Digest) error {
	if err := os.Remove(d.path(dg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete info bytes of %s: %w", dg, err)
	}
	return nil
}
