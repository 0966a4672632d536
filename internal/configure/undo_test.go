package configure

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// configure, then unconfigure: each registry's hosts.toml is as it was
// before, a file configure created is gone with its directory, and a file
// that does not name the mirror is not touched, nor are other files.
func TestUndoContainerdRestoresWhatConfigureChanged(t *testing.T) {
	o := opts(t)
	const mirror = "http://127.0.0.1:5000"
	ghcrBefore := "server = \"https://ghcr.io\"\n"
	quayOwn := "server = \"https://quay.io\"\n[host.\"https://quay-cache.internal\"]\n"
	for path, content := range map[string]string{
		filepath.Join(o.CertsDir(), "ghcr.io", "hosts.toml"):   ghcrBefore,
		filepath.Join(o.CertsDir(), "ghcr.io", "ca.crt"):       "certificate",
		filepath.Join(o.CertsDir(), "quay.io", "hosts.toml"):   quayOwn,
		filepath.Join(o.root(), "etc", "containerd", "config"): "kept",
	} {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(content), 0o644)
	}
	before := files(t, o.Root)
	if _, err := Containerd(o, mirror, []Registry{{Host: "docker.io", Server: "https://registry-1.docker.io"}, {Host: "ghcr.io", Server: "https://ghcr.io"}}); err != nil {
		t.Fatal(err)
	}
	// A second run with another mirror backs up the first run's file: the
	// content before the mirror is the oldest backup, not the newest.
	o.Now = func() time.Time { return time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC) }
	if _, err := Containerd(o, mirror+"/", []Registry{{Host: "ghcr.io", Server: "https://ghcr.io"}}); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	o.Out = &out
	if err := UndoContainerd(o, mirror, []string{"docker.io", "ghcr.io", "quay.io", "never.configured"}); err != nil {
		t.Fatal(err)
	}
	after := files(t, o.Root)
	for path, content := range before {
		if after[path] != content {
			t.Errorf("%s = %q after undo, want %q as before configure", path, after[path], content)
		}
	}
	if _, err := os.Stat(filepath.Join(o.CertsDir(), "docker.io")); !os.IsNotExist(err) {
		t.Errorf("docker.io's directory, made by configure, is still there (%v)", err)
	}
	for path := range after {
		if _, ok := before[path]; !ok && !strings.Contains(path, ".bak-") {
			t.Errorf("%s left behind", path)
		}
	}
	for _, want := range []string{"docker.io/hosts.toml: removed", "ghcr.io/hosts.toml: restored from", "quay.io/hosts.toml: does not name", "never.configured/hosts.toml: not there"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := UndoContainerd(o, mirror, []string{"../etc"}); err == nil {
		t.Error("a registry named ../etc was accepted")
	}
}

// unconfigure takes the mirror out of registry-mirrors and nothing else:
// another mirror, and a key added after configure, stay; a list left
// empty goes, so a file configure created ends as an empty object.
func TestUndoDockerTakesOutOnlyTheMirror(t *testing.T) {
	o := opts(t)
	const mirror = "http://127.0.0.1:5000"
	os.MkdirAll(filepath.Dir(o.DaemonJSON()), 0o755)
	os.WriteFile(o.DaemonJSON(), []byte(`{"registry-mirrors": ["http://other:5000"], "log-driver": "journald"}`), 0o600)
	if _, err := Docker(o, mirror); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(o.DaemonJSON())
	edited := strings.Replace(string(b), "{", `{"debug": true,`, 1)
	os.WriteFile(o.DaemonJSON(), []byte(edited), 0o600)

	if _, err := UndoDocker(o, mirror); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	b, _ = os.ReadFile(o.DaemonJSON())
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("daemon.json after undo: %v\n%s", err, b)
	}
	mirrors, _ := got["registry-mirrors"].([]any)
	if !slices.Equal(mirrors, []any{"http://other:5000"}) || got["log-driver"] != "journald" || got["debug"] != true {
		t.Errorf("daemon.json after undo = %s; want the other mirror, log-driver and the later debug key", b)
	}

	fresh := opts(t)
	if _, err := Docker(fresh, mirror); err != nil {
		t.Fatal(err)
	}
	if _, err := UndoDocker(fresh, mirror); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(fresh.DaemonJSON()); string(b) != "{}\n" {
		t.Errorf("daemon.json configure created, after undo = %q, want {}", b)
	}
}
