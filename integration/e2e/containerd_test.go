//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestContainerdPullThroughMirror pulls an image with `ctr image pull
// --hosts-dir` from the test's own containerd, with hosts.toml written by
// `mirrorctl configure containerd`, and checks that the image unpacked and
// that every blob came through the mirror: the origin served each blob
// once, to the mirror, and never to containerd.
func TestContainerdPullThroughMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		harness.Missing(t, "containerd end-to-end test needs root (it runs its own containerd, which mounts snapshots)")
	}
	for _, prog := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(prog); err != nil {
			harness.Missing(t, "%s not found: install the Debian package containerd", prog)
		}
	}
	ctr := startContainerd(t, "")
	f := newThroughMirror(t, "e2e/app:v1", 512<<10, nil, false)
	o, pushed := f.o, f.pushed
	hostsDir := configureContainerd(t, f.m)
	if b, err := os.ReadFile(filepath.Join(hostsDir, o.Host(), "hosts.toml")); err != nil {
		t.Fatalf("mirrorctl wrote no hosts.toml for %s: %v", o.Host(), err)
	} else {
		t.Logf("hosts.toml for %s:\n%s", o.Host(), b)
	}

	ctr.run(t, "image", "pull", "--hosts-dir", hostsDir, pushed.Ref)

	if out := ctr.run(t, "image", "ls", "-q"); !strings.Contains(out, pushed.Ref) {
		t.Errorf("ctr image ls does not list %s:\n%s", pushed.Ref, out)
	}
	// Unpacked: one committed snapshot per layer, and containerd's own
	// check finds every blob of the image in its content store.
	if out := ctr.run(t, "snapshot", "ls"); strings.Count(out, "Committed") != len(pushed.Images[0].Layers) {
		t.Errorf("snapshots after the pull, want %d committed:\n%s", len(pushed.Images[0].Layers), out)
	}
	if out := ctr.run(t, "image", "check"); !strings.Contains(out, "complete") {
		t.Errorf("ctr image check:\n%s", out)
	}

	f.check(t, "containerd")
}

// throughMirror is an origin holding an image, recording the User-Agent
// of every blob GET from the pushes' end on, and a mirror in front of it.
type throughMirror struct {
	o      *harness.Origin
	agents *blobAgents
	pushed testimage.Pushed
	m      *harness.Process
}

// newThroughMirror pushes repoTag (two layers of layerSize) and more tags
// of its repository (one small layer each), then starts a mirror of the
// origin; with defaultUpstream, the mirror's default upstream, for
// clients that send no ns.
func newThroughMirror(t *testing.T, repoTag string, layerSize int64, more []string, defaultUpstream bool) throughMirror {
	t.Helper()
	f := throughMirror{agents: &blobAgents{byDigest: map[digest.Digest][]string{}}}
	f.o = harness.NewOriginWith(t, origin.Config{}, f.agents.wrap)
	var err error
	if f.pushed, err = testimage.PushImage(t.Context(), f.o.Host()+"/"+repoTag, 2, layerSize); err != nil {
		t.Fatal(err)
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	for _, tag := range more {
		if _, err := testimage.PushImage(t.Context(), f.o.Host()+"/"+repo+":"+tag, 1, 1<<10); err != nil {
			t.Fatal(err)
		}
	}
	f.o.Reset()
	f.agents.reset()
	args := []string{"--data", t.TempDir(), "--upstream", f.o.Host() + "=" + f.o.Server.URL}
	if defaultUpstream {
		args = append(args, "--default-upstream", f.o.Host())
	}
	f.m = harness.Start(t, "mirror", args...)
	return f
}

// check is checkPulledThroughMirror for the image pushed.
func (f throughMirror) check(t *testing.T, client string) {
	t.Helper()
	checkPulledThroughMirror(t, f.m, f.o, f.agents, f.pushed, client)
}

// configureContainerd writes hosts.toml for the mirror's registries with
// mirrorctl under a root of its own, and returns their certs.d.
func configureContainerd(t *testing.T, m *harness.Process) string {
	t.Helper()
	root := t.TempDir()
	conf := exec.CommandContext(t.Context(), harness.MirrorctlBinary(t), "--mirror", m.URL(), "configure", "containerd", "--root", root)
	if out, err := conf.CombinedOutput(); err != nil {
		t.Fatalf("mirrorctl configure containerd: %v\n%s", err, out)
	}
	return filepath.Join(root, "etc", "containerd", "certs.d")
}

// checkPulledThroughMirror checks that every blob of an image a client
// pulled came through the mirror: the mirror served each, and the origin
// served each once, to the mirror, never to the client (a User-Agent
// holding client).
func checkPulledThroughMirror(t *testing.T, m *harness.Process, o *harness.Origin, agents *blobAgents, pushed testimage.Pushed, client string) {
	t.Helper()
	served := m.Metric("blobswarm_mirror_requests_total", "kind", "blob", "method", "GET", "code", "200")
	if want := float64(len(pushed.Blobs())); served < want {
		t.Errorf("mirror served %v blob GETs, want at least %v (every blob of the image)", served, want)
	}
	for _, b := range pushed.Blobs() {
		t.Logf("blob %s (%d bytes): origin GETs by %q", b.Digest, b.Size, agents.get(b.Digest))
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("origin served blob %s %d times, want once (to the mirror)", b.Digest, n)
		}
		for _, ua := range agents.get(b.Digest) {
			if strings.Contains(ua, client) {
				t.Errorf("origin served blob %s to the client directly (User-Agent %q)", b.Digest, ua)
			}
		}
	}
}

// TestCrictlPullThroughMirror pulls with crictl through the CRI plugin of
// the test's own containerd, whose registry config_path holds the
// hosts.toml `mirrorctl configure containerd` wrote: the path the kubelet
// takes. Every blob came through the mirror.
func TestCrictlPullThroughMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		harness.Missing(t, "crictl end-to-end test needs root (it runs its own containerd, which mounts snapshots)")
	}
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		harness.Missing(t, "crictl not found: go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0 (.ci/run does)")
	}
	for _, prog := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(prog); err != nil {
			harness.Missing(t, "%s not found: install the Debian package containerd", prog)
		}
	}
	f := newThroughMirror(t, "e2e/kube:v1", 512<<10, nil, false)
	ctr := startContainerd(t, configureContainerd(t, f.m))
	endpoint := "unix://" + ctr.socket
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, crictl, append([]string{"--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "60s"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("pull", f.pushed.Ref)
	if out := run("images", "--digests"); !strings.Contains(out, f.o.Host()+"/e2e/kube") {
		t.Errorf("crictl images does not list %s:\n%s", f.pushed.Ref, out)
	}
	f.check(t, "containerd")
}

// blobAgents records the User-Agent of every blob GET the origin gets, to
// tell the mirror's fetches from containerd's.
type blobAgents struct {
	mu       sync.Mutex
	byDigest map[digest.Digest][]string
}

func (a *blobAgents) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, tail, ok := strings.Cut(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet {
			if d, err := digest.Parse(tail); err == nil {
				a.mu.Lock()
				a.byDigest[d] = append(a.byDigest[d], r.UserAgent())
				a.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *blobAgents) get(d digest.Digest) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byDigest[d]
}

func (a *blobAgents) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.byDigest)
}

// testContainerd is the test's own containerd daemon.
type testContainerd struct {
	socket string
}

// startContainerd runs a containerd with its own root, state and sockets
// under a temp dir, so whatever containerd the machine runs is left alone.
// With hostsDir, its CRI plugin (the kubelet's way in) runs with that
// registry config_path, its stream server on a free port; without, it has
// no CRI plugin. It is stopped and its files removed when the test ends.
func startContainerd(t *testing.T, hostsDir string) *testContainerd {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir's can be long.
	dir, err := os.MkdirTemp("", "ctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &testContainerd{socket: filepath.Join(dir, "containerd.sock")}
	cri := `disabled_plugins = ["io.containerd.grpc.v1.cri"]`
	if hostsDir != "" {
		cri = fmt.Sprintf(`
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, hostsDir, filepath.Join(dir, "cni", "bin"), filepath.Join(dir, "cni", "conf"))
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
%s

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), cri, c.socket, c.socket+".ttrpc", filepath.Join(dir, "opt"))
	// Registered first, so it runs once containerd has stopped.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove containerd's files: %v", err)
		}
	})
	startDaemon(t, dir, "containerd", config, func(config string) []string {
		return []string{"--config", config}
	}, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, "ctr", "--address", c.socket, "version").Run()
	}, nil)
	return c
}

// run runs ctr against the test's containerd and returns its output.
func (c *testContainerd) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
