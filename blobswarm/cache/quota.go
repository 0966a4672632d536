package cache

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
)

// ParseConfig reads the cache keys of a server's configuration, naming
// the key at fault: cache-size (ParseQuota, of the filesystem holding
// dir), cache-high-watermark and cache-low-watermark.
func ParseConfig(size string, high, low int, dir string) (Config, error) {
	quota, err := ParseQuota(size, dir)
	if err != nil {
		return Config{}, fmt.Errorf("cache-size: %w", err)
	}
	cfg := Config{Quota: quota, High: high, Low: low}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("cache-high-watermark, cache-low-watermark: %w", err)
	}
	return cfg, nil
}

// ParseQuota reads a quota as configured: empty or "0" for none, bytes
// with an optional unit ("50GiB", "500 MB"), or a percentage of the
// filesystem that holds dir ("80%").
func ParseQuota(spec, dir string) (int64, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "0" {
		return 0, nil
	}
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || p <= 0 || p > 100 || math.IsNaN(p) {
			return 0, fmt.Errorf("%q: a percentage must be in (0, 100]", spec)
		}
		size, err := filesystemSize(dir)
		if err != nil {
			return 0, err
		}
		return int64(float64(size) * p / 100), nil
	}
	n, err := humanize.ParseBytes(spec)
	if err != nil {
		return 0, fmt.Errorf("%q: want a size such as 50GiB or a percentage such as 80%%: %w", spec, err)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("%q: too large", spec)
	}
	return int64(n), nil
}

// Available is the space left for unprivileged use on dir's filesystem.
func Available(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space on %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// filesystemSize is the size of the filesystem dir is on, or will be on
// once created (its nearest existing parent's).
func filesystemSize(dir string) (int64, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		if err == nil {
			return int64(st.Blocks) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0, fmt.Errorf("size of the filesystem holding %s: %w", dir, err)
		}
		dir = parent
	}
}
