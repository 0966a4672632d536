package seeder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	sw     *superseed.Server
	seeds  *seeds
	seeder *seeder.Seeder
}

func newEnv(t *testing.T, cfg seeder.Config, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	o := harness.NewOriginWith(t, origin.Config{}, wrap)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{origin: o, store: st}
	e.restart(t, cfg)
	return e
}

// restart starts a new seeder and super-seeder on the same store, as a
// restarted tracker would.
func (e *env) restart(t *testing.T, cfg seeder.Config) {
	t.Helper()
	if e.sw != nil {
		e.sw.Close()
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw, err := superseed.New(superseed.Config{ListenAddr: "127.0.0.1:0"}, e.store, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	u, err := url.Parse(e.origin.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	up := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{e.origin.Host(): {Host: e.origin.Host(), URL: u}}})
	e.sw, e.seeds = sw, &seeds{Server: sw}
	e.seeder = seeder.New(cfg, e.store, e.seeds, up, log)
}

// seeds is the super-seeder as the seeder sees it (the tracker adapts it
// the same way), recording in order which pieces of which blob it was
// told are there.
type seeds struct {
	*superseed.Server
	mu    sync.Mutex
	haves []have
}

type have struct {
	d digest.Digest
	i int
}

func (s *seeds) Drop(d digest.Digest) { s.Server.Drop(d) }

func (s *seeds) SeedGrowing(d digest.Digest, info []byte, r io.ReaderAt) (seeder.Growing, error) {
	g, err := s.Server.SeedGrowing(d, info, r)
	if err != nil {
		return nil, err
	}
	return &recorded{Growing: g, s: s, d: d}, nil
}

type recorded struct {
	*superseed.Growing
	s *seeds
	d digest.Digest
}

func (r *recorded) Have(i int) {
	r.s.mu.Lock()
	r.s.haves = append(r.s.haves, have{r.d, i})
	r.s.mu.Unlock()
	r.Growing.Have(i)
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

// allSums follows the blob's piece hashes to the last one.
func allSums(t *testing.T, s *seeder.Seeder, ref oci.Blob) ([]byte, error) {
	t.Helper()
	h, err := s.Hashes(t.Context(), ref)
	if err != nil {
		return nil, err
	}
	var sums []byte
	for len(sums) < h.Pieces()*20 {
		more, err := h.Next(t.Context(), len(sums)/20)
		if err != nil {
			return sums, err
		}
		sums = append(sums, more...)
	}
	return sums, nil
}

// checkSeeded checks the seeder answers for the blob with its torrent and
// the real hashes of its pieces.
func checkSeeded(t *testing.T, s *seeder.Seeder, ref oci.Blob, b []byte) {
	t.Helper()
	info, err := s.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, harness.BlobTorrent(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.ForBlob of the blob")
	}
	sums, err := allSums(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sums, harness.PieceSums(t, ref.Digest, b)) {
		t.Fatal("piece hashes differ from those of torrentmeta.Build of the blob")
	}
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

	// Every asker is answered while the origin holds the body back, so
	// they all meet the same fetch rather than a finished one.
	const askers = 20
	var done sync.WaitGroup
	infos := make([][]byte, askers)
	errs := make([]error, askers)
	done.Add(askers)
	for i := range askers {
		go func() {
			defer done.Done()
			infos[i], errs[i] = e.seeder.Metainfo(t.Context(), ref, long)
		}()
	}
	done.Wait()
	for i := range askers {
		if errs[i] != nil {
			t.Fatalf("asker %d: %v", i, errs[i])
		}
		if !bytes.Equal(infos[i], harness.BlobTorrent(t, ref.Digest, b)) {
			t.Fatalf("asker %d got info bytes that differ from torrentmeta.ForBlob of the blob", i)
		}
	}
	valve.Open()
	checkSeeded(t, e.seeder, ref, b)
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times to %d askers, want once", n, askers)
	}
	f, err := e.store.Open(ref.Digest)
	if err != nil {
		t.Fatalf("seeded blob not in the store: %v", err)
	}
	f.Close()
}

// downShared is the replicas' shared map while its Redis is unreachable.
type downShared struct{}

var errRedisDown = errors.New("redis: connection refused")

func (downShared) Get(context.Context, digest.Digest) ([]byte, []byte, error) {
	return nil, nil, errRedisDown
}

func (downShared) Put(context.Context, digest.Digest, []byte, []byte) error { return errRedisDown }

func (downShared) Delete(context.Context, digest.Digest) error { return errRedisDown }

// A blob that arrives while the shared map is down (its Redis failing
// over) is seeded all the same: its hashes reach the end, and later asks
// are answered without the origin.
func TestBlobArrivingWhileSharedMapIsDownIsSeeded(t *testing.T) {
	e := newEnv(t, seeder.Config{Shared: downShared{}}, nil)
	b, ref := e.push(t, "app", 3<<20)
	checkSeeded(t, e.seeder, ref, b)
	checkSeeded(t, e.seeder, ref, b)
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

// The torrent is a function of the digest and the size: the seeder has it
// as soon as the origin's headers say the size, and hands it out while
// the body is still held back.
func TestMetainfoAnswersWhileTheOriginHoldsTheBody(t *testing.T) {
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 1<<20)

	info, err := e.seeder.Metainfo(t.Context(), ref, long)
	if err != nil {
		t.Fatalf("Metainfo while the origin holds the body back: %v", err)
	}
	if !bytes.Equal(info, harness.BlobTorrent(t, ref.Digest, b)) {
		t.Fatal("info bytes differ from torrentmeta.ForBlob of the blob")
	}
	if _, err := e.store.Stat(ref.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob in the store before its body was sent: %v", err)
	}
	valve.Open()
	checkSeeded(t, e.seeder, ref, b)
}

// Each piece's hash is known as soon as its bytes are: with the origin
// holding the body back after the first piece, piece 0's hash is there
// and piece 1's is not; released, every hash arrives, and they are the
// real hashes of the blob's pieces.
func TestPieceHashesArriveWithTheBody(t *testing.T) {
	const size = 1 << 20
	valve := harness.NewValve(torrentmeta.PieceLength(size))
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", size)
	want := harness.PieceSums(t, ref.Digest, b)

	h, err := e.seeder.Hashes(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if h.Pieces() != 4 {
		t.Fatalf("%d pieces, want 4", h.Pieces())
	}
	first, err := h.Next(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, want[:20]) {
		t.Fatalf("while the body is held after piece 0: hashes %x, want piece 0's alone", first)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := h.Next(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("piece 1's hash before its bytes were sent: %x, %v", got, err)
	}
	valve.Open()
	sums, err := allSums(t, e.seeder, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sums, want) {
		t.Fatal("piece hashes differ from those of torrentmeta.Build of the blob")
	}
}

// Every metainfo and pieces request asks about its blob, so one the seeder
// already serves must be answered from memory, not from the disk.
func TestSeededBlobIsAnsweredWithoutReadingTheDisk(t *testing.T) {
	e := newEnv(t, seeder.Config{}, nil)
	b, ref := e.push(t, "app", 1<<20)
	checkSeeded(t, e.seeder, ref, b)
	var removed int
	for _, f := range storedFiles(t, e.store) {
		if strings.Contains(f, "pieces") {
			if err := os.Remove(filepath.Join(e.store.Root(), f)); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("removed %d piece-hash files, want the blob's one", removed)
	}
	checkSeeded(t, e.seeder, ref, b)
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times, want once", n)
	}
}

// A restarted seeder answers for a blob it stored before from the disk,
// without the origin: the torrent from the digest and the stored size, the
// hashes as saved, or read again from the stored blob when they were lost.
func TestRestartedSeederAnswersFromTheStore(t *testing.T) {
	e := newEnv(t, seeder.Config{}, nil)
	b, ref := e.push(t, "app", 1<<20+5)
	checkSeeded(t, e.seeder, ref, b)

	e.restart(t, seeder.Config{})
	checkSeeded(t, e.seeder, ref, b)

	if err := os.RemoveAll(filepath.Join(e.store.Root(), "pieces")); err != nil {
		t.Fatal(err)
	}
	e.restart(t, seeder.Config{})
	checkSeeded(t, e.seeder, ref, b)
	if n := e.origin.BlobGETs(ref.Digest); n != 1 {
		t.Fatalf("origin served the blob %d times across restarts, want once", n)
	}
	if len(e.sw.Seeding()) != 1 {
		t.Fatal("the restarted seeder does not seed the stored blob")
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

// An origin that has not even sent its headers: the seeder does not know
// the size, so asks within metainfo-wait are told to come back.
func TestSilentOriginAnswersPendingThenInfo(t *testing.T) {
	valve := harness.NewHeaderValve()
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 1<<20)

	if _, err := e.seeder.Metainfo(t.Context(), ref, 100*time.Millisecond); !errors.Is(err, seeder.ErrPending) {
		t.Fatalf("Metainfo while the origin holds its answer back: %v, want ErrPending", err)
	}
	valve.Open()
	checkSeeded(t, e.seeder, ref, b)
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

// Bytes that fail the digest: the pieces stream breaks rather than ends,
// the failure answers metainfo and pieces requests for FailureTTL, the
// torrent is no longer seeded, nothing is stored, and the next fetch
// starts clean.
func TestCorruptOriginBlobIsNeitherStoredNorSeeded(t *testing.T) {
	var corrupt atomic.Bool
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{FailureTTL: 3 * time.Second}, func(next http.Handler) http.Handler {
		return valve.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if corrupt.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				w = &flipWriter{ResponseWriter: w}
			}
			next.ServeHTTP(w, r)
		}))
	})
	b, ref := e.push(t, "app", 300<<10)

	corrupt.Store(true)
	isDigestInvalid := func(err error) bool {
		var e errcode.Error
		return errors.As(err, &e) && e.Code == errcode.ErrorCodeDigestInvalid
	}
	// The torrent is known from the headers, before the bytes fail.
	if _, err := e.seeder.Metainfo(t.Context(), ref, long); err != nil {
		t.Fatal(err)
	}
	valve.Open()
	sums, err := allSums(t, e.seeder, ref)
	if !isDigestInvalid(err) {
		t.Fatalf("pieces of bytes that fail the digest: %d hashes, %v; want a break with DIGEST_INVALID", len(sums)/20, err)
	}
	if _, err := e.seeder.Metainfo(t.Context(), ref, long); !isDigestInvalid(err) {
		t.Fatalf("Metainfo after the bytes failed: %v, want DIGEST_INVALID", err)
	}
	if _, err := e.seeder.Hashes(t.Context(), ref); !isDigestInvalid(err) {
		t.Fatalf("Hashes after the bytes failed: %v, want DIGEST_INVALID", err)
	}
	if files := storedFiles(t, e.store); len(files) != 0 {
		t.Fatalf("corrupt fetch left files in the store: %v", files)
	}
	if n := len(e.sw.Seeding()); n != 0 {
		t.Fatalf("%d torrents seeded after the only blob failed", n)
	}

	corrupt.Store(false)
	harness.Eventually(t, "a fetch after FailureTTL", func() bool {
		_, err := e.seeder.Metainfo(t.Context(), ref, long)
		return err == nil
	})
	checkSeeded(t, e.seeder, ref, b)
}

func TestCancelledAskerLeavesTheFetchRunning(t *testing.T) {
	valve := harness.NewHeaderValve()
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 500<<10)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.seeder.Metainfo(ctx, ref, long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Metainfo with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := e.seeder.Hashes(ctx, ref); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hashes with a cancelled context: %v, want context.Canceled", err)
	}
	valve.Open()
	checkSeeded(t, e.seeder, ref, b)
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
		sums []byte
		err  error
	}
	right := make(chan result, 1)
	go func() {
		sums, err := allSums(t, e.seeder, ref)
		right <- result{sums, err}
	}()
	valve.Open()
	if _, err := e.seeder.Metainfo(t.Context(), wrong, long); err == nil {
		t.Fatal("Metainfo from a repository without the blob succeeded")
	}
	r := <-right
	if r.err != nil {
		t.Fatalf("piece hashes from the repository that has the blob: %v", r.err)
	}
	if !bytes.Equal(r.sums, harness.PieceSums(t, ref.Digest, b)) {
		t.Fatal("piece hashes differ from those of torrentmeta.Build of the blob")
	}
	checkSeeded(t, e.seeder, ref, b)
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
	checkSeeded(t, e.seeder, ref, b)
}

// Blobs asked for together are read from the origin a few at a time, in
// the order they were asked for: with one at a time, every piece of the
// first arrives before any piece of the second.
func TestOriginBodiesAreReadInTheOrderAsked(t *testing.T) {
	valve := harness.NewValve(0)
	e := newEnv(t, seeder.Config{OriginReads: 1}, valve.Wrap)
	first, a := e.push(t, "app", 4<<20)
	second, b := e.push(t, "app", 4<<20)
	// Both torrents are handed out while the origin holds the bodies.
	for _, ref := range []oci.Blob{a, b} {
		if _, err := e.seeder.Metainfo(t.Context(), ref, long); err != nil {
			t.Fatal(err)
		}
	}
	valve.Open()
	checkSeeded(t, e.seeder, b, second)
	checkSeeded(t, e.seeder, a, first)
	e.seeds.mu.Lock()
	defer e.seeds.mu.Unlock()
	var order []digest.Digest
	for _, h := range e.seeds.haves {
		if len(order) == 0 || order[len(order)-1] != h.d {
			order = append(order, h.d)
		}
	}
	if !slices.Equal(order, []digest.Digest{a.Digest, b.Digest}) {
		t.Fatalf("pieces arrived in %d runs of one blob (the first from the blob asked first: %v), want all of the first blob's, then all of the second's",
			len(order), order[0] == a.Digest)
	}
}

// A small blob (an image's config, say) is read at once, even while a big
// one asked before it holds the only turn to read from the origin.
func TestSmallBodiesAreReadOutOfTurn(t *testing.T) {
	valve := harness.NewValve(64 << 10)
	t.Cleanup(valve.Open)
	e := newEnv(t, seeder.Config{OriginReads: 1}, valve.Wrap)
	_, big := e.push(t, "app", 4<<20)
	config, small := e.push(t, "app", 2<<10)
	for _, ref := range []oci.Blob{big, small} {
		if _, err := e.seeder.Metainfo(t.Context(), ref, long); err != nil {
			t.Fatal(err)
		}
	}
	want := harness.PieceSums(t, small.Digest, config)
	done := make(chan error, 1)
	go func() {
		sums, err := allSums(t, e.seeder, small)
		if err == nil && !bytes.Equal(sums, want) {
			err = errors.New("piece hashes differ from those of the blob")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the small blob waited for the big one's turn, held by the origin")
	}
}

// With one origin fetch and one place in its queue, a third blob finds
// the seeder busy and starts nothing; the two taken finish in their turn.
func TestOriginQueueFullIsBusy(t *testing.T) {
	valve := harness.NewValve(64 << 10)
	t.Cleanup(valve.Open)
	e := newEnv(t, seeder.Config{OriginFetches: 1, OriginQueue: 1}, valve.Wrap)
	first, a := e.push(t, "app", 4<<20)
	second, b := e.push(t, "app", 4<<20)
	_, c := e.push(t, "app", 4<<20)
	if _, err := e.seeder.Metainfo(t.Context(), a, long); err != nil {
		t.Fatal(err)
	}
	if _, err := e.seeder.Metainfo(t.Context(), b, 0); !errors.Is(err, seeder.ErrPending) {
		t.Fatalf("Metainfo of the blob waiting for the one fetch = %v, want ErrPending", err)
	}
	if _, err := e.seeder.Metainfo(t.Context(), c, long); !errors.Is(err, seeder.ErrBusy) {
		t.Fatalf("Metainfo with the queue full = %v, want ErrBusy", err)
	}
	if _, err := e.seeder.Hashes(t.Context(), c); !errors.Is(err, seeder.ErrBusy) {
		t.Fatalf("Hashes with the queue full = %v, want ErrBusy", err)
	}
	valve.Open()
	checkSeeded(t, e.seeder, a, first)
	checkSeeded(t, e.seeder, b, second)
	if n := e.origin.BlobGETs(c.Digest); n != 0 {
		t.Errorf("the origin served the refused blob %d times", n)
	}
}

// An evicted blob is no longer seeded nor stored, and the next ask
// fetches it from the origin again; a blob being fetched is not evicted.
func TestEvict(t *testing.T) {
	valve := harness.NewValve(64 << 10)
	t.Cleanup(valve.Open)
	e := newEnv(t, seeder.Config{}, valve.Wrap)
	b, ref := e.push(t, "app", 3<<20)
	if _, err := e.seeder.Metainfo(t.Context(), ref, long); err != nil {
		t.Fatal(err)
	}
	if err := e.seeder.Evict(ref.Digest); err == nil {
		t.Fatal("evicted a blob being fetched")
	}
	valve.Open()
	checkSeeded(t, e.seeder, ref, b)
	if err := e.seeder.Evict(ref.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(ref.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("evicted blob still stored (%v)", err)
	}
	if n := len(e.sw.Stats().Torrents); n != 0 {
		t.Fatalf("%d torrents seeded after the eviction", n)
	}
	checkSeeded(t, e.seeder, ref, b)
	if n := e.origin.BlobGETs(ref.Digest); n != 2 {
		t.Fatalf("origin served the evicted blob %d times, want 2", n)
	}
}
