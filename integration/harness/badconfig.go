package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

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
