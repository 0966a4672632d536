package seeder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
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

	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/superseed"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/tracker/seeder"
)

// env is a seeder in front of a real origin registry.
type env struct {
	origin *harness.Origin
	store  *store.Store
	seeder *seeder.Seeder
}

func newEnv(t *testing.T, cfg seeder.Config, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	o := harness.NewOriginWith(t, origin.Config{}, wrap)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw, err := superseed.New(superseed.Config{ListenAddr: "127.0.0.1:0"}, st, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	u, err := url.Parse(o.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	up := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{o.Host(): {Host: o.Host(), URL: u}}})
	return &env{origin: o, store: st, seeder: seeder.New(cfg, st, sw, up, log)}
}

// push puts size random bytes as a blob of repo on the origin.
func (e *env) push(t *testing.T, repo string, size int) ([]byte, oci.Blob) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	d, _, err := harness.PushBlob(t.Context(), e.origin.Server.URL, repo, bytes.NewReader(b), digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	e.origin.Reset()
	return b, oci.Blob{Registry: e.origin.Host(), Repo: repo, Digest: d}
}

// wantInfo is what any node holding b computes as its torrent.
func wantInfo(t *testing.T, d digest.Digest, b []byte) []byte {
	t.Helper()
	info, _, err := torrentmeta.Build(d, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// storedFiles lists every file under the store's root, torrents included.
func storedFiles(t *testing.T, st *store.Store) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(st.Root(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(path, st.Root()))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// blobRequests counts every GET of one blob that reaches the origin,
// whatever its answer (the origin's own counters see only successes).
type blobRequests struct {
	d digest.Digest
	n atomic.Int64
}

func (c *blobRequests) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+c.d.String()) {
			c.n.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

const long = time.Minute // a wait that only a hang exhausts

func TestConcurrentAsksFetchOnceAndAgreeOnTheTorrent(t *testing.T) {
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 3<<20)

	// Every asker joins while the origin holds the blob back, so they all
	// meet the same fetch rather than a finished one.
	const askers = 20
	var joined, done sync.WaitGroup
	infos := make([][]byte, askers)
	errs := make([]error, askers)
	joined.Add(askers)
	done.Add(askers)
	for i := range askers {
		go func() {
			defer done.Done()
			_, err := e.seeder.Metainfo(t.Context(), ref, 0)
			joined.Done()
			if !errors.Is(err, seeder.ErrPending) {
				errs[i] = err
				return
			}
			infos[i], errs[i] = e.seeder.Metainfo(t.Context(), ref, long)
		}()
	}
	joined.Wait()
	valve.Open()
	done.Wait()

	want := wantInfo(t, ref.Digest, b)
	for i := range askers {
		if errs[i] != nil {
			t.Fatalf("asker %d: %v", i, errs[i])
		}
		if !bytes.Equal(infos[i], want) {
			t.Fatalf("asker %d got info bytes that differ from torrentmeta.Build of the blob", i)
		}
	}
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times to %d askers, want once", n, askers)
	}
	f, err := e.store.Open(ref.Digest)
	if err != nil {
		t.Fatalf("seeded blob not in the store: %v", err)
	}
	f.Close()
}

// Every metainfo request asks about its blob, so one the seeder already
// serves must be answered from memory, not from the info-bytes file.
func TestSeededBlobIsAnsweredWithoutReadingTheDisk(t *testing.T) {
	e := newEnv(t, seeder.Config{}, nil)
	b, ref := e.push(t, "app", 1<<20)
	if _, err := e.seeder.Metainfo(t.Context(), ref, long); err != nil {
		t.Fatal(err)
	}
	var removed int
	for _, f := range storedFiles(t, e.store) {
		if strings.Contains(f, "torrents") {
			if err := os.Remove(filepath.Join(e.store.Root(), f)); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("removed %d info-bytes files, want the blob's one", removed)
	}

	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatalf("a seeded blob without its info-bytes file: %v", err)
	}
	if !bytes.Equal(info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

func TestBlobUnknownAtOriginIsRememberedForFailureTTL(t *testing.T) {
	const ttl = time.Second
	missing := digest.FromString("not pushed")
	reqs := &blobRequests{d: missing}
	e := newEnv(t, seeder.Config{FailureTTL: ttl}, reqs.wrap)
	e.push(t, "app", 1000) // the repository exists; the blob does not
	ref := oci.Blob{Registry: e.origin.Host(), Repo: "app", Digest: missing}

	start := time.Now()
	_, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err == nil {
		t.Fatal("Metainfo of a blob the origin lacks succeeded")
	}
	ce, internal := upstream.ClientError(err, errcode.ErrorCodeBlobUnknown)
	if internal || ce.Code != errcode.ErrorCodeBlobUnknown || ce.Code.Descriptor().HTTPStatusCode != http.StatusNotFound {
		t.Fatalf("error %v maps to %v (from upstream: %v), want 404 BLOB_UNKNOWN", err, ce, !internal)
	}
	if !strings.Contains(ce.Message, e.origin.Host()) {
		t.Fatalf("message %q does not name the upstream %s", ce.Message, e.origin.Host())
	}

	// Ask until the origin sees a second request: not before the failure
	// is ttl old, and soon after.
	for reqs.n.Load() < 2 {
		if time.Since(start) > ttl+10*time.Second {
			t.Fatalf("failure still repeated %s after it happened; FailureTTL is %s", time.Since(start), ttl)
		}
		_, err := e.seeder.Metainfo(t.Context(), ref, long)
		if err == nil {
			t.Fatal("a remembered failure turned into success")
		}
		if reqs.n.Load() >= 2 && time.Since(start) < ttl {
			t.Fatalf("origin asked again %s after the failure, before FailureTTL %s", time.Since(start), ttl)
		}
		if reqs.n.Load() < 2 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if files := storedFiles(t, e.store); len(files) != 0 {
		t.Fatalf("failed fetches left files in the store: %v", files)
	}
}

func TestSlowOriginAnswersPendingThenInfo(t *testing.T) {
	valve := harness.NewValve(64 << 10)
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 1<<20)

	if _, err := e.seeder.Metainfo(t.Context(), ref, 100*time.Millisecond); !errors.Is(err, seeder.ErrPending) {
		t.Fatalf("Metainfo while the origin holds the blob back: %v, want ErrPending", err)
	}
	valve.Open()
	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

// flipWriter corrupts the first byte of a response body.
type flipWriter struct {
	http.ResponseWriter
	flipped bool
}

func (w *flipWriter) Write(b []byte) (int, error) {
	if !w.flipped && len(b) > 0 {
		w.flipped = true
		c := bytes.Clone(b)
		c[0] ^= 0xff
		return w.ResponseWriter.Write(c)
	}
	return w.ResponseWriter.Write(b)
}

func TestCorruptOriginBlobIsNeitherStoredNorSeeded(t *testing.T) {
	var corrupt atomic.Bool
	e := newEnv(t, seeder.Config{FailureTTL: time.Nanosecond}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if corrupt.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				w = &flipWriter{ResponseWriter: w}
			}
			next.ServeHTTP(w, r)
		})
	})
	b, ref := e.push(t, "app", 300<<10)

	corrupt.Store(true)
	if _, err := e.seeder.Metainfo(t.Context(), ref, long); err == nil {
		t.Fatal("Metainfo succeeded for bytes that do not match the digest")
	}
	if files := storedFiles(t, e.store); len(files) != 0 {
		t.Fatalf("corrupt fetch left files in the store: %v", files)
	}

	corrupt.Store(false)
	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatalf("Metainfo once the origin sends the right bytes: %v", err)
	}
	if !bytes.Equal(info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
}

func TestCancelledAskerLeavesTheFetchRunning(t *testing.T) {
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 500<<10)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.seeder.Metainfo(ctx, ref, long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Metainfo with a cancelled context: %v, want context.Canceled", err)
	}
	valve.Open()
	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

func TestFailureInOneRepositoryDoesNotAnswerForAnother(t *testing.T) {
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{FailureTTL: time.Minute}, valve.Wrap)
	b, ref := e.push(t, "app", 200<<10)
	e.push(t, "other", 10) // a repository without the blob
	wrong := ref
	wrong.Repo = "other"

	// The wrong repository's fetch is in flight when the right one asks.
	if _, err := e.seeder.Metainfo(t.Context(), wrong, 0); !errors.Is(err, seeder.ErrPending) {
		t.Fatalf("Metainfo while the origin holds its answer back: %v, want ErrPending", err)
	}
	type result struct {
		info []byte
		err  error
	}
	right := make(chan result, 1)
	go func() {
		info, err := e.seeder.Metainfo(t.Context(), ref, long)
		right <- result{info, err}
	}()
	valve.Open()
	if _, err := e.seeder.Metainfo(t.Context(), wrong, long); err == nil {
		t.Fatal("Metainfo from a repository without the blob succeeded")
	}
	r := <-right
	if r.err != nil {
		t.Fatalf("Metainfo from the repository that has the blob: %v", r.err)
	}
	if !bytes.Equal(r.info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
}

func TestRememberedFailureIsPerRepository(t *testing.T) {
	e := newEnv(t, seeder.Config{FailureTTL: time.Minute}, nil)
	b, ref := e.push(t, "app", 200<<10)
	e.push(t, "other", 10)
	wrong := ref
	wrong.Repo = "other"

	if _, err := e.seeder.Metainfo(t.Context(), wrong, long); err == nil {
		t.Fatal("Metainfo from a repository without the blob succeeded")
	}
	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatalf("Metainfo from the repository that has the blob, after a failure elsewhere: %v", err)
	}
	if !bytes.Equal(info, wantInfo(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.Build of the blob")
	}
}
