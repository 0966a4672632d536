package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BadConfig is one bad setting, by flag (Args) or in a config file (YAML),
// and the key the refusal must name.
type BadConfig struct {
	What    string
	Args    []string
	YAML    string
	Mention string
}

// RejectsConfigs runs `blobswarm command` once per case, in parallel, with
// a data dir and a free listen address, plus the flags in defaults that the
// case does not set itself, and checks each with RejectsConfig.
func RejectsConfigs(t *testing.T, command string, defaults []string, cases []BadConfig) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.What, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := filepath.Join(dir, "never")
			args := []string{command, "--data", data, "--listen", FreeAddr(t)}
			for i := 0; i+1 < len(defaults); i += 2 {
				if !slicesHasPrefix(c.Args, defaults[i]) {
					args = append(args, defaults[i], defaults[i+1])
				}
			}
			if c.YAML != "" {
				cfg := filepath.Join(dir, command+".yaml")
				if err := os.WriteFile(cfg, []byte(c.YAML), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			RejectsConfig(t, append(args, c.Args...), data, c.Mention)
		})
	}
}

// slicesHasPrefix reports whether any of args starts with prefix.
func slicesHasPrefix(args []string, prefix string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// RejectsConfig runs `blobswarm args...`, which must exit non-zero at once
// with a message naming mention, without listening or creating data.
func RejectsConfig(t testing.TB, args []string, data, mention string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Binary(t), args...).CombinedOutput()
	var exit *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("%v: %v (%v), want a quick non-zero exit\n%s", args, err, ctx.Err(), out)
	}
	if !strings.Contains(string(out), mention) {
		t.Errorf("%v said %q, which does not name %s", args, out, mention)
	}
	if strings.Contains(string(out), "listening") {
		t.Errorf("%v started listening before rejecting its config:\n%s", args, out)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%v created its data dir %s (%v)", args, data, err)
	}
}
