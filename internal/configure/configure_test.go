package configure

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

func opts(t *testing.T) Options {
	return Options{Root: t.TempDir(), Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
}

// files lists every file under root with its content.
func files(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerKeepsOtherKeysAndBacksUp(t *testing.T) {
	o := opts(t)
	old := `{"log-driver": "journald", "registry-mirrors": ["http://other:5000"],
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}}, "debug": true}`
	if err := os.MkdirAll(filepath.Dir(o.DaemonJSON()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.DaemonJSON(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Docker(o, "http://127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.DaemonJSON())
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	json.Unmarshal(b, &got)
	json.Unmarshal([]byte(old), &want)
	want["registry-mirrors"] = []any{"http://127.0.0.1:5000", "http://other:5000"}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("daemon.json = %s, want %s", b, wj)
	}
	keys := []string{`"log-driver"`, `"registry-mirrors"`, `"default-ulimits"`, `"debug"`}
	for i := 1; i < len(keys); i++ {
		if bytes.Index(b, []byte(keys[i-1])) > bytes.Index(b, []byte(keys[i])) {
			t.Errorf("key order changed: %s", b)
		}
	}
	backup, err := os.ReadFile(res.Backup)
	if err != nil || string(backup) != old {
		t.Errorf("backup %s = %q, %v; want the old file", res.Backup, backup, err)
	}
	if fi, err := os.Stat(o.DaemonJSON()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of the new file: %v, %v; want the old file's 0600", fi.Mode(), err)
	}

	// A second run finds it done and writes no second backup.
	before := files(t, o.Root)
	res, err = Docker(o, "http://127.0.0.1:5000")
	if err != nil || !res.Unchanged {
		t.Fatalf("second run: %+v, %v; want unchanged", res, err)
	}
	if after := files(t, o.Root); len(after) != len(before) {
		t.Errorf("second run changed files: %v", after)
	}
}

func TestDockerCreatesFile(t *testing.T) {
	o := opts(t)
	res, err := Docker(o, "http://127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if res.Backup != "" {
		t.Errorf("backup %s of a file that did not exist", res.Backup)
	}
	var got struct {
		Mirrors []string `json:"registry-mirrors"`
	}
	b, _ := os.ReadFile(o.DaemonJSON())
	if err := json.Unmarshal(b, &got); err != nil || len(got.Mirrors) != 1 || got.Mirrors[0] != "http://127.0.0.1:5000" {
		t.Errorf("daemon.json = %s (%v)", b, err)
	}
}

func TestDockerRefusesInvalidJSON(t *testing.T) {
	for name, old := range map[string]string{
		"syntax":        `{"debug": true,`,
		"not an object": `["a"]`,
		"trailing data": `{"debug": true} {}`,
		"mirrors type":  `{"registry-mirrors": "http://x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			o := opts(t)
			os.MkdirAll(filepath.Dir(o.DaemonJSON()), 0o755)
			os.WriteFile(o.DaemonJSON(), []byte(old), 0o644)
			_, err := Docker(o, "http://127.0.0.1:5000")
			if err == nil || !strings.Contains(err.Error(), o.DaemonJSON()) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v; want one naming the file and saying nothing was written", err)
			}
			if got := files(t, o.Root); len(got) != 1 || got["/etc/docker/daemon.json"] != old {
				t.Errorf("files after a refused merge: %v", got)
			}
		})
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	o := opts(t)
	var out bytes.Buffer
	o.DryRun, o.Out = true, &out
	if _, err := Docker(o, "http://127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if _, err := Containerd(o, "http://127.0.0.1:5000", []Registry{{Host: "docker.io", Server: "https://registry-1.docker.io"}}); err != nil {
		t.Fatal(err)
	}
	if got := files(t, o.Root); len(got) != 0 {
		t.Errorf("dry run wrote %v", got)
	}
	for _, want := range []string{"registry-mirrors", `server = "https://registry-1.docker.io"`, `[host."http://127.0.0.1:5000"]`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestContainerdHostsParse checks the written files with containerd's own
// hosts.toml reader: the mirror first with pull and resolve, the registry
// last.
func TestContainerdHostsParse(t *testing.T) {
	o := opts(t)
	old := "server = \"https://ghcr.io\"\n"
	ghcr := filepath.Join(o.CertsDir(), "ghcr.io", "hosts.toml")
	os.MkdirAll(filepath.Dir(ghcr), 0o755)
	os.WriteFile(ghcr, []byte(old), 0o644)
	regs := []Registry{{Host: "docker.io", Server: "https://registry-1.docker.io"}, {Host: "ghcr.io", Server: "https://ghcr.io"}, {Host: "127.0.0.1:5001", Server: "http://127.0.0.1:5001"}}
	res, err := Containerd(o, "http://127.0.0.1:5000", regs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[1].Backup == "" {
		t.Fatalf("results %+v; want 3 with a backup of ghcr.io's", res)
	}
	if b, _ := os.ReadFile(res[1].Backup); string(b) != old {
		t.Errorf("backup = %q, want %q", b, old)
	}
	hosts := config.ConfigureHosts(context.Background(), config.HostOptions{HostDir: config.HostDirFromRoot(o.CertsDir())})
	for _, r := range regs {
		got, err := hosts(r.Host)
		if err != nil {
			t.Fatalf("%s: %v", r.Host, err)
		}
		if len(got) != 2 {
			t.Fatalf("%s: %d hosts, want mirror and server", r.Host, len(got))
		}
		if h := got[0]; h.Scheme+"://"+h.Host != "http://127.0.0.1:5000" || h.Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
			t.Errorf("%s: first host %s://%s caps %v", r.Host, h.Scheme, h.Host, h.Capabilities)
		}
		if h := got[1]; h.Scheme+"://"+h.Host != r.Server {
			t.Errorf("%s: last host %s://%s, want %s", r.Host, h.Scheme, h.Host, r.Server)
		}
	}
}

func TestContainerdRefusesBadHostWritingNothing(t *testing.T) {
	o := opts(t)
	_, err := Containerd(o, "http://127.0.0.1:5000", []Registry{{Host: "docker.io", Server: "https://registry-1.docker.io"}, {Host: "../etc", Server: "https://x"}})
	if err == nil {
		t.Fatal("a registry named ../etc was accepted")
	}
	if got := files(t, o.Root); len(got) != 0 {
		t.Errorf("wrote %v", got)
	}
}
