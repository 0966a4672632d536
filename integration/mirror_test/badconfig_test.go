package mirror_test

import (
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// TestBadConfig runs the mirror with one bad setting at a time, by flag or
// in the config file: it must exit non-zero at once, name the key, and
// neither listen nor create its data dir.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	harness.RejectsConfigs(t, "mirror", nil, []harness.BadConfig{
		{What: "negative upload rate", Args: []string{"--upload-rate=-1"}, Mention: "upload-rate"},
		{What: "negative download rate in file", YAML: "download-rate: -5\n", Mention: "download-rate"},
		{What: "bad CIDR", Args: []string{"--peer-cidr=10.0.0.0/99"}, Mention: "peer-cidr"},
		{What: "CIDR without mask in file", YAML: "peer-cidr: [10.0.0.1/x]\n", Mention: "peer-cidr"},
		{What: "cache size lots", Args: []string{"--cache-size=lots"}, Mention: "cache-size"},
		{What: "cache size over 100%", YAML: "cache-size: 150%\n", Mention: "cache-size"},
		{What: "watermarks low above high", Args: []string{"--cache-size=1GiB", "--cache-high-watermark=50", "--cache-low-watermark=90"}, Mention: "cache-low-watermark"},
		{What: "watermark over 100", YAML: "cache-size: 1GiB\ncache-high-watermark: 101\n", Mention: "cache-high-watermark"},
		{What: "unknown key", YAML: "cache_size: 1GiB\n", Mention: "cache_size"},
		{What: "malformed YAML", YAML: "listen: [127.0.0.1:5000\ndata: x\n", Mention: "line"},
		{What: "not a mapping", YAML: "- listen\n", Mention: "mapping"},
		{What: "duration not a duration in file", YAML: "metainfo-timeout: soon\n", Mention: "metainfo-timeout"},
		{What: "duration without unit in file", YAML: "stall-timeout: 30\n", Mention: "stall-timeout"},
		{What: "number where a list belongs", YAML: "upstream: 3\n", Mention: "upstream"},
		{What: "bad duration flag", Args: []string{"--upstream-timeout=abc"}, Mention: "upstream-timeout"},
		{What: "zero stall timeout", Args: []string{"--stall-timeout=0s"}, Mention: "stall-timeout"},
		{What: "negative metainfo timeout", YAML: "metainfo-timeout: -1s\n", Mention: "metainfo-timeout"},
		{What: "upstream without URL", Args: []string{"--upstream=registry.test"}, Mention: "upstream"},
		{What: "upstream with ftp URL", YAML: "upstream: [registry.test=ftp://registry.test]\n", Mention: "upstream"},
		{What: "upstream without host", Args: []string{"--upstream==http://127.0.0.1:1"}, Mention: "upstream"},
		{What: "registry not a host", Args: []string{"--registry=https://ghcr.io"}, Mention: "registry"},
		{What: "default upstream not a host", YAML: "default-upstream: docker.io/library\n", Mention: "default-upstream"},
		{What: "upstream URL with a password", YAML: "upstream: [registry.test=https://u:hunter2@registry.test]\n", Mention: "credentials"},
		{What: "tracker not a URL", Args: []string{"--tracker=tracker.test:7070"}, Mention: "tracker"},
		{What: "tracker ftp URL in file", YAML: "tracker: [ftp://tracker.test]\n", Mention: "tracker"},
		{What: "zero concurrent fetches", Args: []string{"--max-concurrent-fetches=0"}, Mention: "max-concurrent-fetches"},
		{What: "zero fetch idle timeout", Args: []string{"--fetch-idle-timeout=0s"}, Mention: "fetch-idle-timeout"},
		{What: "zero readahead blobs", Args: []string{"--readahead-blobs=0"}, Mention: "readahead-blobs"},
		{What: "zero readahead fetches", YAML: "readahead-fetches: 0\n", Mention: "readahead-fetches"},
		{What: "log level", Args: []string{"--log-level=loud"}, Mention: "log-level"},
		{What: "platform", YAML: "platform: not/a/real/platform/at/all\n", Mention: "platform"},
		{What: "admin token with space", YAML: "admin-token: a b\n", Mention: "admin-token"},
		{What: "missing password file", YAML: "credentials:\n  registry.test:\n    username: u\n    password-file: /nonexistent/pw\n", Mention: "password-file"},
		{What: "listen not an address", Args: []string{"--listen=nonsense"}, Mention: "listen"},
		{What: "listen port out of range", Args: []string{"--listen=127.0.0.1:99999"}, Mention: "listen"},
		{What: "peer-listen not an address", Args: []string{"--tracker=http://127.0.0.1:1", "--peer-listen=nonsense"}, Mention: "peer-listen"},
	})
}
