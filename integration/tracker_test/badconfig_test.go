package tracker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestBadConfig runs the tracker with one bad setting at a time, by flag
// or in the config file: it must exit non-zero at once, name the key, and
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
		{"negative upload rate in file", nil, "upload-rate: -1\n", "upload-rate"},
		{"bad CIDR in file", nil, "peer-cidr: [192.168.0.0/33]\n", "peer-cidr"},
		{"unknown key", nil, "max_peers: 3\n", "max_peers"},
		{"malformed YAML", nil, "upstream:\n  - a\n - b\n", "line"},
		{"not a mapping", nil, "tracker\n", "mapping"},
		{"duration not a duration in file", nil, "tag-ttl: soon\n", "tag-ttl"},
		{"duration without unit in file", nil, "announce-interval: 5\n", "announce-interval"},
		{"number not a number in file", nil, "max-peers: many\n", "max-peers"},
		{"bad duration flag", []string{"--tag-ttl=abc"}, "", "tag-ttl"},
		{"negative tag ttl", nil, "tag-ttl: -1s\n", "tag-ttl"},
		{"zero upstream timeout", []string{"--upstream-timeout=0s"}, "", "upstream-timeout"},
		{"upstream without URL in file", nil, "upstream: [registry.test]\n", "upstream"},
		{"upstream with ftp URL", []string{"--upstream=registry.test=ftp://registry.test"}, "", "upstream"},
		{"announce URL not http", []string{"--announce-url=udp://tracker.test:6969"}, "", "announce-url"},
		{"listen not an address", []string{"--listen=nonsense"}, "", "listen"},
		{"peer-listen not an address", []string{"--peer-listen=nonsense"}, "", "peer-listen"},
		{"redis URL garbage", nil, "redis: \"redis://%zz\"\n", "redis"},
		{"missing password file", nil, "credentials:\n  registry.test:\n    username: u\n    password-file: /nonexistent/pw\n", "password-file"},
		{"credential key unknown", nil, "credentials:\n  registry.test:\n    password: hunter2\n", "password"},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := filepath.Join(dir, "never")
			args := []string{"tracker", "--data", data, "--listen", harness.FreeAddr(t)}
			if !hasFlag(c.args, "--peer-listen") {
				args = append(args, "--peer-listen", "127.0.0.1:0")
			}
			if c.yaml != "" {
				cfg := filepath.Join(dir, "tracker.yaml")
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

// hasFlag reports whether args set the flag prefix.
func hasFlag(args []string, prefix string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}
