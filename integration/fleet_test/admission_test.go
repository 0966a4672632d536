package fleet_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// writeSecretFile writes a fleet secret file into dir.
func writeSecretFile(t testing.TB, dir, name, secret string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// manifestBytes reads what a tag names from the origin, as stored.
func manifestBytes(t *testing.T, f *fleet, image testimage.Pushed) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
		f.origin.Server.URL+"/v2/"+image.Repository+"/manifests/"+image.Tag, nil)
	req.Header.Set("Accept", image.Top.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || digest.FromBytes(b) != image.Top.Digest {
		t.Fatalf("manifest of %s from the origin: %v", image.Ref, err)
	}
	return b
}

// A man in the middle between a mirror and its tracker (plain HTTP) who
// swaps a tag's manifest for another image's cannot make the mirror serve
// it: the answer's signature does not verify, the mirror counts a
// fallback and resolves the tag at the origin.
func TestTrackerAnswerRewrittenInTransitIsNotServed(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeSecretFile(t, dir, "secret", "fleet-4d2a9e61")
	f := newFleet(t, fleetOptions{trackerArgs: []string{"--secret-file", secretFile}})
	genuine := f.push(t, "team/app:1", 1, 1<<20)
	evil := f.push(t, "team/evil:1", 1, 1<<20)
	evilBytes := manifestBytes(t, f, evil)

	target, err := url.Parse(f.tracker.URL())
	if err != nil {
		t.Fatal(err)
	}
	var rewrites atomic.Int64
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != api.ManifestPath || resp.StatusCode != http.StatusOK {
				return nil
			}
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(evilBytes))
			resp.ContentLength = int64(len(evilBytes))
			resp.Header.Set("Content-Length", strconv.Itoa(len(evilBytes)))
			resp.Header.Set("Content-Type", evil.Top.MediaType)
			resp.Header.Set("Docker-Content-Digest", evil.Top.Digest.String())
			rewrites.Add(1)
			return nil
		},
	})
	t.Cleanup(proxy.Close)

	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", proxy.URL, "--tracker-secret-file", secretFile,
		"--peer-listen", "127.0.0.1:0", "--upstream", f.origin.Host()+"="+f.origin.Server.URL)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
		m.URL()+"/v2/"+genuine.Repository+"/manifests/"+genuine.Tag+"?ns="+f.origin.Host(), nil)
	req.Header.Set("Accept", genuine.Top.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rewrites.Load() == 0 {
		t.Fatal("the man in the middle never saw a manifest answer to rewrite")
	}
	if got := digest.FromBytes(body); resp.StatusCode != http.StatusOK || got != genuine.Top.Digest {
		t.Fatalf("mirror answered HTTP %d with %s (header %s), want the genuine %s (the rewritten one is %s)",
			resp.StatusCode, got, resp.Header.Get("Docker-Content-Digest"), genuine.Top.Digest, evil.Top.Digest)
	}
	if n := m.Metric(fallbacksMetric, "reason", "tag"); n != 1 {
		t.Errorf("%s{reason=tag} = %.0f, want 1", fallbacksMetric, n)
	}
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
