//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// TestOrasDiscoverThroughMirror lists an image's referrers with `oras
// discover` through the mirror, as signature and SBOM tooling does. The
// origin (distribution v3) has no referrers API, so `oras attach` stored
// the referrer under the sha256-<hex> tag; through the mirror oras must get
// a 404 for the referrers API (a 405 would end it) and then read that tag.
func TestOrasDiscoverThroughMirror(t *testing.T) {
	oras, err := exec.LookPath("oras")
	if err != nil {
		harness.Missing(t, "oras not found: go install oras.land/oras/cmd/oras@v1.3.6 (.ci/run does)")
	}
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/e2e/app:v1", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), oras, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	const sbomType = "application/vnd.example.sbom.v1+json"
	sbom := filepath.Join(t.TempDir(), "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"packages":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	attach := exec.CommandContext(t.Context(), oras, "attach", "--plain-http", "--artifact-type", sbomType,
		o.Host()+"/e2e/app@"+pushed.Top.Digest.String(), filepath.Base(sbom))
	attach.Dir = filepath.Dir(sbom)
	attach.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := attach.CombinedOutput(); err != nil {
		t.Fatalf("oras attach at the origin: %v\n%s", err, out)
	}

	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--default-upstream", o.Host(), "--upstream", o.Host()+"="+o.Server.URL)
	out := run("discover", "--plain-http", "--format", "json", m.Host()+"/e2e/app@"+pushed.Top.Digest.String())
	var found struct {
		Referrers []struct {
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
		Manifests []struct {
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("oras discover output: %v\n%s", err, out)
	}
	refs := append(found.Referrers, found.Manifests...)
	if len(refs) != 1 || refs[0].ArtifactType != sbomType {
		t.Errorf("oras discover through the mirror found %+v, want the one %s referrer:\n%s", refs, sbomType, out)
	}
	if n := m.Metric("blobswarm_mirror_requests_total", "kind", "referrers", "code", "404"); n == 0 {
		t.Error("oras did not ask the mirror's referrers API")
	}
}
