package mirror_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestBadConfig runs the mirror with one bad setting at a time, by flag or
// in the config file: it must exit non-zero at once, name the key, and
// neither listen nor create its data dir.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		what    string
		args    []string
		yaml    string
		mention string
	}{
		{"negative upload rate", []string{"--upload-rate=-1"}, "", "upload-rate"},
		{"negative download rate in file", nil, "download-rate: -5\n", "download-rate"},
		{"bad CIDR", []string{"--peer-cidr=10.0.0.0/99"}, "", "peer-cidr"},
		{"CIDR without mask in file", nil, "peer-cidr: [10.0.0.1/x]\n", "peer-cidr"},
		{"cache size lots", []string{"--cache-size=lots"}, "", "cache-size"},
		{"cache size over 100%", nil, "cache-size: 150%\n", "cache-size"},
		{"watermarks low above high", []string{"--cache-size=1GiB", "--cache-high-watermark=50", "--cache-low-watermark=90"}, "", "cache-low-watermark"},
		{"watermark over 100", nil, "cache-size: 1GiB\ncache-high-watermark: 101\n", "cache-high-watermark"},
		{"unknown key", nil, "cache_size: 1GiB\n", "cache_size"},
		{"malformed YAML", nil, "listen: [127.0.0.1:5000\ndata: x\n", "line"},
		{"not a mapping", nil, "- listen\n", "mapping"},
		{"duration not a duration in file", nil, "metainfo-timeout: soon\n", "metainfo-timeout"},
		{"duration without unit in file", nil, "stall-timeout: 30\n", "stall-timeout"},
		{"number where a list belongs", nil, "upstream: 3\n", "upstream"},
		{"bad duration flag", []string{"--upstream-timeout=abc"}, "", "upstream-timeout"},
		{"zero stall timeout", []string{"--stall-timeout=0s"}, "", "stall-timeout"},
		{"negative metainfo timeout", nil, "metainfo-timeout: -1s\n", "metainfo-timeout"},
		{"upstream without URL", []string{"--upstream=registry.test"}, "", "upstream"},
		{"upstream with ftp URL", nil, "upstream: [registry.test=ftp://registry.test]\n", "upstream"},
		{"upstream without host", []string{"--upstream==http://127.0.0.1:1"}, "", "upstream"},
		{"tracker not a URL", []string{"--tracker=tracker.test:7070"}, "", "tracker"},
		{"tracker ftp URL in file", nil, "tracker: [ftp://tracker.test]\n", "tracker"},
		{"zero concurrent fetches", []string{"--max-concurrent-fetches=0"}, "", "max-concurrent-fetches"},
		{"log level", []string{"--log-level=loud"}, "", "log-level"},
		{"platform", nil, "platform: not/a/real/platform/at/all\n", "platform"},
		{"admin token with space", nil, "admin-token: a b\n", "admin-token"},
		{"missing password file", nil, "credentials:\n  registry.test:\n    username: u\n    password-file: /nonexistent/pw\n", "password-file"},
		{"listen not an address", []string{"--listen=nonsense"}, "", "listen"},
		{"listen port out of range", []string{"--listen=127.0.0.1:99999"}, "", "listen"},
		{"peer-listen not an address", []string{"--tracker=http://127.0.0.1:1", "--peer-listen=nonsense"}, "", "peer-listen"},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := filepath.Join(dir, "never")
			args := []string{"mirror", "--data", data, "--listen", harness.FreeAddr(t)}
			if c.yaml != "" {
				cfg := filepath.Join(dir, "mirror.yaml")
				if err := os.WriteFile(cfg, []byte(c.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			args = append(args, c.args...)
			harness.RejectsConfig(t, args, data, c.mention)
		})
	}
}
