//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/pull"
)

// composeMirrors is how many mirror containers the fleet runs.
const composeMirrors = 3

// TestComposeFleet brings up deploy/compose as a user would (origin,
// tracker, mirrors, from an image built here FROM scratch), pushes an image
// to the origin and pulls it through every mirror the way containerd does.
// The origin must send each blob once for the whole fleet, and the mirrors
// that pull later must get bytes from their peers.
func TestComposeFleet(t *testing.T) {
	requireRoot(t)
	for _, prog := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(prog); err != nil {
			harness.Missing(t, "%s not found: install docker.io and docker-compose (Debian/Ubuntu)", prog)
		}
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		harness.Missing(t, "no Docker daemon to run the compose fleet on (start docker): %v\n%s", err, out)
	}

	suffix := randomSuffix(t)
	image := buildImage(t, "blobswarm-e2e:"+suffix)
	fleet := composeUp(t, "bse2e"+suffix, image)

	originURL := "http://" + fleet.port(t, "origin", 1, 5000)
	mirrors := make([]string, composeMirrors)
	for i := range mirrors {
		mirrors[i] = "http://" + fleet.port(t, "mirror", i+1, 5000)
	}
	waitOK(t, originURL+"/v2/")
	for _, m := range mirrors {
		waitOK(t, m+"/readyz")
	}

	pushed, err := testimage.PushImage(t.Context(), strings.TrimPrefix(originURL, "http://")+"/library/app:1", 4, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	blobGETs := harness.ScrapeMetric(t, originURL+"/metrics", "blobswarm_origin_blob_gets_total")
	blobBytes := harness.ScrapeMetric(t, originURL+"/metrics", "blobswarm_origin_blob_bytes_total")

	// Inside the fleet the origin is origin:5000, so that is the name
	// clients pull by; the mirrors map it to http://origin:5000.
	ref := "origin:5000/library/app:1"
	pullVia := func(i int) error {
		res, err := pull.Image(t.Context(), ref, pull.Options{MirrorURL: mirrors[i]})
		if err != nil {
			return fmt.Errorf("pull through mirror %d: %w", i+1, err)
		}
		if res.Digest != pushed.Top.Digest.String() {
			return fmt.Errorf("pull through mirror %d resolved %s, want %s", i+1, res.Digest, pushed.Top.Digest)
		}
		t.Logf("mirror %d: %d blobs, %d bytes in %s", i+1, res.Blobs, res.Bytes, res.Duration.Round(time.Millisecond))
		return nil
	}
	// The first node pulls alone; the others then pull at once, as a
	// rollout would, and can take pieces from it and from each other.
	if err := pullVia(0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, composeMirrors)
	for i := 1; i < composeMirrors; i++ {
		wg.Go(func() { errs[i] = pullVia(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	var total int64
	for _, b := range pushed.Blobs() {
		total += b.Size
	}
	if got, want := harness.ScrapeMetric(t, originURL+"/metrics", "blobswarm_origin_blob_gets_total")-blobGETs, float64(len(pushed.Blobs())); got != want {
		t.Errorf("origin served %.0f blob GETs to a fleet of %d, want %.0f: one per blob", got, composeMirrors, want)
	}
	if got := harness.ScrapeMetric(t, originURL+"/metrics", "blobswarm_origin_blob_bytes_total") - blobBytes; got != float64(total) {
		t.Errorf("origin sent %.0f blob bytes, want %d: each blob once", got, total)
	}
	var fromPeers float64
	for i, m := range mirrors {
		p := harness.ScrapeMetric(t, m+"/metrics", "blobswarm_mirror_received_bytes_total", "source", "peers")
		s := harness.ScrapeMetric(t, m+"/metrics", "blobswarm_mirror_received_bytes_total", "source", "seeder")
		o := harness.ScrapeMetric(t, m+"/metrics", "blobswarm_mirror_received_bytes_total", "source", "origin")
		t.Logf("mirror %d received %.0f bytes from peers, %.0f from the seeder, %.0f from the origin", i+1, p, s, o)
		fromPeers += p
		if o > 0 {
			t.Errorf("mirror %d fetched %.0f bytes from the origin itself; the swarm should have served it", i+1, o)
		}
	}
	if fromPeers == 0 {
		t.Error("no mirror received any bytes from a peer: the fleet pulled from the seeder alone")
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildImage builds the repository's Dockerfile as `make image` does (the
// static binary copied into FROM scratch, nothing pulled), from a context
// holding only what that stage needs, and removes the image when the test
// ends.
func buildImage(t *testing.T, tag string) string {
	t.Helper()
	root := repoRoot(t)
	ctxDir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin")+string(filepath.Separator), "./cmd/blobswarm", "./cmd/mirrorctl")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// .dockerignore too: what it leaves out of `make image` is left out here.
	for _, name := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		out, err := exec.Command("docker", "image", "rm", "-f", tag).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such image") {
			t.Errorf("remove image %s: %v\n%s", tag, err, out)
		}
	})
	cmd := exec.Command("docker", "build", "--target", "prebuilt", "-t", tag, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	return tag
}

// composeFleet is one `docker-compose` project of deploy/compose.
type composeFleet struct {
	project string
	file    string
	env     []string
}

// composeUp starts deploy/compose under project with the given image and
// takes it down with its volumes when the test ends, or when the test
// process is interrupted.
func composeUp(t *testing.T, project, image string) *composeFleet {
	t.Helper()
	f := &composeFleet{
		project: project,
		file:    filepath.Join(repoRoot(t), "deploy", "compose", "docker-compose.yml"),
		env:     append(os.Environ(), "BLOBSWARM_IMAGE="+image),
	}
	var once sync.Once
	down := func() {
		once.Do(func() {
			if out, err := f.command(context.Background(), "down", "-v", "--remove-orphans", "--timeout", "10").CombinedOutput(); err != nil {
				t.Errorf("docker-compose down: %v\n%s", err, out)
			}
		})
	}
	t.Cleanup(stopOnSignal(down))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := f.command(context.Background(), "logs", "--no-color").CombinedOutput()
			t.Logf("fleet logs:\n%s", out)
		}
	})
	start := time.Now()
	if out, err := f.run(t, "up", "-d", "--no-build", "--scale", fmt.Sprintf("mirror=%d", composeMirrors)); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	t.Logf("docker-compose up: %s", time.Since(start).Round(time.Millisecond))
	return f
}

func (f *composeFleet) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", f.project, "-f", f.file}, args...)...)
	cmd.Env = f.env
	return cmd
}

func (f *composeFleet) run(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	return f.command(ctx, args...).CombinedOutput()
}

// port is the loopback host:port Docker published for a container's port.
func (f *composeFleet) port(t *testing.T, service string, index, port int) string {
	t.Helper()
	out, err := f.run(t, "port", "--index", fmt.Sprint(index), service, fmt.Sprint(port))
	addr := strings.TrimSpace(string(out))
	if err != nil || addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("docker-compose port %s %d: %v\n%s", service, port, err, out)
	}
	return addr
}

// waitOK waits until url answers 200.
func waitOK(t *testing.T, url string) {
	t.Helper()
	harness.Eventually(t, url+" to answer 200", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
