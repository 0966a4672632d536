package tracker_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/harness/trackertest"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// writeSecret writes a fleet secret file and returns its path.
func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// failureReason reads a bencoded announce answer's failure reason.
func failureReason(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Failure string `bencode:"failure reason"`
	}
	if err := bencode.Unmarshal(body, &v); err != nil {
		t.Fatalf("announce answer is not bencoded: %q: %v", body, err)
	}
	return v.Failure
}

// trackerURLs are a request to each endpoint but announce, for a blob and
// a tag the origin has.
func trackerURLs(t *testing.T, base string, o *harness.Origin) map[string]string {
	t.Helper()
	_, d := harness.PushRandomBlob(t, o, "app", 1000)
	if _, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 1, 100); err != nil {
		t.Fatal(err)
	}
	b := oci.Blob{Registry: o.Host(), Repo: "app", Digest: d}
	return map[string]string{
		"metainfo": base + api.MetainfoPath + "?" + api.BlobQuery(b).Encode(),
		"pieces":   base + api.PiecesPath + "?" + api.PiecesQuery(b, 0).Encode(),
		"manifest": base + api.ManifestPath + "?" + api.TagQuery(o.Host(), "app", "v1").Encode(),
	}
}

// With a secret, metainfo, pieces and tags take the API credential made
// from it, and announces the announce credential, each in a header: not
// the secret itself, not in the URL, and neither credential for the
// other's endpoints. The probes and metrics need none.
func TestEveryEndpointNeedsItsCredential(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	const secret = "s3cret"
	tr := trackertest.StartWith(t, o, time.Minute, func(cfg *tracker.Config, _ *http.Server) { cfg.SecretFile = writeSecret(t, secret) })
	keys := api.NewKeys(secret)
	for name, u := range trackerURLs(t, tr.URL, o) {
		for what, header := range map[string][]string{
			"nothing":                 nil,
			"the secret as bearer":    {"Authorization", "Bearer " + secret},
			"the announce credential": {"Authorization", "Bearer " + keys.AnnounceToken()},
			"the announce header":     {api.AnnounceHeader, keys.AnnounceToken()},
			"another fleet's API key": {"Authorization", "Bearer " + api.NewKeys("other").APIToken()},
		} {
			resp, body := get(t, u, header...)
			if resp.StatusCode != http.StatusUnauthorized || ociError(t, body).Code != errcode.ErrorCodeUnauthorized {
				t.Errorf("%s with %s: HTTP %d %s, want 401 UNAUTHORIZED", name, what, resp.StatusCode, body)
			}
		}
		if resp, body := get(t, u, "Authorization", "Bearer "+keys.APIToken()); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the API credential: HTTP %d %s, want 200", name, resp.StatusCode, body)
		}
	}

	announce := tr.URL + api.AnnouncePath + "?" + announceQuery().Encode()
	for what, header := range map[string][]string{
		"nothing":              nil,
		"the API credential":   {api.AnnounceHeader, keys.APIToken()},
		"the secret":           {api.AnnounceHeader, secret},
		"the API bearer token": {"Authorization", "Bearer " + keys.APIToken()},
	} {
		if _, body := get(t, announce, header...); !strings.Contains(failureReason(t, body), "secret") {
			t.Errorf("announce with %s: %q, want a failure reason naming the secret", what, body)
		}
	}
	if _, body := get(t, announce+"&auth="+secret); failureReason(t, body) == "" {
		t.Errorf("announce with the secret in its URL (?auth=): %q, want a failure reason", body)
	}
	if _, body := get(t, announce, api.AnnounceHeader, keys.AnnounceToken()); failureReason(t, body) != "" {
		t.Errorf("announce with the announce credential: %q, want peers", body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _ := get(t, tr.URL+path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s without a credential: HTTP %d, want 200", path, resp.StatusCode)
		}
	}
}

// A client outside peer-cidr gets nothing but the probes, whatever it
// carries: metainfo, pieces, tags and metrics answer 403 NOT_ADMITTED
// (announces a failure reason), and the origin is never asked.
func TestRequestsFromOutsidePeerCIDRAreRefused(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	tr := trackertest.StartWith(t, o, time.Minute, func(cfg *tracker.Config, _ *http.Server) {
		cfg.PeerCIDR = []string{"10.99.0.0/16"}
	})
	urls := trackerURLs(t, tr.URL, o)
	o.Reset()
	urls["metrics"] = tr.URL + "/metrics"
	for name, u := range urls {
		resp, body := get(t, u)
		if resp.StatusCode != http.StatusForbidden || ociError(t, body).Code != api.ErrorCodeNotAdmitted {
			t.Errorf("%s from outside peer-cidr: HTTP %d %s, want 403 NOT_ADMITTED", name, resp.StatusCode, body)
		}
	}
	if _, body := get(t, tr.URL+api.AnnouncePath+"?"+announceQuery().Encode()); failureReason(t, body) == "" {
		t.Errorf("announce from outside peer-cidr: %q, want a failure reason", body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := get(t, tr.URL+path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s from outside peer-cidr: HTTP %d, want 200 (probes stay open)", path, resp.StatusCode)
		}
	}
	if n := o.TotalBlobGETs() + o.ManifestRequests(); n != 0 {
		t.Errorf("the origin was asked %d times for refused requests", n)
	}
}

// Metainfo and tag answers carry a signature over the request (its nonce
// included) and the answer, which verifies with the fleet's keys and with
// no other, and not for another request.
func TestAnswersAreSigned(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	const secret = "s3cret"
	tr := trackertest.StartWith(t, o, time.Minute, func(cfg *tracker.Config, _ *http.Server) { cfg.SecretFile = writeSecret(t, secret) })
	keys := api.NewKeys(secret)
	urls := trackerURLs(t, tr.URL, o)
	urls["unknown tag"] = tr.URL + api.ManifestPath + "?" + api.TagQuery(o.Host(), "app", "v2").Encode()
	for _, name := range []string{"metainfo", "manifest", "unknown tag"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, urls[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+keys.APIToken())
		req.Header.Set(api.NonceHeader, "n1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if !keys.Verify(req, resp, body.Bytes()) {
			t.Errorf("%s: HTTP %d answer does not verify (signature %q)", name, resp.StatusCode, resp.Header.Get(api.SignatureHeader))
		}
		if api.NewKeys("other").Verify(req, resp, body.Bytes()) {
			t.Errorf("%s: verifies with another fleet's keys", name)
		}
		req.Header.Set(api.NonceHeader, "n2")
		if keys.Verify(req, resp, body.Bytes()) {
			t.Errorf("%s: verifies as the answer to another request (nonce)", name)
		}
		req.Header.Set(api.NonceHeader, "n1")
		if keys.Verify(req, resp, append(body.Bytes(), ' ')) {
			t.Errorf("%s: verifies with another body", name)
		}
	}
}

// A tracker that listens beyond loopback without a secret says so at
// start, naming the key to set; on loopback, or with a secret, it does not.
func TestOpenTrackerWarnsAtStart(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	for _, c := range []struct {
		listen, secret string
		warn           bool
	}{
		{"0.0.0.0:7070", "", true},
		{"192.0.2.1:7070", "", true},
		{"127.0.0.1:7070", "", false},
		{"0.0.0.0:7070", writeSecret(t, "s3cret"), false},
	} {
		var logs bytes.Buffer
		cfg := tracker.Defaults()
		cfg.Listen, cfg.SecretFile = c.listen, c.secret
		cfg.Data, cfg.PeerListen = t.TempDir(), "127.0.0.1:0"
		cfg.AnnounceURL = "http://127.0.0.1:7070/announce"
		cfg.Upstream = []string{o.Host() + "=" + o.Server.URL}
		tr, err := tracker.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		tr.Close()
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "secret-file")
		if warned != c.warn {
			t.Errorf("listen %s, secret file %q: warned %v, want %v; logs:\n%s", c.listen, c.secret, warned, c.warn, logs.String())
		}
	}
}
