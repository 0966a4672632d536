package tracker_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
)

func TestBadFlagsStopTheTrackerNamingTheFlag(t *testing.T) {
	bin := harness.Binary(t)
	cases := map[string][]string{
		"announce-interval":   {"--announce-interval", "0s"},
		"max-peers":           {"--max-peers", "0"},
		"metainfo-wait":       {"--metainfo-wait", "-1s"},
		"origin-reads":        {"--origin-reads", "0"},
		"fetch-idle-timeout":  {"--fetch-idle-timeout", "0s"},
		"origin-fetches":      {"--origin-fetches", "0"},
		"origin-queue":        {"--origin-queue", "0"},
		"cache-size":          {"--cache-size", "lots"},
		"cache-low-watermark": {"--cache-low-watermark", "99"},
		"upstream":            {"--upstream", "registry.example"},
		"peer-cidr":           {"--peer-cidr", "10.0.0.0/99"},
		"redis":               {"--redis", "memcached://127.0.0.1:1"},
		"log-level":           {"--log-level", "loud"},
	}
	for flag, args := range cases {
		t.Run(flag, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			args := append([]string{"tracker", "--listen", harness.FreeAddr(t), "--data", t.TempDir(), "--peer-listen", "127.0.0.1:0"}, args...)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if _, exited := err.(*exec.ExitError); !exited || ctx.Err() != nil {
				t.Fatalf("tracker %v: %v, want a non-zero exit: %s", args, err, out)
			}
			if !strings.Contains(string(out), flag) {
				t.Fatalf("tracker %v said %q, which does not name %s", args, out, flag)
			}
		})
	}
}
