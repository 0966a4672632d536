package client_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/harness/trackertest"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// startTracker serves a real tracker in front of origin o that answers 202
// for a blob whose size the origin has not said within wait.
func startTracker(t *testing.T, o *harness.Origin, wait time.Duration) string {
	return trackertest.Start(t, o, wait).URL
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string { return "http://" + harness.FreeAddr(t) }

// failingURL is a replica that answers every request with 503.
func failingURL(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "redis down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestFailsOverToALiveReplica(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	live := startTracker(t, o, time.Minute)
	b, d := harness.PushRandomBlob(t, o, "app", 100<<10)
	o.Reset()
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	c := trackerclient.New([]string{deadURL(t), failingURL(t), live + "/"}, trackerclient.Options{Timeout: 10 * time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	info, err := c.Metainfo(ctx, oci.Blob{Registry: o.Host(), Repo: "app", Digest: d})
	if err != nil {
		t.Fatalf("Metainfo with one live replica of three: %v", err)
	}
	if !bytes.Equal(info, harness.BlobTorrent(t, d, b)) {
		t.Fatal("info bytes differ from torrentmeta.ForBlob of the blob")
	}
	man, err := c.Manifest(ctx, o.Host(), "app", "v1", []string{string(img.Top.MediaType)})
	if err != nil {
		t.Fatalf("Manifest with one live replica of three: %v", err)
	}
	if digest.FromBytes(man.Data) != img.Top.Digest || man.Digest != img.Top.Digest || man.MediaType != string(img.Top.MediaType) {
		t.Fatalf("manifest %s (%s), want %s (%s)", man.Digest, man.MediaType, img.Top.Digest, img.Top.MediaType)
	}
}

func TestNoLiveReplicaIsUnavailable(t *testing.T) {
	c := trackerclient.New([]string{deadURL(t), failingURL(t)}, trackerclient.Options{Timeout: 10 * time.Second})
	_, err := c.Metainfo(t.Context(), oci.Blob{Registry: "registry.example", Repo: "app", Digest: digest.FromString("x")})
	if !errors.Is(err, trackerclient.ErrUnavailable) {
		t.Fatalf("Metainfo with no live replica: %v, want ErrUnavailable", err)
	}
	if _, err := c.Manifest(t.Context(), "registry.example", "app", "v1", nil); !errors.Is(err, trackerclient.ErrUnavailable) {
		t.Fatalf("Manifest with no live replica: %v, want ErrUnavailable", err)
	}
}

func TestWaitsThroughPendingAnswers(t *testing.T) {
	// The origin says nothing, not even the blob's size.
	valve := harness.NewHeaderValve()
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	live := startTracker(t, o, 0)
	b, d := harness.PushRandomBlob(t, o, "app", 1<<20)
	o.Reset()
	c := trackerclient.New([]string{live}, trackerclient.Options{Timeout: 10 * time.Second})

	type result struct {
		info []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		info, err := c.Metainfo(ctx, oci.Blob{Registry: o.Host(), Repo: "app", Digest: d})
		done <- result{info, err}
	}()
	// Hold the origin until the client has been told to wait twice.
	pending := func() float64 {
		return harness.ScrapeMetric(t, live+"/metrics", "blobswarm_tracker_metainfo_requests_total", "result", "pending")
	}
	for pending() < 2 {
		select {
		case r := <-done:
			t.Fatalf("Metainfo returned while the origin held its answer back: %v", r.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	valve.Open()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(r.info, harness.BlobTorrent(t, d, b)) {
		t.Fatal("info bytes differ from torrentmeta.ForBlob of the blob")
	}
	if n := o.BlobGETs(d); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

// Retry-After: 0 is a tracker that held the request already: the client
// asks again at once instead of sleeping a second per answer.
func TestAsksAgainAtOnceWhenToldZero(t *testing.T) {
	info := harness.BlobTorrent(t, digest.FromString("x"), []byte("x"))
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if asked.Add(1) <= 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Write(info)
	}))
	t.Cleanup(srv.Close)
	c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 10 * time.Second})
	// Three one-second sleeps would not fit.
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	got, err := c.Metainfo(ctx, oci.Blob{Registry: "registry.example", Repo: "app", Digest: digest.FromString("x")})
	if err != nil || !bytes.Equal(got, info) || asked.Load() != 4 {
		t.Fatalf("Metainfo after three 202s with Retry-After 0: %v after %d asks, want the info after 4", err, asked.Load())
	}
}

func TestWaitingEndsWithTheContext(t *testing.T) {
	valve := harness.NewHeaderValve()
	t.Cleanup(valve.Open)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	live := startTracker(t, o, 0)
	_, d := harness.PushRandomBlob(t, o, "app", 1000)
	o.Reset()
	c := trackerclient.New([]string{live}, trackerclient.Options{Timeout: 10 * time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Metainfo(ctx, oci.Blob{Registry: o.Host(), Repo: "app", Digest: d}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Metainfo past its deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestReturnsTheTrackersOCIErrorCode(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	live := startTracker(t, o, time.Minute)
	harness.PushRandomBlob(t, o, "app", 1000)
	o.Reset()
	c := trackerclient.New([]string{deadURL(t), live}, trackerclient.Options{Timeout: 10 * time.Second})

	check := func(what string, err error, want errcode.ErrorCode) {
		t.Helper()
		var oci errcode.Error
		if !errors.As(err, &oci) || oci.Code != want {
			t.Fatalf("%s: %v, want the tracker's %s", what, err, want)
		}
		if errors.Is(err, trackerclient.ErrUnavailable) {
			t.Fatalf("%s: a tracker that answered counts as unavailable: %v", what, err)
		}
	}
	_, err := c.Metainfo(t.Context(), oci.Blob{Registry: o.Host(), Repo: "app", Digest: digest.FromString("never pushed")})
	check("blob the origin lacks", err, errcode.ErrorCodeBlobUnknown)
	_, err = c.Metainfo(t.Context(), oci.Blob{Registry: o.Host(), Repo: "App", Digest: digest.FromString("x")})
	check("bad repository", err, errcode.ErrorCodeNameInvalid)
	_, err = c.Manifest(t.Context(), o.Host(), "app", "-bad", nil)
	check("bad tag", err, errcode.ErrorCodeTagInvalid)
	_, err = c.Manifest(t.Context(), o.Host(), "app", "v9", nil)
	check("tag the origin lacks", err, errcode.ErrorCodeManifestUnknown)
}

func TestBareErrorCodeKeepsItsCode(t *testing.T) {
	// A replica behind a proxy that refuses the mirror, answering with the
	// code's default message, which distribution decodes as a bare code.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		errcode.ServeJSON(w, errcode.ErrorCodeDenied)
	}))
	t.Cleanup(srv.Close)
	c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 10 * time.Second})
	_, err := c.Metainfo(t.Context(), oci.Blob{Registry: "registry.example", Repo: "app", Digest: digest.FromString("x")})
	var oci errcode.Error
	if !errors.As(err, &oci) || oci.Code != errcode.ErrorCodeDenied {
		t.Fatalf("Metainfo refused with DENIED: %v", err)
	}
}

// With a secret, every request carries the API credential made from it
// and never the secret itself; announce URLs hold nothing, and announces
// get the announce credential in a header. A tracker that
// still refuses counts as unavailable, so the mirror goes to the origin
// rather than failing its client.
func TestSecret(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized)
	}))
	t.Cleanup(srv.Close)
	c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 10 * time.Second, Secret: "s3cret"})
	_, err := c.Metainfo(t.Context(), oci.Blob{Registry: "registry.example", Repo: "app", Digest: digest.FromString("x")})
	if !errors.Is(err, trackerclient.ErrUnavailable) || !strings.Contains(err.Error(), "tracker-secret-file") {
		t.Fatalf("refused metainfo: %v, want ErrUnavailable naming tracker-secret-file", err)
	}
	want := "Bearer " + api.NewKeys("s3cret").APIToken()
	if len(got) != 1 || got[0] != want || strings.Contains(got[0], "s3cret") {
		t.Fatalf("Authorization headers sent: %q, want %q", got, want)
	}
	if u := c.AnnounceURLs(); len(u) != 1 || u[0] != srv.URL+"/announce" {
		t.Fatalf("announce URLs = %q, want the bare announce URL", u)
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/announce?info_hash=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AuthorizeAnnounce(req); err != nil {
		t.Fatal(err)
	}
	if h, want := req.Header.Get(api.AnnounceHeader), api.NewKeys("s3cret").AnnounceToken(); h != want {
		t.Errorf("announce carries %q, want the announce credential %q", h, want)
	}
}

// With the fleet's secret, a mirror uses only answers the tracker signed
// for the very request: a real tracker's verify; the same answers with
// the signature stripped, or an earlier answer replayed for a new request
// (a man in the middle), count as a failed replica.
func TestOnlySignedAnswersAreUsed(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	real := trackertest.StartWith(t, o, time.Minute, func(cfg *tracker.Config, _ *http.Server) { cfg.SecretFile = secret }).URL
	target, err := url.Parse(real)
	if err != nil {
		t.Fatal(err)
	}
	stripped := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error { resp.Header.Del(api.SignatureHeader); return nil },
	})
	t.Cleanup(stripped.Close)
	var (
		mu    sync.Mutex
		first *httptest.ResponseRecorder
	)
	replayed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = httptest.NewRecorder()
			(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}).ServeHTTP(first, r)
		}
		maps.Copy(w.Header(), first.Header())
		w.WriteHeader(first.Code)
		w.Write(first.Body.Bytes())
	}))
	t.Cleanup(replayed.Close)

	manifest := func(base string) error {
		c := trackerclient.New([]string{base}, trackerclient.Options{Timeout: 10 * time.Second, Secret: "s3cret"})
		m, err := c.Manifest(t.Context(), o.Host(), "app", "v1", nil)
		if err == nil && m.Digest != img.Top.Digest {
			t.Fatalf("manifest through %s: %s, want %s", base, m.Digest, img.Top.Digest)
		}
		return err
	}
	if err := manifest(real); err != nil {
		t.Fatalf("signed answer of the tracker: %v", err)
	}
	if err := manifest(replayed.URL); err != nil {
		t.Fatalf("the first answer through the replaying proxy: %v", err)
	}
	for name, base := range map[string]string{"signature stripped": stripped.URL, "answer replayed": replayed.URL} {
		if err := manifest(base); !errors.Is(err, trackerclient.ErrUnavailable) || !errors.Is(err, trackerclient.ErrUnsigned) {
			t.Errorf("%s: %v, want ErrUnavailable and ErrUnsigned", name, err)
		}
	}
}
