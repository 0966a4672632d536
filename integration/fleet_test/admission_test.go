package fleet_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// writeSecretFile writes a fleet secret file into dir.
func writeSecretFile(t *testing.T, dir, name, secret string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The fleet's secret, and the credentials made from it, appear in no log
// line of the tracker or the mirrors at any level, also when announces
// fail: refused for a wrong secret, or with the tracker gone. anacrolix
// logs the announce URL of every failed announce at WARN.
func TestSecretNeverLogged(t *testing.T) {
	dir := t.TempDir()
	const secret = "fleet-secret-5b1e0c7d"
	secretFile := writeSecretFile(t, dir, "secret", secret)
	f := newFleet(t, fleetOptions{
		mirrors:     2,
		trackerArgs: []string{"--secret-file", secretFile, "--log-level", "debug"},
		mirrorArgs:  []string{"--tracker-secret-file", secretFile, "--log-level", "debug"},
	})
	image := f.push(t, "team/app:1", 1, 1<<20)
	checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))

	// A mirror with another secret: refused, it falls back to the origin
	// and announces what it stored, which the tracker refuses too.
	wrong := writeSecretFile(t, dir, "wrong", "not-the-fleet-secret")
	data := t.TempDir()
	p := harness.Start(t, "mirror", "--data", data, "--tracker", f.tracker.URL(), "--tracker-secret-file", wrong,
		"--log-level", "debug", "--peer-listen", "127.0.0.1:0", "--upstream", f.origin.Host()+"="+f.origin.Server.URL)
	stranger := &mirror{Process: p, name: "stranger", data: data}
	checkPulled(t, image, pullAll(t.Context(), image, []*mirror{stranger}))
	harness.Eventually(t, "a refused announce", func() bool { return len(stranger.LogLines("announce failed")) > 0 })

	// The tracker gone: a new blob comes from the origin, and announcing
	// it fails.
	f.tracker.Stop()
	next := f.push(t, "team/app:2", 1, 1<<20)
	checkPulled(t, next, pullAll(t.Context(), next, f.mirrors[:1]))
	harness.Eventually(t, "an announce to the stopped tracker", func() bool { return len(f.mirrors[0].LogLines("announce failed")) > 0 })

	keys := api.NewKeys(secret)
	procs := map[string]*harness.Process{"tracker": f.tracker, "stranger": stranger.Process}
	for _, m := range f.mirrors {
		procs[m.name] = m.Process
	}
	for name, p := range procs {
		for what, s := range map[string]string{"secret": secret, "API credential": keys.APIToken(), "announce credential": keys.AnnounceToken()} {
			sc := bufio.NewScanner(strings.NewReader(p.Logs()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), s) {
					t.Errorf("%s logged the %s: %s", name, what, sc.Text())
				}
			}
		}
	}
}
