// Package configure points a node's container runtimes at its mirror:
// containerd's certs.d/<registry>/hosts.toml files and Docker's
// daemon.json registry-mirrors. It changes nothing but what it must, keeps
// a backup of every file it replaces, and can show the result instead of
// writing it.
package configure

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/blobswarm/blobswarm/internal/durable"
	"github.com/blobswarm/blobswarm/internal/hoststoml"
)

// Options say where files live and whether to write them.
type Options struct {
	// Root is prepended to /etc/...; "" or "/" is the real system.
	Root string
	// DryRun prints each file's new content to Out and writes nothing.
	DryRun bool
	// Out receives what was done (or would be).
	Out io.Writer
	// Now names backups; time.Now when nil.
	Now func() time.Time
}

// Registry is a registry to send through the mirror. Server is where the
// registry itself is reached, containerd's fallback when the mirror fails.
type Registry struct {
	Host   string
	Server string
}

// Result is one file the run wrote or would write.
type Result struct {
	Path string
	// Backup is where the previous content went; "" when there was none
	// or nothing changed.
	Backup string
	// Unchanged is true when the file already had the content.
	Unchanged bool
	Content   []byte
}

// MirrorDialTimeout bounds containerd's connection attempt to the node's
// mirror, so a node whose mirror is down falls back to the registry at
// once (Spegel's choice).
const MirrorDialTimeout = 200 * time.Millisecond

// CertsDir is containerd's registry host directory under Root; give it to
// containerd as config_path, or to `ctr image pull --hosts-dir`.
func (o Options) CertsDir() string {
	return filepath.Join(o.root(), "etc", "containerd", "certs.d")
}

// DaemonJSON is Docker's daemon configuration file under Root.
func (o Options) DaemonJSON() string {
	return filepath.Join(o.root(), "etc", "docker", "daemon.json")
}

func (o Options) root() string {
	if o.Root == "" {
		return "/"
	}
	return o.Root
}

// Containerd writes certs.d/<host>/hosts.toml for each registry, sending
// pulls and tag resolution to mirrorURL first and to the registry's server
// last.
func Containerd(o Options, mirrorURL string, regs []Registry) ([]Result, error) {
	if len(regs) == 0 {
		return nil, fmt.Errorf("no registries to configure")
	}
	var files []pending
	for _, r := range regs {
		if r.Host == "" || strings.ContainsAny(r.Host, `/\`) || r.Host == "." || r.Host == ".." {
			return nil, fmt.Errorf("registry %q is not a host name", r.Host)
		}
		content, err := hoststoml.Render(r.Server, []hoststoml.Mirror{{URL: mirrorURL, DialTimeout: MirrorDialTimeout}})
		if err != nil {
			return nil, fmt.Errorf("hosts.toml for %s: %w", r.Host, err)
		}
		files = append(files, pending{path: filepath.Join(o.CertsDir(), r.Host, "hosts.toml"), content: content})
	}
	// Every file is rendered before the first is written, so a bad
	// registry leaves the system as it was.
	return o.apply(files)
}

type pending struct {
	path    string
	content []byte
}

func (o Options) apply(files []pending) ([]Result, error) {
	out := o.out()
	var results []Result
	for _, f := range files {
		res, err := o.write(f.path, f.content)
		if err != nil {
			return results, err
		}
		results = append(results, res)
		switch {
		case o.DryRun:
			fmt.Fprintf(out, "# %s (dry run, not written)\n%s\n", res.Path, res.Content)
		case res.Unchanged:
			fmt.Fprintf(out, "%s: already up to date\n", res.Path)
		case res.Backup != "":
			fmt.Fprintf(out, "%s: written (previous content in %s)\n", res.Path, res.Backup)
		default:
			fmt.Fprintf(out, "%s: written\n", res.Path)
		}
	}
	return results, nil
}

// write replaces path with content atomically, backing up what was there.
func (o Options) write(path string, content []byte) (Result, error) {
	res := Result{Path: path, Content: content}
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", path, err)
	}
	if exists && bytes.Equal(old, content) {
		res.Unchanged = true
		return res, nil
	}
	if o.DryRun {
		return res, nil
	}
	mode := fs.FileMode(0o644)
	if exists {
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		now := time.Now
		if o.Now != nil {
			now = o.Now
		}
		res.Backup = path + ".bak-" + now().UTC().Format("20060102T150405.000000000Z")
		if err := os.WriteFile(res.Backup, old, mode); err != nil {
			return res, fmt.Errorf("back up %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return res, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	// The mode is exact, not less the umask: a replaced file keeps the
	// one it had, and a new one is readable by all, as these files are.
	if err := durable.WriteFile(path, content, mode, renameio.WithStaticPermissions(mode)); err != nil {
		return res, fmt.Errorf("write %s: %w", path, err)
	}
	return res, nil
}
