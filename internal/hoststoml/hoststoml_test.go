package hoststoml

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

// What we write must mean to containerd what we intend: mirrors first, in
// order, with pull+resolve, then the registry itself.
func TestContainerdReadsWhatWeWrite(t *testing.T) {
	root := t.TempDir()
	b, err := Render("https://registry-1.docker.io", []Mirror{
		{URL: "http://127.0.0.1:5000", DialTimeout: 200 * time.Millisecond},
		{URL: "http://10.0.0.2:5000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "docker.io")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "hosts.toml"), b, 0o644)

	hosts, err := config.ConfigureHosts(context.Background(), config.HostOptions{HostDir: config.HostDirFromRoot(root)})("docker.io")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ scheme, host string }{{"http", "127.0.0.1:5000"}, {"http", "10.0.0.2:5000"}, {"https", "registry-1.docker.io"}}
	if len(hosts) != len(want) {
		t.Fatalf("containerd sees %d hosts, want %d:\n%s", len(hosts), len(want), b)
	}
	for i, h := range hosts {
		if h.Scheme != want[i].scheme || h.Host != want[i].host {
			t.Errorf("host %d = %s://%s, want %s://%s", i, h.Scheme, h.Host, want[i].scheme, want[i].host)
		}
		if i < 2 && h.Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
			t.Errorf("mirror %d capabilities = %v", i, h.Capabilities)
		}
	}
}

func TestRenderRejectsBadURLs(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:5000", "ftp://x", "http://a\"b", "http://"} {
		if _, err := Render("", []Mirror{{URL: bad}}); err == nil {
			t.Errorf("Render accepted mirror %q", bad)
		}
	}
}
