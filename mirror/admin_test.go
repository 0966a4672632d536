package mirror

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

const testToken = "s3cret-token"

type adminFixture struct {
	origin *harness.Origin
	data   string
	url    string
}

// newAdminFixture runs a mirror (no tracker) in front of an embedded
// origin, serving it over HTTP.
func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	return serveMirror(t, harness.NewOrigin(t, origin.Config{}))
}

// serveMirror serves a mirror in front of o over HTTP.
func serveMirror(t *testing.T, o *harness.Origin) *adminFixture {
	t.Helper()
	m, data := newTestMirror(t, o)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return &adminFixture{origin: o, data: data, url: srv.URL}
}

// newTestMirror opens a mirror (no tracker) in front of o, which it knows
// by the origin's own host name, and returns it with its data directory.
func newTestMirror(t *testing.T, o *harness.Origin) (*Mirror, string) {
	t.Helper()
	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Upstream = []string{o.Host() + "=" + o.Server.URL}
	cfg.AdminToken = testToken
	cfg.Platform = "linux/amd64"
	cfg.CacheSize = "1GiB"
	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Drain(t.Context())
		m.Close()
	})
	return m, cfg.Data
}

func (f *adminFixture) call(t *testing.T, method, path, token string, body any) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wantError checks an admin error answer: status, code, and a message
// that says what is wrong.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code, msgPart string) {
	t.Helper()
	var eb adminapi.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("HTTP %d body %q: want an error body (%v)", resp.StatusCode, body, err)
	}
	if resp.StatusCode != status || eb.Errors[0].Code != code || !strings.Contains(eb.Errors[0].Message, msgPart) {
		t.Errorf("HTTP %d %+v; want %d %s mentioning %q", resp.StatusCode, eb.Errors[0], status, code, msgPart)
	}
}

func (f *adminFixture) prefetch(t *testing.T, req adminapi.PrefetchRequest) (done map[digest.Digest]adminapi.Event, sum adminapi.Event) {
	t.Helper()
	resp, body := f.call(t, http.MethodPost, adminapi.PrefetchPath, testToken, req)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != adminapi.NDJSON {
		t.Fatalf("prefetch %s: HTTP %d %s: %s", req.Image, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	done = map[digest.Digest]adminapi.Event{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var ev adminapi.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		switch {
		case ev.Type == adminapi.EventSummary:
			sum = ev
		case ev.Type == adminapi.EventBlob && ev.State == adminapi.StateDone:
			done[digest.Digest(ev.Digest)] = ev
		case ev.Type == adminapi.EventBlob && ev.State == adminapi.StateFailed:
			t.Errorf("blob %s failed: %s", ev.Digest, ev.Error)
		}
	}
	if sum.Type != adminapi.EventSummary {
		t.Fatalf("stream ended without a summary: %s", body)
	}
	return done, sum
}

func (f *adminFixture) status(t *testing.T) adminapi.Status {
	t.Helper()
	resp, body := f.call(t, http.MethodGet, adminapi.StatusPath, testToken, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: HTTP %d: %s", resp.StatusCode, body)
	}
	var st adminapi.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdminNeedsToken(t *testing.T) {
	f := newAdminFixture(t)
	for _, tok := range []string{"", "wrong", testToken + "x"} {
		resp, body := f.call(t, http.MethodGet, adminapi.StatusPath, tok, nil)
		wantError(t, resp, body, http.StatusUnauthorized, adminapi.CodeUnauthorized, "token")
		resp, body = f.call(t, http.MethodPost, adminapi.PrefetchPath, tok, adminapi.PrefetchRequest{Image: f.origin.Host() + "/app:v1"})
		wantError(t, resp, body, http.StatusUnauthorized, adminapi.CodeUnauthorized, "token")
	}
	if resp, body := f.call(t, http.MethodGet, adminapi.StatusPath, testToken, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("with the token: HTTP %d %s", resp.StatusCode, body)
	}
	// The registry API stays open: clients never carry the admin token.
	if resp, _ := f.call(t, http.MethodGet, "/v2/", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/v2/ without token: HTTP %d", resp.StatusCode)
	}
}

func TestPrefetchRefusals(t *testing.T) {
	f := newAdminFixture(t)
	if _, err := testimage.PushIndex(t.Context(), f.origin.Host()+"/multi:v1", []string{"linux/amd64", "linux/arm64"}, 1, 1024); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		req    adminapi.PrefetchRequest
		status int
		code   string
		msg    string
	}{
		{"unknown registry", adminapi.PrefetchRequest{Image: "ghcr.io/org/app:v1"}, http.StatusBadRequest, adminapi.CodeUnknownRegistry, "no upstream for registry ghcr.io"},
		{"bad reference", adminapi.PrefetchRequest{Image: "app@sha256:nothex"}, http.StatusBadRequest, adminapi.CodeInvalidRequest, "app@sha256:nothex"},
		{"fleet without tracker", adminapi.PrefetchRequest{Image: f.origin.Host() + "/multi:v1", Fleet: true}, http.StatusBadRequest, adminapi.CodeNoTracker, "--tracker"},
		{"no such tag", adminapi.PrefetchRequest{Image: f.origin.Host() + "/multi:nope"}, http.StatusNotFound, adminapi.CodeNotFound, "multi:nope"},
		{"no such platform", adminapi.PrefetchRequest{Image: f.origin.Host() + "/multi:v1", Platform: "windows/amd64"}, http.StatusNotFound, adminapi.CodeNoPlatform, "linux/arm64"},
		{"bad platform", adminapi.PrefetchRequest{Image: f.origin.Host() + "/multi:v1", Platform: "linux/amd64/v1/x"}, http.StatusBadRequest, adminapi.CodeInvalidRequest, "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.call(t, http.MethodPost, adminapi.PrefetchPath, testToken, tc.req)
			wantError(t, resp, body, tc.status, tc.code, tc.msg)
		})
	}
	if n := f.origin.TotalBlobGETs(); n != 0 {
		t.Errorf("refused prefetches fetched %d blobs", n)
	}
	if st := f.status(t); st.Cache.Blobs != 0 {
		t.Errorf("refused prefetches stored %d blobs", st.Cache.Blobs)
	}
}

func TestPrefetchStoresImage(t *testing.T) {
	f := newAdminFixture(t)
	pushed, err := testimage.PushImage(t.Context(), f.origin.Host()+"/app:v1", 3, 200<<10)
	if err != nil {
		t.Fatal(err)
	}
	f.origin.Reset()
	want := pushed.Blobs()
	var total int64
	for _, b := range want {
		total += b.Size
	}

	done, sum := f.prefetch(t, adminapi.PrefetchRequest{Image: pushed.Ref})
	if sum.Blobs != len(want) || len(sum.Failed) != 0 || sum.Bytes != total {
		t.Errorf("summary %+v; want %d blobs, %d bytes, none failed", sum, len(want), total)
	}
	stored := harness.StoredBlobs(t, f.data) // hashes every file
	for _, b := range want {
		if ev, ok := done[b.Digest]; !ok || ev.Size != b.Size || ev.Source != adminapi.SourceOrigin {
			t.Errorf("blob %s: done event %+v; want size %d from origin", b.Digest, ev, b.Size)
		}
		if !slices.Contains(stored, b.Digest) {
			t.Errorf("blob %s not in the store", b.Digest)
		}
		if n := f.origin.BlobGETs(b.Digest); n != 1 {
			t.Errorf("origin served blob %s %d times, want once", b.Digest, n)
		}
	}
	st := f.status(t)
	if st.Cache.Blobs != len(want) || st.Cache.Bytes != total || st.Bytes.FromOrigin != total || st.Bytes.Served != 0 {
		t.Errorf("status %+v; want %d blobs of %d bytes, all from origin, none served", st, len(want), total)
	}
	if st.Cache.QuotaBytes != 1<<30 || st.Swarm != nil || len(st.Trackers) != 0 {
		t.Errorf("status %+v; want the 1 GiB quota, no swarm, no trackers", st)
	}
	if len(st.Registries) != 2 || st.Registries[0].Host != "docker.io" || st.Registries[1].URL != f.origin.Server.URL {
		t.Errorf("registries %+v; want docker.io (default) and the origin", st.Registries)
	}

	// Again: everything is in the store, nothing goes to the origin.
	done, _ = f.prefetch(t, adminapi.PrefetchRequest{Image: pushed.Ref})
	for _, b := range want {
		if done[b.Digest].Source != adminapi.SourceCache {
			t.Errorf("second prefetch of %s: source %q, want cache", b.Digest, done[b.Digest].Source)
		}
	}
	if n := f.origin.TotalBlobGETs(); n != len(want) {
		t.Errorf("origin served %d blob GETs over two prefetches, want %d", n, len(want))
	}

	// A client pulling the blob now gets it from the store.
	resp, body := f.call(t, http.MethodGet, "/v2/app/blobs/"+want[1].Digest.String()+"?ns="+f.origin.Host(), "", nil)
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != want[1].Digest {
		t.Errorf("GET blob after prefetch: HTTP %d, digest %s", resp.StatusCode, digest.FromBytes(body))
	}
}

func TestPrefetchPicksPlatform(t *testing.T) {
	f := newAdminFixture(t)
	pushed, err := testimage.PushIndex(t.Context(), f.origin.Host()+"/multi:v1", []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	blobsOf := func(i int) []digest.Digest {
		img := pushed.Images[i]
		out := []digest.Digest{img.Config.Digest}
		for _, l := range img.Layers {
			out = append(out, l.Digest)
		}
		return out
	}
	check := func(t *testing.T, done map[digest.Digest]adminapi.Event, want []digest.Digest) {
		t.Helper()
		for _, d := range want {
			if _, ok := done[d]; !ok {
				t.Errorf("blob %s not prefetched", d)
			}
		}
		if len(done) != len(want) {
			t.Errorf("prefetched %d blobs, want %d", len(done), len(want))
		}
	}

	t.Run("named", func(t *testing.T) {
		done, _ := f.prefetch(t, adminapi.PrefetchRequest{Image: pushed.Ref, Platform: "linux/arm64"})
		check(t, done, blobsOf(1))
	})
	t.Run("mirror host default", func(t *testing.T) {
		done, _ := f.prefetch(t, adminapi.PrefetchRequest{Image: pushed.Ref}) // the fixture says linux/amd64
		check(t, done, blobsOf(0))
	})
	t.Run("all", func(t *testing.T) {
		done, _ := f.prefetch(t, adminapi.PrefetchRequest{Image: pushed.Ref, AllPlatforms: true})
		check(t, done, slices.Concat(blobsOf(0), blobsOf(1), blobsOf(2)))
	})
	t.Run("by digest", func(t *testing.T) {
		ref := f.origin.Host() + "/multi@" + pushed.Images[2].Manifest.Digest.String()
		done, _ := f.prefetch(t, adminapi.PrefetchRequest{Image: ref})
		check(t, done, blobsOf(2))
	})
	if n := f.origin.TotalBlobGETs(); n != len(pushed.Blobs()) {
		t.Errorf("origin served %d blob GETs, want each of %d blobs once", n, len(pushed.Blobs()))
	}
}

func TestStatusCountsFetchesInProgress(t *testing.T) {
	valve := harness.NewValve(64 << 10)
	f := serveMirror(t, harness.NewOriginWith(t, origin.Config{}, valve.Wrap))
	// Registered last to run first: the server's Close waits for the pull
	// the valve holds.
	t.Cleanup(valve.Open)
	pushed, err := testimage.PushImage(t.Context(), f.origin.Host()+"/app:v1", 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	layer := pushed.Images[0].Layers[0]
	// A client's pull, not a prefetch: status counts every fetch.
	pulled := make(chan error, 1)
	go func() {
		resp, err := http.Get(f.url + "/v2/app/blobs/" + layer.Digest.String() + "?ns=" + f.origin.Host())
		if err != nil {
			pulled <- err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || digest.FromBytes(body) != layer.Digest) {
			err = fmt.Errorf("HTTP %d, digest %s", resp.StatusCode, digest.FromBytes(body))
		}
		pulled <- err
	}()
	harness.Eventually(t, "status to count the held fetch", func() bool { return f.status(t).InflightFetches == 1 })
	valve.Open()
	if err := <-pulled; err != nil {
		t.Fatalf("GET blob: %v", err)
	}
	harness.Eventually(t, "status to count no fetch once the blob is in", func() bool { return f.status(t).InflightFetches == 0 })
}

// Without an admin token the admin API answers loopback clients only,
// over IPv4 and IPv6 alike.
func TestAdminWithoutTokenAnswersLoopbackOnly(t *testing.T) {
	cfg := Defaults()
	cfg.Data = t.TempDir()
	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h := m.Handler()
	for addr, want := range map[string]int{
		"127.0.0.1:4000":          http.StatusOK,
		"[::1]:4000":              http.StatusOK,
		"[::ffff:127.0.0.1]:4000": http.StatusOK,
		"192.0.2.9:4000":          http.StatusForbidden,
		"[2001:db8::9]:4000":      http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, adminapi.StatusPath, nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("status from %s: HTTP %d, want %d", addr, rec.Code, want)
		}
	}
}
