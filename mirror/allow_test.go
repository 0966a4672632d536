package mirror

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// listenCounting stands for a host nobody configured: it counts the
// connections it is offered.
func listenCounting(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// serveConfigured serves a mirror in front of origin o with cfg changed
// by configure.
func serveConfigured(t *testing.T, o *harness.Origin, configure func(*Config)) (url, data string) {
	t.Helper()
	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Upstream = []string{o.Host() + "=" + o.Server.URL}
	configure(&cfg)
	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		srv.Close()
		m.Drain(t.Context())
		m.Close()
	})
	return srv.URL, cfg.Data
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func send(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// ?ns= naming a registry the configuration does not name gets 403 DENIED
// saying which key would allow it: nothing is stored, and that registry
// sees no connection.
func TestUnnamedRegistryIsDeniedWithoutAConnection(t *testing.T) {
	host, accepts := listenCounting(t)
	o := harness.NewOrigin(t, origin.Config{})
	url, data := serveConfigured(t, o, func(*Config) {})
	before := files(t, data)
	d := digest.FromString("a layer").String()
	for _, path := range []string{"/v2/app/manifests/v1", "/v2/app/manifests/" + d, "/v2/app/blobs/" + d, "/v2/"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := send(t, method, url+path+"?ns="+host)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s %s?ns=%s: HTTP %d %s, want 403", method, path, host, resp.StatusCode, body)
			}
			if method == http.MethodHead {
				continue
			}
			var e struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != "DENIED" {
				t.Fatalf("%s %s: body %s, want one DENIED error", method, path, body)
			}
			for _, want := range []string{host, "registry", "any-registry"} {
				if !strings.Contains(e.Errors[0].Message, want) {
					t.Errorf("%s %s: message %q does not mention %q", method, path, e.Errors[0].Message, want)
				}
			}
		}
	}
	if after := files(t, data); !slices.Equal(before, after) {
		t.Errorf("denied requests wrote %v", after)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the unnamed registry saw %d connections, want none", n)
	}
	if n := o.TotalBlobGETs(); n != 0 {
		t.Fatalf("the origin served %d blobs", n)
	}
}

// The registry key is what lets a registry in.
func TestRegistryKeyAllowsARegistry(t *testing.T) {
	host, accepts := listenCounting(t)
	o := harness.NewOrigin(t, origin.Config{})
	url, _ := serveConfigured(t, o, func(c *Config) { c.Registry = []string{host} })
	resp, body := send(t, http.MethodGet, url+"/v2/app/manifests/v1?ns="+host)
	if resp.StatusCode == http.StatusForbidden || accepts.Load() == 0 {
		t.Fatalf("registry %s named in the registry key: HTTP %d %s after %d connections, want it fetched from", host, resp.StatusCode, body, accepts.Load())
	}
}

// Registries only any-registry lets in are one series in the metrics,
// however many a client names.
func TestUpstreamErrorsOfUnnamedRegistriesShareOneLabel(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	url, _ := serveConfigured(t, o, func(c *Config) { c.AnyRegistry = true })
	for range 3 {
		host, _ := listenCounting(t)
		if resp, body := send(t, http.MethodGet, url+"/v2/app/manifests/v1?ns="+host); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d %s, want 503", resp.StatusCode, body)
		}
	}
	_, body := send(t, http.MethodGet, url+"/metrics")
	if !strings.Contains(string(body), `blobswarm_mirror_upstream_errors_total{upstream="other"} 3`) || strings.Contains(string(body), `upstream="127.0.0.1`) {
		t.Fatalf("metrics:\n%s\nwant the 3 errors under upstream=\"other\"", grepLines(string(body), "upstream_errors"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An open proxy is never one by accident: the mirror says so at start.
func TestAnyRegistryIsAnnouncedAtStart(t *testing.T) {
	var logs strings.Builder
	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.AnyRegistry = true
	m, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "any-registry") {
		t.Fatalf("start logs:\n%s\nwant a warning about any-registry", logs.String())
	}
}
