// Package store is the content-addressed blob store on a node's disk.
//
// A blob is visible only at blobs/<alg>/<hex> and only after its bytes were
// checked against its digest; everything that is still arriving lives under
// tmp/, which is emptied when the store opens, so a crash never leaves a
// partial file where a reader could take it for a blob.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("blob not in store")

// Store holds verified blobs under a root directory.
type Store struct {
	root  string
	quota Quota
}

// Quota accounts the room blobs take on disk (blobswarm/cache). A
// partial's size is reserved against it before a byte is written, so
// blobs still arriving count as much as stored ones.
type Quota interface {
	// Reserve holds size bytes for blob d, or refuses them: nothing is
	// written for a blob that does not fit.
	Reserve(d digest.Digest, size int64) (Reservation, error)
}

// Reservation is room held for one blob until it is stored or given up.
type Reservation interface {
	// Stored says the blob is in the store: the room is the blob's now.
	Stored()
	// Release gives the room back: nothing was stored.
	Release()
}

// Account makes every partial reserve its size against q. Call it before
// the first partial.
func (s *Store) Account(q Quota) { s.quota = q }

// Open creates the layout under root if needed and discards anything left
// half-written by an earlier process.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("clear partial downloads in %s: %w", s.tmpDir(), err)
	}
	for _, d := range []string{s.tmpDir(), filepath.Join(root, "blobs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create store directory: %w", err)
		}
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// Path is where the blob with digest d lives once stored. The digest must
// have been validated by the caller (digest.Parse), which rules out path
// traversal.
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Stat reports the size of a stored blob, or ErrNotFound.
func (s *Store) Stat(d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Open opens a stored blob for reading, or returns ErrNotFound.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// Delete removes a stored blob; deleting an absent blob is not an error.
func (s *Store) Delete(d digest.Digest) error {
	err := os.Remove(s.Path(d))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every stored blob.
func (s *Store) Walk(fn func(d digest.Digest, size int64) error) error {
	base := filepath.Join(s.root, "blobs")
	return filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		d := digest.Digest(filepath.Dir(rel) + ":" + filepath.Base(rel))
		if d.Validate() != nil {
			slog.Warn("foreign file in blob store", "path", path)
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return fn(d, fi.Size())
	})
}
