package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/blobswarm/blobswarm/internal/cliconfig"
	"github.com/blobswarm/blobswarm/mirror"
	"github.com/blobswarm/blobswarm/tracker"
)

// FuzzMirrorConfig loads arbitrary YAML as `blobswarm mirror --config`
// does: it must give either a config that passes validation or an error
// naming the key at fault.
func FuzzMirrorConfig(f *testing.F) {
	for _, s := range []string{
		"listen: 127.0.0.1:5000\ndata: /tmp/m\nupstream:\n  - r.test=http://127.0.0.1:1\ntracker: [http://t.test:7070]\ncache-size: 10GiB\n",
		"upstream-timeout: lots\n",
		"cache-size: lots\n",
		"cache-high-watermark: 50\ncache-low-watermark: 90\n",
		"peer-cidr: [10.0.0.0/99]\n",
		"max-concurrent-fetches: -1\n",
		"peer-conns: 0\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		loadConfig(t, body, mirror.Defaults(), bindMirrorFlags, mirror.Config.Validate, func(c mirror.Config) string { return c.LogLevel })
	})
}

// FuzzTrackerConfig is FuzzMirrorConfig for `blobswarm tracker`.
func FuzzTrackerConfig(f *testing.F) {
	for _, s := range []string{
		"listen: 127.0.0.1:7070\ndata: /tmp/t\nannounce-interval: 5s\nmax-peers: 10\nredis: redis://127.0.0.1:6379/0\n",
		"announce-interval: 0s\n",
		"max-peers: many\n",
		"announce-url: ftp://x\n",
		"credentials:\n  r.test:\n    password: hunter2\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		loadConfig(t, body, tracker.Defaults(), bindTrackerFlags, tracker.Config.Validate, func(c tracker.Config) string { return c.LogLevel })
	})
}

func loadConfig[T any](t *testing.T, body string, cfg T, bind func(*pflag.FlagSet, *T), validate func(T) error, level func(T) string) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := &cobra.Command{Use: "test"}
	flagCfg := cfg
	bind(cmd.Flags(), &flagCfg)
	err := cliconfig.Load(cmd, path, &cfg, bind)
	if err == nil {
		err = validate(cfg)
	}
	if err == nil {
		_, err = newLogger(level(cfg))
	}
	if err == nil {
		return
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not found in type"), strings.Contains(msg, "already defined"):
		// yaml.v3 names the unknown or repeated key itself.
	case strings.Contains(msg, "cannot unmarshal"):
		// A value of the wrong type: the user must be told which key, in
		// their words, not only a Go type.
		if !namesKey(msg, reflect.TypeOf(cfg)) && !strings.Contains(msg, "want a mapping") {
			t.Fatalf("error %q names no key of the file\n%s", msg, body)
		}
	case strings.HasPrefix(msg, "config file "+path+": yaml:"):
		// Not YAML at all: the parser's message gives the position.
	default:
		if !namesKey(msg, reflect.TypeOf(cfg)) {
			t.Fatalf("error %q names no key\n%s", msg, body)
		}
	}
}

// namesKey reports whether msg mentions one of the config's yaml keys.
func namesKey(msg string, typ reflect.Type) bool {
	for i := range typ.NumField() {
		if k, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); k != "" && strings.Contains(msg, k+":") {
			return true
		}
	}
	return false
}
