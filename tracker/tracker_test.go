package tracker_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/harness/trackertest"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// env is a tracker served on loopback in front of a real origin.
type env struct {
	origin   *harness.Origin
	data     string
	url      string
	requests atomic.Int64 // every request the origin received after setup
}

func newEnv(t *testing.T, wait time.Duration, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	e := &env{}
	e.origin = harness.NewOriginWith(t, origin.Config{}, func(next http.Handler) http.Handler {
		if wrap != nil {
			next = wrap(next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.requests.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	tr := trackertest.Start(t, e.origin, wait)
	e.url, e.data = tr.URL, tr.Data
	return e
}

// pushBlob puts size random bytes as a blob of repo on the origin.
func (e *env) pushBlob(t *testing.T, repo string, size int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	d, _, err := harness.PushBlob(t.Context(), e.origin.Server.URL, repo, bytes.NewReader(b), digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	e.origin.Reset()
	e.requests.Store(0)
	return b, d
}

func (e *env) metainfoURL(registry, repo, d string) string {
	return e.url + api.MetainfoPath + "?" + url.Values{"registry": {registry}, "repo": {repo}, "digest": {d}}.Encode()
}

func (e *env) piecesURL(registry, repo, d, from string) string {
	return e.url + api.PiecesPath + "?" + url.Values{"registry": {registry}, "repo": {repo}, "digest": {d}, "from": {from}}.Encode()
}

// open starts a GET that must answer 200 and leaves its body to read.
func open(t *testing.T, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	return resp
}

func (e *env) manifestURL(registry, repo, tag string) string {
	return e.url + api.ManifestPath + "?" + url.Values{"registry": {registry}, "repo": {repo}, "tag": {tag}}.Encode()
}

func get(t *testing.T, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// ociError decodes an OCI error body and returns its first error.
func ociError(t *testing.T, body []byte) errcode.Error {
	t.Helper()
	var v struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil || len(v.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	var code errcode.ErrorCode
	if err := code.UnmarshalText([]byte(v.Errors[0].Code)); err != nil {
		t.Fatalf("unknown OCI error code %q", v.Errors[0].Code)
	}
	return code.WithMessage(v.Errors[0].Message)
}

// tree lists every path under dir.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestBadNamesAre400WithTheirOCICodeAndTouchNothing(t *testing.T) {
	e := newEnv(t, time.Minute, nil)
	_, d := e.pushBlob(t, "app", 1000)
	reg := e.origin.Host()
	long := strings.Repeat("t", 129)
	cases := []struct {
		name, url string
		code      errcode.ErrorCode
	}{
		{"metainfo: no registry", e.metainfoURL("", "app", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: registry with a path", e.metainfoURL(reg+"/x", "app", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: registry ..", e.metainfoURL("..", "app", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: registry with a space", e.metainfoURL("bad host", "app", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: no repo", e.metainfoURL(reg, "", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: upper-case repo", e.metainfoURL(reg, "App", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: repo climbing out", e.metainfoURL(reg, "../../etc", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: repo with an empty component", e.metainfoURL(reg, "a//b", d.String()), errcode.ErrorCodeNameInvalid},
		{"metainfo: no digest", e.metainfoURL(reg, "app", ""), errcode.ErrorCodeDigestInvalid},
		{"metainfo: short digest", e.metainfoURL(reg, "app", "sha256:1234"), errcode.ErrorCodeDigestInvalid},
		{"metainfo: unknown algorithm", e.metainfoURL(reg, "app", "md5:d41d8cd98f00b204e9800998ecf8427e"), errcode.ErrorCodeDigestInvalid},
		{"metainfo: digest climbing out", e.metainfoURL(reg, "app", "sha256:../../../../etc/passwd"), errcode.ErrorCodeDigestInvalid},
		{"metainfo: upper-case hex", e.metainfoURL(reg, "app", strings.ToUpper(d.String())), errcode.ErrorCodeDigestInvalid},
		{"pieces: bad repo", e.piecesURL(reg, "../app", d.String(), "0"), errcode.ErrorCodeNameInvalid},
		{"pieces: short digest", e.piecesURL(reg, "app", "sha256:1234", "0"), errcode.ErrorCodeDigestInvalid},
		{"pieces: no from", e.piecesURL(reg, "app", d.String(), ""), api.ErrorCodeParamInvalid},
		{"pieces: negative from", e.piecesURL(reg, "app", d.String(), "-1"), api.ErrorCodeParamInvalid},
		{"pieces: from not a number", e.piecesURL(reg, "app", d.String(), "x"), api.ErrorCodeParamInvalid},
		{"manifest: no registry", e.manifestURL("", "app", "v1"), errcode.ErrorCodeNameInvalid},
		{"manifest: bad repo", e.manifestURL(reg, "../app", "v1"), errcode.ErrorCodeNameInvalid},
		{"manifest: no tag", e.manifestURL(reg, "app", ""), errcode.ErrorCodeTagInvalid},
		{"manifest: tag starting with a dash", e.manifestURL(reg, "app", "-v1"), errcode.ErrorCodeTagInvalid},
		{"manifest: tag with a slash", e.manifestURL(reg, "app", "v1/../x"), errcode.ErrorCodeTagInvalid},
		{"manifest: tag of 129 characters", e.manifestURL(reg, "app", long), errcode.ErrorCodeTagInvalid},
	}
	before := tree(t, e.data)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, c.url)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400: %s", resp.StatusCode, body)
			}
			if got := ociError(t, body); got.Code != c.code {
				t.Fatalf("code %s, want %s (%s)", got.Code, c.code, got.Message)
			}
		})
	}
	if after := tree(t, e.data); !slices.Equal(before, after) {
		t.Fatalf("bad requests changed the data dir:\nbefore %v\nafter  %v", before, after)
	}
	if n := e.requests.Load(); n != 0 {
		t.Fatalf("bad requests caused %d requests to the origin", n)
	}
}

func TestDigestUnknownAtOriginIs404BlobUnknown(t *testing.T) {
	e := newEnv(t, time.Minute, nil)
	e.pushBlob(t, "app", 1000)
	missing := digest.FromString("never pushed")

	resp, body := get(t, e.metainfoURL(e.origin.Host(), "app", missing.String()))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d, want 404: %s", resp.StatusCode, body)
	}
	got := ociError(t, body)
	if got.Code != errcode.ErrorCodeBlobUnknown {
		t.Fatalf("code %s, want BLOB_UNKNOWN", got.Code)
	}
	if !strings.Contains(got.Message, e.origin.Host()) || !strings.Contains(got.Message, missing.String()) {
		t.Fatalf("message %q names neither the upstream %s nor the digest", got.Message, e.origin.Host())
	}
	for _, p := range tree(t, e.data) {
		if strings.Contains(p, missing.Encoded()) {
			t.Fatalf("a failed fetch left %s in the data dir", p)
		}
	}
}

// The torrent is handed out while the origin still holds the body back,
// and each piece's hash is streamed as soon as its bytes arrive: with the
// body held after the first piece, /v1/pieces has sent piece 0's hash;
// released, the rest follow, the answer ends cleanly after the last, and
// every hash is the real one. The origin serves the blob once.
func TestMetainfoAndPieceHashesStreamWhileTheOriginSends(t *testing.T) {
	const size = 2 << 20
	valve := harness.NewValve(torrentmeta.PieceLength(size))
	e := newEnv(t, time.Minute, valve.Wrap)
	b, d := e.pushBlob(t, "team/app", size)

	resp, body := get(t, e.metainfoURL(e.origin.Host(), "team/app", d.String()))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metainfo while the origin holds the body back: HTTP %d, want 200: %s", resp.StatusCode, body)
	}
	if want, _ := torrentmeta.ForBlob(d, size); !bytes.Equal(body, want) {
		t.Fatal("served info bytes differ from torrentmeta.ForBlob of the blob")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-bittorrent" {
		t.Fatalf("Content-Type %q", ct)
	}

	want := harness.PieceSums(t, d, b)
	stream := open(t, e.piecesURL(e.origin.Host(), "team/app", d.String(), "0"))
	if ct := stream.Header.Get("Content-Type"); ct != api.PiecesType {
		t.Fatalf("pieces Content-Type %q, want %q", ct, api.PiecesType)
	}
	first := make([]byte, api.PieceHashSize)
	if _, err := io.ReadFull(stream.Body, first); err != nil {
		t.Fatalf("piece 0's hash while the body is held after piece 0: %v", err)
	}
	if !bytes.Equal(first, want[:api.PieceHashSize]) {
		t.Fatal("piece 0's hash is not the SHA-1 of the blob's first piece")
	}
	valve.Open()
	rest, err := io.ReadAll(stream.Body)
	if err != nil {
		t.Fatalf("stream of a blob the origin sent whole did not end cleanly: %v", err)
	}
	if got := append(first, rest...); !bytes.Equal(got, want) {
		t.Fatalf("streamed %d bytes of hashes, not the %d of the blob's pieces", len(got), len(want))
	}

	// Asked again, from a piece on: the rest at once.
	resp, body = get(t, e.piecesURL(e.origin.Host(), "team/app", d.String(), "3"))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want[3*api.PieceHashSize:]) {
		t.Fatalf("pieces from 3: HTTP %d, %d bytes, want the hashes of pieces 3 on", resp.StatusCode, len(body))
	}
	resp, body = get(t, e.piecesURL(e.origin.Host(), "team/app", d.String(), "8"))
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("pieces from the end: HTTP %d, %d bytes, want an empty answer", resp.StatusCode, len(body))
	}
	resp, body = get(t, e.piecesURL(e.origin.Host(), "team/app", d.String(), "9"))
	if resp.StatusCode != http.StatusBadRequest || ociError(t, body).Code != api.ErrorCodeParamInvalid {
		t.Fatalf("pieces from past the end: HTTP %d %s, want 400 PARAM_INVALID", resp.StatusCode, body)
	}
	if n := e.origin.BlobGETs(d); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
	metrics := e.url + "/metrics"
	if ok := harness.ScrapeMetric(t, metrics, "blobswarm_tracker_metainfo_requests_total", "result", "ok"); ok != 1 {
		t.Fatalf("metrics say %v metainfo requests ok, want 1", ok)
	}
	pieces := "blobswarm_tracker_pieces_requests_total"
	if ok, bad := harness.ScrapeMetric(t, metrics, pieces, "result", "ok"), harness.ScrapeMetric(t, metrics, pieces, "result", "error"); ok != 3 || bad != 1 {
		t.Fatalf("metrics say %v pieces streams ok and %v errors, want 3 and 1", ok, bad)
	}
}

// An origin that has not even answered: the size is unknown, so the
// metainfo request is told to come back.
func TestMetainfoIsPendingUntilTheOriginAnswers(t *testing.T) {
	valve := harness.NewHeaderValve()
	e := newEnv(t, 50*time.Millisecond, valve.Wrap)
	b, d := e.pushBlob(t, "team/app", 300<<10)
	u := e.metainfoURL(e.origin.Host(), "team/app", d.String())

	resp, body := get(t, u)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("while the origin holds its answer back: HTTP %d, want 202: %s", resp.StatusCode, body)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("202 with Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	valve.Open()
	for resp.StatusCode == http.StatusAccepted {
		time.Sleep(20 * time.Millisecond)
		resp, body = get(t, u)
	}
	if want := harness.BlobTorrent(t, d, b); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("HTTP %d, want 200 with torrentmeta.ForBlob of the blob", resp.StatusCode)
	}
	metrics := e.url + "/metrics"
	if pending := harness.ScrapeMetric(t, metrics, "blobswarm_tracker_metainfo_requests_total", "result", "pending"); pending < 1 {
		t.Fatalf("metrics say %v pending, want at least 1", pending)
	}
}

// A tracker that held the request for a second or more says ask again at
// once: the mirror hears of the torrent the moment it exists.
func TestMetainfoHeldForItsWaitSaysAskAgainNow(t *testing.T) {
	valve := harness.NewHeaderValve()
	t.Cleanup(valve.Open)
	e := newEnv(t, time.Second, valve.Wrap)
	_, d := e.pushBlob(t, "team/app", 300<<10)
	resp, body := get(t, e.metainfoURL(e.origin.Host(), "team/app", d.String()))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Retry-After") != "0" {
		t.Fatalf("HTTP %d with Retry-After %q, want 202 with 0: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// Bytes that fail the digest: a stream open while they arrive breaks
// instead of ending, the next pieces and metainfo requests get
// DIGEST_INVALID, and a mirror following the hashes with the tracker
// client hears that error.
func TestPiecesStreamBreaksWhenTheOriginsBytesFailTheDigest(t *testing.T) {
	const size = 1 << 20
	valve := harness.NewValve(torrentmeta.PieceLength(size))
	e := newEnv(t, time.Minute, func(next http.Handler) http.Handler {
		return valve.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				w = &lastByteFlipper{ResponseWriter: w, size: size}
			}
			next.ServeHTTP(w, r)
		}))
	})
	_, d := e.pushBlob(t, "app", size)

	stream := open(t, e.piecesURL(e.origin.Host(), "app", d.String(), "0"))
	first := make([]byte, api.PieceHashSize)
	if _, err := io.ReadFull(stream.Body, first); err != nil {
		t.Fatalf("piece 0's hash: %v", err)
	}
	valve.Open()
	if rest, err := io.ReadAll(stream.Body); err == nil {
		t.Fatalf("the stream of a blob whose bytes failed the digest ended cleanly after %d more bytes", len(rest))
	}

	for _, u := range []string{e.piecesURL(e.origin.Host(), "app", d.String(), "0"), e.metainfoURL(e.origin.Host(), "app", d.String())} {
		resp, body := get(t, u)
		if resp.StatusCode != http.StatusBadRequest || ociError(t, body).Code != errcode.ErrorCodeDigestInvalid {
			t.Fatalf("%s after the bytes failed: HTTP %d %s, want 400 DIGEST_INVALID", u, resp.StatusCode, body)
		}
	}
	c := trackerclient.New([]string{e.url}, trackerclient.Options{Timeout: 10 * time.Second})
	err := c.Pieces(t.Context(), oci.Blob{Registry: e.origin.Host(), Repo: "app", Digest: d}, 0, 4, func(int, [20]byte) {})
	var ce errcode.Error
	if !errors.As(err, &ce) || ce.Code != errcode.ErrorCodeDigestInvalid {
		t.Fatalf("tracker client following the hashes: %v, want DIGEST_INVALID", err)
	}
	if broken := harness.ScrapeMetric(t, e.url+"/metrics", "blobswarm_tracker_pieces_requests_total", "result", "broken"); broken != 1 {
		t.Fatalf("metrics say %v broken pieces streams, want 1", broken)
	}
	for _, p := range tree(t, e.data) {
		if strings.Contains(p, d.Encoded()) {
			t.Fatalf("a blob that failed its digest left %s in the data dir", p)
		}
	}
}

// lastByteFlipper corrupts the last byte of a blob of size bytes: every
// piece but the last is sent as it is.
type lastByteFlipper struct {
	http.ResponseWriter
	size, written int
}

func (w *lastByteFlipper) Write(b []byte) (int, error) {
	if end := w.written + len(b); end == w.size {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0xff
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += n
	return n, err
}

// A pieces stream lasts as long as the origin takes to send the blob: the
// HTTP server's write timeout, however short, does not cut it.
func TestPiecesStreamOutlastsTheServersWriteTimeout(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	b, d := harness.PushRandomBlob(t, o, "app", 1<<20)
	tr := trackertest.StartWith(t, o, time.Minute, func(_ *tracker.Config, srv *http.Server) {
		// Past before any answer is written: only a handler that lifts
		// it can answer at all.
		srv.WriteTimeout = time.Nanosecond
	})
	u := tr.URL + api.PiecesPath + "?" + api.PiecesQuery(oci.Blob{Registry: o.Host(), Repo: "app", Digest: d}, 0).Encode()
	resp, body := get(t, u)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, harness.PieceSums(t, d, b)) {
		t.Fatalf("HTTP %d, %d bytes of hashes, want 200 with the blob's", resp.StatusCode, len(body))
	}
}

// The piece hashes are the fleet's root of trust: without the fleet's
// secret, no stream.
func TestPiecesNeedTheFleetsSecret(t *testing.T) {
	o := harness.NewOrigin(t, origin.Config{})
	_, d := harness.PushRandomBlob(t, o, "app", 1000)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := trackertest.StartWith(t, o, time.Minute, func(cfg *tracker.Config, _ *http.Server) { cfg.SecretFile = secret })
	u := tr.URL + api.PiecesPath + "?" + api.PiecesQuery(oci.Blob{Registry: o.Host(), Repo: "app", Digest: d}, 0).Encode()
	resp, body := get(t, u)
	if resp.StatusCode != http.StatusUnauthorized || ociError(t, body).Code != errcode.ErrorCodeUnauthorized {
		t.Fatalf("pieces without the secret: HTTP %d %s, want 401 UNAUTHORIZED", resp.StatusCode, body)
	}
	if _, body = get(t, u, "Authorization", "Bearer "+api.NewKeys("s3cret").APIToken()); len(body) != api.PieceHashSize {
		t.Fatalf("pieces with the secret: %q, want the one piece's hash", body)
	}
	// A mirror holding the secret takes the stream as the tracker's only
	// when its trailer's signature verifies.
	c := trackerclient.New([]string{tr.URL}, trackerclient.Options{Timeout: 10 * time.Second, Secret: "s3cret"})
	var heard []byte
	err := c.Pieces(t.Context(), oci.Blob{Registry: o.Host(), Repo: "app", Digest: d}, 0, 1, func(_ int, sum [20]byte) { heard = append(heard, sum[:]...) })
	if err != nil || !bytes.Equal(heard, body) {
		t.Fatalf("Pieces with the secret = %v, heard %x; want nil and %x", err, heard, body)
	}
	if n := o.TotalBlobGETs(); n != 1 {
		t.Fatalf("origin served %d blob GETs, want the one asked with the secret", n)
	}
}

func TestManifestIsResolvedThroughTheTracker(t *testing.T) {
	e := newEnv(t, time.Minute, nil)
	p, err := testimage.PushImage(t.Context(), e.origin.Host()+"/app:v1", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	e.origin.Reset()
	const accept = "application/vnd.docker.distribution.manifest.v2+json"

	for range 3 {
		resp, body := get(t, e.manifestURL(e.origin.Host(), "app", "v1"), "Accept", accept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		if digest.FromBytes(body) != p.Top.Digest || resp.Header.Get("Docker-Content-Digest") != p.Top.Digest.String() {
			t.Fatalf("got %s (header %s), want %s", digest.FromBytes(body), resp.Header.Get("Docker-Content-Digest"), p.Top.Digest)
		}
		if ct := resp.Header.Get("Content-Type"); ct != accept {
			t.Fatalf("Content-Type %q, want %q", ct, accept)
		}
	}
	if n := e.origin.ManifestRequests(); n != 1 {
		t.Fatalf("origin answered %d manifest requests, want 1 (the tag cache)", n)
	}

	resp, body := get(t, e.manifestURL(e.origin.Host(), "app", "v2"), "Accept", accept)
	if resp.StatusCode != http.StatusNotFound || ociError(t, body).Code != errcode.ErrorCodeManifestUnknown {
		t.Fatalf("unknown tag: HTTP %d %s, want 404 MANIFEST_UNKNOWN", resp.StatusCode, body)
	}
}

// announceQuery is a well-formed announce from a peer that has everything.
func announceQuery() url.Values {
	return url.Values{
		"info_hash":  {strings.Repeat("\xab", 20)},
		"peer_id":    {"-TT0001-" + strings.Repeat("x", 12)},
		"port":       {"6881"},
		"uploaded":   {"0"},
		"downloaded": {"0"},
		"left":       {"0"},
		"compact":    {"1"},
	}
}

func TestBadAnnounceGetsABencodedFailureReason(t *testing.T) {
	e := newEnv(t, time.Minute, nil)
	cases := map[string]func(url.Values){
		"no info_hash":    func(q url.Values) { q.Del("info_hash") },
		"short info_hash": func(q url.Values) { q.Set("info_hash", "abc") },
		"no peer_id":      func(q url.Values) { q.Del("peer_id") },
		"port 0":          func(q url.Values) { q.Set("port", "0") },
		"port too big":    func(q url.Values) { q.Set("port", "70000") },
		"no left":         func(q url.Values) { q.Del("left") },
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			q := announceQuery()
			spoil(q)
			_, body := get(t, e.url+api.AnnouncePath+"?"+q.Encode())
			var v map[string]any
			if err := bencode.Unmarshal(body, &v); err != nil {
				t.Fatalf("answer is not bencoded: %q: %v", body, err)
			}
			if reason, _ := v["failure reason"].(string); reason == "" {
				t.Fatalf("answer has no failure reason: %q", body)
			}
			if _, ok := v["peers"]; ok {
				t.Fatalf("a failed announce handed out peers: %q", body)
			}
		})
	}

	// None of them joined the swarm: a good announce finds itself alone.
	_, body := get(t, e.url+api.AnnouncePath+"?"+announceQuery().Encode())
	var ok struct {
		Failure    string `bencode:"failure reason"`
		Interval   int    `bencode:"interval"`
		Complete   int    `bencode:"complete"`
		Incomplete int    `bencode:"incomplete"`
	}
	if err := bencode.Unmarshal(body, &ok); err != nil || ok.Failure != "" || ok.Interval < 1 {
		t.Fatalf("good announce answered %q (%v)", body, err)
	}
	if ok.Complete+ok.Incomplete != 1 {
		t.Fatalf("swarm has %d complete and %d incomplete peers after one good announce, want 1 in all", ok.Complete, ok.Incomplete)
	}
}
