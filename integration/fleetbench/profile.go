package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// With -profile the mirrors and the tracker serve Go's profiles
// (--debug-listen) inside their hosts, and the benchmark records a CPU
// profile of each over the same span from the common start: where the
// processes' CPU went while the image moved. The network emulation's own
// cost (softirq in veth, bridge and tbf) is the kernel's and shows in none
// of them; the machine's CPU column holds it.

// ProfilePort is where the fleet's processes serve /debug/pprof/ with
// -profile.
const ProfilePort = "6060"

// Profiles is the CPU profiles of one rollout being recorded.
type Profiles struct {
	wg    sync.WaitGroup
	paths []string
	errs  []error
}

// StartProfiles records a CPU profile of every target (URL: the base of
// its /debug/pprof/) for d from t0, into dir as <prefix>-<name>.pprof.
// pprof records whole seconds: d is rounded up.
func StartProfiles(ctx context.Context, t0 time.Time, d time.Duration, dir, prefix string, targets []Target) *Profiles {
	p := &Profiles{paths: make([]string, len(targets)), errs: make([]error, len(targets))}
	seconds := int(math.Ceil(d.Seconds()))
	for i, tg := range targets {
		path := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", prefix, tg.Name))
		p.wg.Go(func() {
			select {
			case <-ctx.Done():
				p.errs[i] = ctx.Err()
				return
			case <-time.After(time.Until(t0)):
			}
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", tg.URL, seconds)
			if err := download(ctx, tg.Client, url, path); err != nil {
				p.errs[i] = fmt.Errorf("CPU profile of %s: %w", tg.Name, err)
				return
			}
			p.paths[i] = path
		})
	}
	return p
}

// Wait returns the profiles written, in the targets' order, once every
// recording has ended; the error joins those that failed.
func (p *Profiles) Wait() ([]string, error) {
	p.wg.Wait()
	var paths []string
	for _, path := range p.paths {
		if path != "" {
			paths = append(paths, path)
		}
	}
	return paths, errors.Join(p.errs...)
}

func download(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

// WriteTop prints the functions that used the most CPU in the profiles,
// merged, with pprof's own report (`go tool pprof -top`): the go command
// that runs the benchmark is on the PATH.
func WriteTop(w io.Writer, title string, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	fmt.Fprintf(w, "CPU profile, %s:\n", title)
	args := append([]string{"tool", "pprof", "-top", "-nodecount=15"}, paths...)
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go tool pprof -top %s: %w", title, err)
	}
	return nil
}
