package swarm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// ErrNoInfoBytes is returned by InfoBytes for a blob that was never seeded.
var ErrNoInfoBytes = errors.New("no info bytes for blob")

// InfoBytes returns the info dictionary saved when blob d was last seeded,
// so a restarted node can seed its stored blobs without asking the tracker.
func (s *Swarm) InfoBytes(d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.infoPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s", ErrNoInfoBytes, d)
	}
	if err != nil {
		return nil, fmt.Errorf("read info bytes of %s: %w", d, err)
	}
	return b, nil
}

// infoPath mirrors the store's blob layout: <root>/torrents/<alg>/<hex>.
func (s *Swarm) infoPath(d digest.Digest) string {
	return filepath.Join(s.store.Root(), "torrents", d.Algorithm().String(), d.Encoded())
}

// saveInfoBytes writes the file through a temp file and a rename, so a
// crash leaves either the old file or the new one, never a torn one.
func (s *Swarm) saveInfoBytes(d digest.Digest, b []byte) error {
	path := s.infoPath(d)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create info bytes directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+d.Encoded()+"-*")
	if err != nil {
		return fmt.Errorf("save info bytes of %s: %w", d, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("save info bytes of %s: %w", d, err)
	}
	return nil
}

func (s *Swarm) deleteInfoBytes(d digest.Digest) error {
	if err := os.Remove(s.infoPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete info bytes of %s: %w", d, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
