package tracker_test

import (
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestBadConfig runs the tracker with one bad setting at a time, by flag
// or in the config file: it must exit non-zero at once, name the key, and
// neither listen nor create its data dir.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	harness.RejectsConfigs(t, "tracker", []string{"--peer-listen", "127.0.0.1:0"}, []harness.BadConfig{
		{What: "negative upload rate", Args: []string{"--upload-rate=-1"}, Mention: "upload-rate"},
		{What: "negative upload rate in file", YAML: "upload-rate: -1\n", Mention: "upload-rate"},
		{What: "bad CIDR in file", YAML: "peer-cidr: [192.168.0.0/33]\n", Mention: "peer-cidr"},
		{What: "unknown key", YAML: "max_peers: 3\n", Mention: "max_peers"},
		{What: "malformed YAML", YAML: "upstream:\n  - a\n - b\n", Mention: "line"},
		{What: "not a mapping", YAML: "tracker\n", Mention: "mapping"},
		{What: "duration not a duration in file", YAML: "tag-ttl: soon\n", Mention: "tag-ttl"},
		{What: "duration without unit in file", YAML: "announce-interval: 5\n", Mention: "announce-interval"},
		{What: "number not a number in file", YAML: "max-peers: many\n", Mention: "max-peers"},
		{What: "bad duration flag", Args: []string{"--tag-ttl=abc"}, Mention: "tag-ttl"},
		{What: "negative tag ttl", YAML: "tag-ttl: -1s\n", Mention: "tag-ttl"},
		{What: "zero upstream timeout", Args: []string{"--upstream-timeout=0s"}, Mention: "upstream-timeout"},
		{What: "upstream without URL in file", YAML: "upstream: [registry.test]\n", Mention: "upstream"},
		{What: "upstream with ftp URL", Args: []string{"--upstream=registry.test=ftp://registry.test"}, Mention: "upstream"},
		{What: "registry not a host in file", YAML: "registry: [ghcr.io/org]\n", Mention: "registry"},
		{What: "upstream URL with a password", Args: []string{"--upstream=registry.test=https://u:hunter2@registry.test"}, Mention: "credentials"},
		{What: "announce URL not http", Args: []string{"--announce-url=udp://tracker.test:6969"}, Mention: "announce-url"},
		{What: "listen not an address", Args: []string{"--listen=nonsense"}, Mention: "listen"},
		{What: "peer-listen not an address", Args: []string{"--peer-listen=nonsense"}, Mention: "peer-listen"},
		{What: "redis URL garbage", YAML: "redis: \"redis://%zz\"\n", Mention: "redis"},
		{What: "missing password file", YAML: "credentials:\n  registry.test:\n    username: u\n    password-file: /nonexistent/pw\n", Mention: "password-file"},
		{What: "credential key unknown", YAML: "credentials:\n  registry.test:\n    password: hunter2\n", Mention: "password"},
	})
}
