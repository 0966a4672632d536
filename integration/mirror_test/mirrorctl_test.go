package mirror_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

type ctlResult struct {
	code           int
	stdout, stderr string
}

// mirrorctl runs the binary with env (KEY=VALUE) added.
func mirrorctl(t *testing.T, bin string, env []string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	res := ctlResult{stdout: out.String(), stderr: errb.String()}
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("mirrorctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

// TestMirrorctl drives the mirrorctl binary against a real mirror process
// with a tracker, in front of an embedded origin.
func TestMirrorctl(t *testing.T) {
	bin := harness.MirrorctlBinary(t)
	originDir := t.TempDir()
	o := harness.NewOrigin(t, origin.Config{Dir: originDir})
	upstream := o.Host() + "=" + o.Server.URL
	trackerData := t.TempDir()
	tr := harness.Start(t, "tracker", "--data", trackerData, "--peer-listen", "127.0.0.1:0", "--upstream", upstream)
	data := t.TempDir()
	const token = "t0ken"
	m := startMirror(t, data, "--tracker", tr.URL(), "--peer-listen", "127.0.0.1:0", "--upstream", upstream, "--admin-token", token)
	env := []string{"MIRRORCTL_MIRROR=" + m.URL(), "MIRRORCTL_TOKEN=" + token}

	app, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 2, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()

	t.Run("token required", func(t *testing.T) {
		r := mirrorctl(t, bin, []string{"MIRRORCTL_MIRROR=" + m.URL(), "MIRRORCTL_TOKEN="}, "status")
		if r.code == 0 || !strings.Contains(r.stderr, "admin token") {
			t.Errorf("status without token: exit %d, stderr %q; want a failure asking for the token", r.code, r.stderr)
		}
		r = mirrorctl(t, bin, env, "--token", "wrong", "prefetch", app.Ref)
		if r.code == 0 || !strings.Contains(r.stderr, "admin token") {
			t.Errorf("prefetch with a wrong token: exit %d", r.code)
		}
	})

	t.Run("unknown registry", func(t *testing.T) {
		r := mirrorctl(t, bin, env, "prefetch", "ghcr.io/org/app:v1")
		if r.code == 0 || !strings.Contains(r.stderr, "no upstream for registry ghcr.io") {
			t.Errorf("exit %d, stderr %q; want a refusal naming ghcr.io", r.code, r.stderr)
		}
	})

	t.Run("prefetch", func(t *testing.T) {
		r := mirrorctl(t, bin, env, "prefetch", app.Ref)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if !strings.Contains(r.stdout, app.Ref+": 3 blobs") {
			t.Errorf("summary %q does not count 3 blobs", r.stdout)
		}
		stored := harness.StoredBlobs(t, data)
		for _, b := range app.Blobs() {
			if !slices.Contains(stored, b.Digest) {
				t.Errorf("blob %s not in the mirror's store", b.Digest)
			}
			if n := o.BlobGETs(b.Digest); n != 1 {
				t.Errorf("origin served %s %d times, want once (to the tracker's seeder)", b.Digest, n)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		r := mirrorctl(t, bin, env, "status", "--json")
		var st adminapi.Status
		if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
			t.Fatalf("exit %d, %v", r.code, err)
		}
		var total int64
		for _, b := range app.Blobs() {
			total += b.Size
		}
		if st.Cache.Blobs != len(app.Blobs()) || st.Cache.Bytes != total {
			t.Errorf("cache %+v; want %d blobs, %d bytes", st.Cache, len(app.Blobs()), total)
		}
		if len(st.Trackers) != 1 || !st.Trackers[0].Reachable || st.Swarm == nil {
			t.Errorf("trackers %+v swarm %+v; want the tracker reachable and a swarm", st.Trackers, st.Swarm)
		}
		if got := st.Bytes.FromPeers + st.Bytes.FromSeeder + st.Bytes.FromOrigin; got != total {
			t.Errorf("bytes by source %+v add up to %d, want %d", st.Bytes, got, total)
		}
		if r := mirrorctl(t, bin, env, "status"); r.code != 0 || !strings.Contains(r.stdout, tr.URL()+" reachable") {
			t.Errorf("human status: exit %d", r.code)
		}
	})

	t.Run("failed layer named", func(t *testing.T) {
		broken, err := testimage.PushImage(t.Context(), o.Host()+"/broken:v1", 2, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		lost := broken.Images[0].Layers[1].Digest
		removeOriginBlob(t, originDir, lost)
		r := mirrorctl(t, bin, env, "prefetch", broken.Ref, o.Host()+"/app:nope")
		if r.code == 0 {
			t.Fatal("exit 0 with a lost layer and a missing tag")
		}
		for _, want := range []string{lost.String(), "app:nope"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not name %s", want)
			}
		}
		stored := harness.StoredBlobs(t, data)
		if slices.Contains(stored, lost) || !slices.Contains(stored, broken.Images[0].Layers[0].Digest) {
			t.Errorf("store: want the good layer and not the lost one")
		}
	})

	t.Run("fleet", func(t *testing.T) {
		fleet, err := testimage.PushImage(t.Context(), o.Host()+"/fleet:v1", 2, 100<<10)
		if err != nil {
			t.Fatal(err)
		}
		r := mirrorctl(t, bin, env, "prefetch", "--fleet", fleet.Ref)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		seeded := harness.StoredBlobs(t, trackerData)
		stored := harness.StoredBlobs(t, data)
		for _, b := range fleet.Blobs() {
			if !slices.Contains(seeded, b.Digest) {
				t.Errorf("blob %s not with the tracker's seeder", b.Digest)
			}
			if slices.Contains(stored, b.Digest) {
				t.Errorf("blob %s in the node's store: --fleet warms the seeder, not this node", b.Digest)
			}
			if n := o.BlobGETs(b.Digest); n != 1 {
				t.Errorf("origin served %s %d times, want once", b.Digest, n)
			}
		}
	})

	t.Run("configure containerd", func(t *testing.T) {
		root := t.TempDir()
		r := mirrorctl(t, bin, env, "configure", "containerd", "--root", root, "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, `server = "`+o.Server.URL+`"`) {
			t.Errorf("dry run: exit %d", r.code)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("dry run wrote %v", entries)
		}
		if r := mirrorctl(t, bin, env, "configure", "containerd", "--root", root); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for host, server := range map[string]string{"docker.io": "https://registry-1.docker.io", o.Host(): o.Server.URL} {
			b, err := os.ReadFile(filepath.Join(root, "etc/containerd/certs.d", host, "hosts.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `server = "`+server+`"`) || !strings.Contains(string(b), `[host."`+m.URL()+`"]`) {
				t.Errorf("%s hosts.toml:\n%s", host, b)
			}
		}

		// unconfigure asks nothing of the mirror, and leaves certs.d as
		// configure found it: empty.
		if r := mirrorctl(t, bin, env, "unconfigure", "containerd", "--root", root); r.code != 0 || !strings.Contains(r.stdout, "removed") {
			t.Fatalf("unconfigure: exit %d\n%s", r.code, r.stdout)
		}
		if entries, err := os.ReadDir(filepath.Join(root, "etc/containerd/certs.d")); err != nil || len(entries) != 0 {
			t.Errorf("certs.d after unconfigure: %v (%v), want empty", entries, err)
		}
	})
}

// removeOriginBlob deletes a blob's data from a distribution filesystem
// store, as a broken origin would lose it.
func removeOriginBlob(t *testing.T, dir string, d digest.Digest) {
	t.Helper()
	path := filepath.Join(dir, "storage/docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
