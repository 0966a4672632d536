package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

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
		name      string
		set       []string
		wantRedis string
	}{
		{"defaults", nil, ""},
		{"two trackers with a Redis of their own, containerd left alone", []string{"tracker.replicas=2", "tracker.redis=redis://redis.blobswarm:6379/0", "mirror.configureContainerd=false"}, "redis://redis.blobswarm:6379/0"},
		{"two trackers with the chart's Redis", []string{"tracker.replicas=3", "redis.enabled=true"}, "redis://blobswarm-redis.blobswarm.svc.cluster.local:6379/0"},
		{"a secret given", []string{"fleetSecret.value=s3cret-of-the-fleet"}, ""},
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
			checkManifests(t, "helm "+tc.name, ms, "redis:7.4-alpine")
			cm := ms.configMaps["blobswarm/blobswarm-tracker"]
			if cm == nil {
				t.Fatal("no tracker ConfigMap")
			}
			var cfg struct{ Redis string }
			if err := yaml.Unmarshal([]byte(cm.Data["tracker.yaml"]), &cfg); err != nil || cfg.Redis != tc.wantRedis {
				t.Errorf("tracker's redis: %q (%v), want %q", cfg.Redis, err, tc.wantRedis)
			}
			if redis := ms.services["blobswarm/blobswarm-redis"] != nil; redis != strings.HasPrefix(tc.wantRedis, "redis://blobswarm-redis.") {
				t.Errorf("the chart's Redis Service rendered: %v, want it only with redis.enabled", redis)
			}
			secret := ms.secrets["blobswarm/blobswarm-fleet"]
			if secret == nil || len(secret.Data["secret"]) < 32 && !strings.HasPrefix(string(secret.Data["secret"]), "s3cret") {
				t.Errorf("fleet secret %v: want one made at install (48 characters) or the value given", secret)
			}
		})
	}

	// Replicas that would not share their state are refused at render.
	out, err := helm(t, "template", "blobswarm", helmChart, "--namespace", "blobswarm", "--set", "tracker.replicas=2")
	if err == nil || !strings.Contains(out, "redis.enabled or tracker.redis") {
		t.Errorf("two trackers without redis: %v\n%s\nwant a refusal naming redis.enabled and tracker.redis", err, out)
	}
}
