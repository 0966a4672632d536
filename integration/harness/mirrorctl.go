package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

// MirrorctlBinary builds cmd/mirrorctl once per test process, next to
// Binary's build so that Main removes both, and returns its path.
func MirrorctlBinary(t testing.TB) string {
	t.Helper()
	dir := filepath.Dir(Binary(t))
	ctlOnce.Do(func() {
		ctlPath = filepath.Join(dir, "mirrorctl")
		cmd := exec.Command("go", "build", "-o", ctlPath, "github.com/blobswarm/blobswarm/cmd/mirrorctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ctlErr = fmt.Errorf("go build mirrorctl: %v\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}
