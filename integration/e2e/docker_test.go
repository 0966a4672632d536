//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestDockerPullThroughMirror runs a dockerd of its own whose only
// registry setting is --registry-mirror pointing at a `blobswarm mirror`,
// and pulls an image by its short Docker Hub name, the command unchanged.
// docker.io is mapped to a local origin, so the pull can only succeed
// through the mirror.
func TestDockerPullThroughMirror(t *testing.T) {
	requireRoot(t)
	for _, prog := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(prog); err != nil {
			harness.Missing(t, "%s not found: install docker.io (Debian/Ubuntu) or docker-ce", prog)
		}
	}

	o := harness.NewOrigin(t, origin.Config{})
	const name, tag = "blobswarm-e2e", "v1"
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/library/"+name+":"+tag, 3, 512<<10)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--upstream", "docker.io="+o.Server.URL)
	d := startDockerd(t, m.URL())

	img := pushed.Images[0]
	start := time.Now()
	d.run(t, "pull", name+":"+tag)
	t.Logf("cold docker pull of %d layers (%d bytes) through the mirror: %s", len(img.Layers), layerBytes(img), time.Since(start).Round(time.Millisecond))

	inspect := d.inspect(t, name+":"+tag)
	if inspect.ID != img.Config.Digest.String() {
		t.Errorf("docker image inspect: ID %s, want the config digest %s", inspect.ID, img.Config.Digest)
	}
	// Docker shows Docker Hub names in their short form.
	if want := name + "@" + pushed.Top.Digest.String(); !slices.Contains(inspect.RepoDigests, want) {
		t.Errorf("docker image inspect: RepoDigests %v, want %s", inspect.RepoDigests, want)
	}
	if len(inspect.RootFS.Layers) != len(img.Layers) {
		t.Errorf("docker image inspect: %d layers unpacked, want %d", len(inspect.RootFS.Layers), len(img.Layers))
	}

	// Every byte Docker got came through the mirror, and the mirror went to
	// the origin once per blob.
	if got, want := m.Metric("blobswarm_mirror_served_bytes_total"), float64(layerBytes(img)); got < want {
		t.Errorf("mirror served %.0f blob bytes, want at least the %.0f of the layers", got, want)
	}
	if got := m.Metric("blobswarm_mirror_requests_total", "kind", "blob", "method", "GET", "code", "200"); got < float64(len(img.Layers)) {
		t.Errorf("mirror answered %.0f blob GETs with 200, want at least one per layer (%d)", got, len(img.Layers))
	}
	if got := m.Metric("blobswarm_mirror_requests_total", "kind", "manifest", "code", "200"); got == 0 {
		t.Error("mirror answered no manifest request: Docker resolved the tag elsewhere")
	}
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("origin served blob %s %d times, want once", b.Digest, n)
		}
	}

	// A second pull after removing the image comes from the mirror's disk.
	d.run(t, "image", "rm", name+":"+tag)
	start = time.Now()
	d.run(t, "pull", name+":"+tag)
	t.Logf("warm docker pull: %s", time.Since(start).Round(time.Millisecond))
	if got := d.inspect(t, name+":"+tag).ID; got != img.Config.Digest.String() {
		t.Errorf("second pull: ID %s, want %s", got, img.Config.Digest)
	}
	if n := o.TotalBlobGETs(); n != len(pushed.Blobs()) {
		t.Errorf("origin served %d blob GETs after the second pull, want still %d", n, len(pushed.Blobs()))
	}
	if hits := m.Metric("blobswarm_mirror_cache_total", "kind", "blob", "result", "hit"); hits < float64(len(img.Layers)) {
		t.Errorf("mirror counted %.0f blob cache hits, want at least %d for the second pull", hits, len(img.Layers))
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.Missing(t, "needs root (run `make e2e` as root)")
	}
}

func layerBytes(img testimage.Image) int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

// dockerd is a Docker daemon owned by one test: its own data and exec
// roots, socket, pid file and config file, no bridge and no iptables rules,
// so the machine's daemon and network are left as they were.
type dockerd struct {
	dir  string // everything it writes lives under here
	host string // -H value for the docker CLI
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

// dockerdStorageDriver is vfs unless BLOBSWARM_E2E_STORAGE_DRIVER says
// otherwise: it copies instead of mounting, so it works nested inside
// containers and VMs where overlayfs on overlayfs does not.
func dockerdStorageDriver() string {
	if s := os.Getenv("BLOBSWARM_E2E_STORAGE_DRIVER"); s != "" {
		return s
	}
	return "vfs"
}

// startDockerd starts a dockerd that uses mirror as its registry mirror and
// removes it, its containerd and its directories when the test ends, or
// when the test process is interrupted.
func startDockerd(t *testing.T, mirror string) *dockerd {
	t.Helper()
	// Short: the socket path must fit in 108 bytes, containerd's included.
	dir, err := os.MkdirTemp("", "bsdockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{dir: dir, host: "unix://" + filepath.Join(dir, "docker.sock"), logs: &bytes.Buffer{}, done: make(chan struct{})}
	var once sync.Once
	cleanup := func() { once.Do(d.remove) }
	t.Cleanup(stopOnSignal(cleanup))

	// An empty config file: the machine's /etc/docker/daemon.json would
	// otherwise add its own data-root and storage driver.
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("dockerd",
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", d.host,
		"--registry-mirror", mirror,
		"--storage-driver", dockerdStorageDriver(),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--userland-proxy=false",
	)
	d.cmd.Stdout = d.logWriter()
	d.cmd.Stderr = d.logWriter()
	// Should the test binary die without cleaning up (a -timeout panic),
	// the daemon stops with it and stops its containerd.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for {
		if exec.CommandContext(ctx, "docker", "-H", d.host, "version").Run() == nil {
			break
		}
		select {
		case <-d.done:
			t.Fatalf("dockerd exited before it answered:\n%s", d.Logs())
		case <-ctx.Done():
			t.Fatalf("dockerd did not answer within 90s:\n%s", d.Logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd logs:\n%s", d.Logs())
		}
	})
	return d
}

func (d *dockerd) logWriter() *lockedWriter { return &lockedWriter{mu: &d.mu, w: d.logs} }

// Logs returns what dockerd printed so far.
func (d *dockerd) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// run runs the docker CLI against this daemon and fails the test if it
// fails, with its output.
func (d *dockerd) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", d.host}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// imageInspect is the part of `docker image inspect` a user looks at.
type imageInspect struct {
	ID          string `json:"Id"`
	RepoDigests []string
	RootFS      struct{ Layers []string }
}

func (d *dockerd) inspect(t *testing.T, ref string) imageInspect {
	t.Helper()
	var out []imageInspect
	if err := json.Unmarshal([]byte(d.run(t, "image", "inspect", ref)), &out); err != nil {
		t.Fatalf("docker image inspect %s: %v", ref, err)
	}
	if len(out) != 1 {
		t.Fatalf("docker image inspect %s: %d results", ref, len(out))
	}
	return out[0]
}

// remove stops dockerd (which stops the containerd it started), kills
// whatever is left of either, unmounts what they mounted and deletes the
// directory.
func (d *dockerd) remove() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	}
	// A containerd that outlived its dockerd (SIGKILL above) is found by
	// the pid file it left in our exec root.
	for _, pidfile := range []string{"exec/containerd/containerd.pid", "docker.pid"} {
		b, err := os.ReadFile(filepath.Join(d.dir, pidfile))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 && processUnder(pid, d.dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	unmountUnder(d.dir)
	os.RemoveAll(d.dir)
}

// processUnder reports whether pid is still a process whose command line
// names dir, so that a recycled pid is never killed.
func processUnder(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(dir))
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// stopOnSignal runs cleanup and exits when the test process is interrupted,
// which would otherwise skip every t.Cleanup. The function it returns runs
// cleanup and restores the default signal handling.
func stopOnSignal(cleanup func()) func() {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			cleanup()
			fmt.Fprintf(os.Stderr, "interrupted by %s; removed what the test started\n", s)
			os.Exit(1)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		cleanup()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
