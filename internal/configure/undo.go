package configure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// UndoContainerd takes the mirror out of each registry's hosts.toml: a
// file configure replaced gets its content from before the mirror back
// (the oldest backup that does not name mirrorURL), and one configure
// created is removed. A file that does not name mirrorURL is not the
// mirror's and is left as it is.
func UndoContainerd(o Options, mirrorURL string, hosts []string) error {
	if len(hosts) == 0 {
		return fmt.Errorf("no registries to unconfigure")
	}
	for _, h := range hosts {
		if h == "" || h == "." || h == ".." || filepath.Base(h) != h {
			return fmt.Errorf("registry %q is not a host name", h)
		}
	}
	for _, h := range hosts {
		if err := o.undoHosts(filepath.Join(o.CertsDir(), h, "hosts.toml"), mirrorURL); err != nil {
			return err
		}
	}
	return nil
}

func (o Options) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

func (o Options) undoHosts(path, mirrorURL string) error {
	cur, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(o.out(), "%s: not there, nothing to undo\n", path)
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	case !bytes.Contains(cur, []byte(mirrorURL)):
		fmt.Fprintf(o.out(), "%s: does not name %s, left as it is\n", path, mirrorURL)
		return nil
	}
	backups, err := filepath.Glob(path + ".bak-*")
	if err != nil {
		return err
	}
	slices.Sort(backups) // the names carry their time, oldest first
	for _, b := range backups {
		before, err := os.ReadFile(b)
		if err != nil {
			return fmt.Errorf("read %s: %w", b, err)
		}
		if bytes.Contains(before, []byte(mirrorURL)) {
			continue
		}
		if o.DryRun {
			fmt.Fprintf(o.out(), "%s: would be restored from %s (dry run)\n", path, b)
			return nil
		}
		if _, err := o.write(path, before); err != nil {
			return err
		}
		fmt.Fprintf(o.out(), "%s: restored from %s\n", path, b)
		return nil
	}
	if o.DryRun {
		fmt.Fprintf(o.out(), "%s: would be removed, configure created it (dry run)\n", path)
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	// The registry's directory, if configure made it and nothing else is
	// in it; a directory with other files stays.
	_ = os.Remove(filepath.Dir(path))
	fmt.Fprintf(o.out(), "%s: removed, configure created it\n", path)
	return nil
}

// UndoDocker takes mirrorURL out of daemon.json's registry-mirrors, and
// the key out when no mirror is left, keeping everything else as it is now
// (including what was changed since configure). The file is backed up as
// configure backs it up.
func UndoDocker(o Options, mirrorURL string) (Result, error) {
	return o.editDaemonJSON(false, func(old []byte) ([]byte, error) {
		return editMirrors(old, func(m []string) []string {
			return slices.DeleteFunc(m, func(s string) bool { return s == mirrorURL })
		})
	})
}

// mirrorsOf reads registry-mirrors of a daemon.json member list.
func mirrorsOf(members []member) (int, []string, error) {
	i := slices.IndexFunc(members, func(m member) bool { return m.key == mirrorsKey })
	var mirrors []string
	if i >= 0 {
		if err := json.Unmarshal(members[i].value, &mirrors); err != nil {
			return i, nil, fmt.Errorf("%s is not a list of URLs: %w", mirrorsKey, err)
		}
	}
	return i, mirrors, nil
}
