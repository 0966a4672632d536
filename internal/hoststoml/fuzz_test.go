package hoststoml

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

// FuzzRender renders arbitrary URLs; whatever Render accepts, containerd
// must read back as the same hosts in the same order, the mirrors first.
func FuzzRender(f *testing.F) {
	f.Add("https://registry-1.docker.io", "http://127.0.0.1:5000", "http://[::1]:5000/prefix", int64(200*time.Millisecond))
	f.Fuzz(func(t *testing.T, server, mirror1, mirror2 string, dial int64) {
		mirrors := []Mirror{{URL: mirror1, DialTimeout: time.Duration(dial)}, {URL: mirror2}}
		b, err := Render(server, mirrors)
		if err != nil {
			return
		}
		root := t.TempDir()
		const registry = "registry.test"
		dir := filepath.Join(root, registry)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		hosts, err := config.ConfigureHosts(context.Background(), config.HostOptions{HostDir: config.HostDirFromRoot(root)})(registry)
		if err != nil {
			t.Fatalf("containerd cannot read what Render wrote: %v\n%s", err, b)
		}
		want := []string{mirror1, mirror2}
		if server != "" {
			want = append(want, server)
		} else {
			want = append(want, "https://"+registry)
		}
		if len(hosts) != len(want) {
			t.Fatalf("containerd sees %d hosts, want %d:\n%s", len(hosts), len(want), b)
		}
		for i, h := range hosts {
			u, _ := url.Parse(want[i])
			if h.Scheme != u.Scheme || h.Host != u.Host {
				t.Errorf("host %d = %s://%s, want %s://%s\n%s", i, h.Scheme, h.Host, u.Scheme, u.Host, b)
			}
		}
	})
}
