package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// helmChart is the chart under deploy/helm.
const helmChart = "helm/blobswarm"

func helmBinary(t *testing.T) string {
	t.Helper()
	helm, err := exec.LookPath("helm")
	if err != nil {
		harness.Missing(t, "helm not found: go install helm.sh/helm/v3/cmd/helm@v3.22.0 (.ci/run does)")
	}
	return helm
}

// helm runs helm and returns what it printed; failing, the error and that.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), helmBinary(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHelmChart lints the chart strictly, renders it as `helm install -n
// blobswarm --create-namespace` would, and holds what it renders to the
// checks of the plain manifests (TestKubernetesManifests): strict decoding,
// the image and its binaries, every command's subcommands and flags
// (the preStop unconfigure too), config files the servers accept, one
// secret on both sides, probes and Services.
func TestHelmChart(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", helmChart); err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"two trackers with redis, containerd left alone", []string{"tracker.replicas=2", "tracker.redis=redis://redis.blobswarm:6379/0", "mirror.configureContainerd=false"}},
		{"a secret given", []string{"fleetSecret.value=s3cret-of-the-fleet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "blobswarm", helmChart, "--namespace", "blobswarm"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rendered.yaml"), []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			ms := decodeManifests(t, dir, "blobswarm")
			checkManifests(t, "helm "+tc.name, ms)
			secret := ms.secrets["blobswarm/blobswarm-fleet"]
			if secret == nil || len(secret.Data["secret"]) < 32 && !strings.HasPrefix(string(secret.Data["secret"]), "s3cret") {
				t.Errorf("fleet secret %v: want one made at install (48 characters) or the value given", secret)
			}
		})
	}

	// Replicas that would not share their state are refused at render.
	out, err := helm(t, "template", "blobswarm", helmChart, "--namespace", "blobswarm", "--set", "tracker.replicas=2")
	if err == nil || !strings.Contains(out, "tracker.redis") {
		t.Errorf("two trackers without redis: %v\n%s\nwant a refusal naming tracker.redis", err, out)
	}
}
