//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestSkopeoThroughMirror pulls with skopeo 1.9 (the containers/image
// library of podman, buildah and CRI-O) through a registries.conf mirror,
// which sends no ns: the mirror's default-upstream decides. The copy's
// blobs match their digests and came from the origin once each, to the
// mirror, never to skopeo; `skopeo list-tags` against the mirror lists the
// origin's tags.
func TestSkopeoThroughMirror(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		harness.Missing(t, "skopeo not found: install the Debian package skopeo")
	}
	f := newThroughMirror(t, "e2e/app:v1", 256<<10, []string{"v2"}, true)
	o, m, pushed := f.o, f.m, f.pushed

	conf := registriesConf(t, o.Host(), m.Host())
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), skopeo, append([]string{"--registries-conf", conf, "--debug"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return string(out)
	}

	dir := filepath.Join(t.TempDir(), "copy")
	run("copy", "--src-tls-verify=false", "docker://"+pushed.Ref, "dir:"+dir)
	for _, b := range pushed.Blobs() {
		got, err := os.ReadFile(filepath.Join(dir, b.Digest.Encoded()))
		if err != nil {
			t.Errorf("skopeo's copy lacks blob %s: %v", b.Digest, err)
		} else if digest.FromBytes(got) != b.Digest {
			t.Errorf("blob %s in skopeo's copy has digest %s", b.Digest, digest.FromBytes(got))
		}
	}
	f.check(t, containersAgent)

	var listed struct{ Tags []string }
	if err := json.Unmarshal([]byte(run("list-tags", "--tls-verify=false", "docker://"+m.Host()+"/e2e/app")), &listed); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed.Tags, []string{"v1", "v2"}) {
		t.Errorf("skopeo list-tags through the mirror: %v, want [v1 v2]", listed.Tags)
	}
	if n := m.Metric("blobswarm_mirror_requests_total", "kind", "tags", "code", "200"); n == 0 {
		t.Error("the mirror answered no tag list: skopeo listed the tags elsewhere")
	}
}

// containersAgent is in the User-Agent of the containers/image library's
// requests (skopeo, podman, buildah, CRI-O).
const containersAgent = "containers/"

// registriesConf writes a registries.conf that sends pulls of registry to
// the mirror at mirror first, both over plain HTTP.
func registriesConf(t *testing.T, registry, mirror string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "registries.conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, `[[registry]]
prefix = %[1]q
location = %[1]q
insecure = true

[[registry.mirror]]
location = %[2]q
insecure = true
`, registry, mirror), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestPodmanThroughMirror pulls with podman 4.3 through the same
// registries.conf mirror, into a store of the test's own: every blob came
// through the mirror, and the image is in podman's store.
func TestPodmanThroughMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		harness.Missing(t, "podman end-to-end test needs root (its store mounts layers)")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		harness.Missing(t, "podman not found: install the Debian package podman")
	}
	f := newThroughMirror(t, "e2e/pod:v1", 256<<10, nil, true)
	o, m, pushed := f.o, f.m, f.pushed
	conf := registriesConf(t, o.Host(), m.Host())
	store := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), podman, append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "CONTAINERS_REGISTRIES_CONF="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("pull", "--tls-verify=false", pushed.Ref)
	if out := run("images", "--digests"); !strings.Contains(out, o.Host()+"/e2e/pod") {
		t.Errorf("podman images does not list %s:\n%s", pushed.Ref, out)
	}
	f.check(t, containersAgent)
}
