// Package infobytes keeps, beside the blob store, what a restarted node
// needs to seed its stored blobs again without asking the tracker or
// hashing them anew: the torrent info dictionary of each seeded blob, and,
// on the tracker, the SHA-1 of each of its pieces (its torrents are a
// function of digest and size, the hashes are what it learned from the
// bytes).
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

// ErrNotFound is returned by Get for a blob nothing was saved for.
var ErrNotFound = errors.New("never saved")

// Dir holds one file per blob under <store root>/<kind>/<alg>/<hex>,
// mirroring the store's blob layout.
type Dir struct {
	root string
	what string // what the files hold, for messages
}

// New returns the info-bytes directory of store st. Every node keeps them
// there, so whoever seeds from a store finds what was seeded from it
// before, whichever component it was.
func New(st *store.Store) Dir {
	return Dir{root: filepath.Join(st.Root(), "torrents"), what: "info bytes"}
}

// NewPieceHashes returns the directory of store st that holds the piece
// hashes of each blob (20 bytes per piece, in order), as the tracker's
// seeder computed them from the origin's bytes.
func NewPieceHashes(st *store.Store) Dir {
	return Dir{root: filepath.Join(st.Root(), "pieces"), what: "piece hashes"}
}

func (d Dir) path(dg digest.Digest) string {
	return filepath.Join(d.root, dg.Algorithm().String(), dg.Encoded())
}

// Get returns what was saved for blob dg.
func (d Dir) Get(dg digest.Digest) ([]byte, error) {
	if err := dg.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(dg))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s of %s: %w", d.what, dg, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", d.what, dg, err)
	}
	return b, nil
}

// Put saves b for blob dg; a crash leaves the old file or the new one,
// never a torn one.
func (d Dir) Put(dg digest.Digest, b []byte) error {
	path := d.path(dg)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s directory: %w", d.what, err)
	}
	if err := durable.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("save %s of %s: %w", d.what, dg, err)
	}
	return nil
}

// Delete forgets what was saved for blob dg; deleting what is not there
// is not an error.
func (d Dir) Delete(dg digest.Digest) error {
	if err := os.Remove(d.path(dg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s of %s: %w", d.what, dg, err)
	}
	return nil
}
