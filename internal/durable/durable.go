// Package durable replaces files so that a crash or a power loss leaves
// either the old content or the new one, and a replacement that returned
// is still there after the power comes back.
//
// renameio does the temporary file, its fsync and the rename; it does not
// fsync the directory, without which the rename itself may be lost.
package durable

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// WriteFile replaces path with data. A new file gets perm (less the
// umask), a replaced one keeps its permissions; opts override either, or
// put the temporary file elsewhere on the same filesystem (by default it
// goes beside path, not to $TMPDIR, which renameio would probe on every
// call).
func WriteFile(path string, data []byte, perm fs.FileMode, opts ...renameio.Option) error {
	dir := filepath.Dir(path)
	opts = append([]renameio.Option{renameio.WithTempDir(dir)}, opts...)
	if err := renameio.WriteFile(path, data, perm, opts...); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the renames into dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
