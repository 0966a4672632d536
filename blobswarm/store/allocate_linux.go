package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate sizes f and reserves its blocks; filesystems without fallocate
// get a sparse file.
func allocate(f *os.File, size int64) error {
	if size == 0 {
		return f.Truncate(0)
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
