package mirror_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mirror.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFile runs a mirror from a YAML file whose keys are the flag
// names, with some flags also on the command line, which win.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/app:1", 1, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	fileListen := harness.FreeAddr(t)
	// The file's upstream for from-file.test leads nowhere; the command
	// line's replaces it. The default upstream comes from the file alone.
	cfg := writeConfig(t, fmt.Sprintf(`listen: %s
data: %s
default-upstream: from-file.test
upstream:
  - from-file.test=http://%s
upstream-timeout: 20s
max-concurrent-fetches: 4
log-level: warn
`, fileListen, data, harness.FreeAddr(t)))
	m := harness.Start(t, "mirror", "--config", cfg, "--upstream=from-file.test="+o.Server.URL)

	pullImage(t, m.Host()+"/app:1", pushed.Images[0])
	// The client has every byte slightly before the mirror commits.
	harness.Eventually(t, "blobs stored in the data dir from the file", func() bool {
		for _, b := range pushed.Blobs() {
			if _, err := os.Stat(harness.BlobPath(data, b.Digest)); err != nil {
				return false
			}
		}
		return true
	})
	if c, err := net.Dial("tcp", fileListen); err == nil {
		c.Close()
		t.Errorf("something listens on the file's listen address %s; the flag's %s should have won", fileListen, m.Addr)
	}
	if lines := m.LogLines("level=INFO"); len(lines) != 0 {
		t.Errorf("info lines although the file sets log-level: warn: %q", lines)
	}
}

// TestConfigUnknownKey checks a misspelt key stops the mirror before it
// listens or touches its data dir, naming the key.
func TestConfigUnknownKey(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "never")
	listen := harness.FreeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf("listen: %s\ndata: %s\ndefault-upstreams: example.test\n", listen, data))
	cmd := exec.Command(harness.Binary(t), "mirror", "--config", cfg)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("mirror with an unknown key: %v, want a non-zero exit\n%s", err, out)
	}
	mustContain(t, "error output", string(out), "default-upstreams")
	if strings.Contains(string(out), "listening") {
		t.Errorf("the mirror started listening before rejecting its config:\n%s", out)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir %s was created (%v) by a mirror with a bad config", data, err)
	}
}
