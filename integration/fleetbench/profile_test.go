package fleetbench

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/debugserver"
)

// burn keeps a goroutine on the CPU until ctx ends, so the profile has a
// function of this package to show.
func burn(ctx context.Context) (n uint64) {
	for ctx.Err() == nil {
		for i := range 1 << 16 {
			n += uint64(i) * n
		}
	}
	return n
}

func TestProfilesRecordWhatRanAndPprofReadsThem(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		harness.Missing(t, "go tool pprof needs the go command on the PATH: %v", err)
	}
	srv := httptest.NewServer(debugserver.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go burn(ctx)

	dir := t.TempDir()
	targets := []Target{{Name: "h1", URL: srv.URL, Client: srv.Client()}, {Name: "missing", URL: srv.URL + "/nothing", Client: srv.Client()}}
	p := StartProfiles(t.Context(), time.Now().Add(50*time.Millisecond), 800*time.Millisecond, dir, "swarm-1", targets)
	paths, err := p.Wait()
	if want := filepath.Join(dir, "swarm-1-h1.pprof"); len(paths) != 1 || paths[0] != want {
		t.Fatalf("profiles %v, want only %s", paths, want)
	}
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want the failed target named with its status", err)
	}
	cancel()

	var out bytes.Buffer
	if err := WriteTop(&out, "swarm run 1, mirrors", paths); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"CPU profile, swarm run 1, mirrors:", "flat%", "fleetbench.burn"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}
