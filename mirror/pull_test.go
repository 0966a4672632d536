package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// fakeSource stands in for the origin and the swarm: fill writes each
// fetch into its flight, as a source would, in steps the test controls.
type fakeSource struct {
	fetches atomic.Int32
	fill    func(ctx context.Context, fl *flight.Flight) error
	// committed receives the outcome of every commit after a fill that
	// succeeded.
	committed chan error
}

func newFakeSource(fill func(ctx context.Context, fl *flight.Flight) error) *fakeSource {
	return &fakeSource{fill: fill, committed: make(chan error, 10)}
}

func (s *fakeSource) Fetch(ctx context.Context, _ oci.Blob, fl *flight.Flight) (Fetched, error) {
	s.fetches.Add(1)
	if err := s.fill(ctx, fl); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *fakeSource) Committed(err error) { s.committed <- err }

// heldSource sizes blob at once and writes it when release is called
// (once; later calls do nothing), so a test can look at what clients get
// before the first byte.
func heldSource(blob []byte) (src *fakeSource, release func()) {
	held := make(chan struct{})
	var once sync.Once
	src = newFakeSource(func(_ context.Context, fl *flight.Flight) error {
		if err := fl.Reserve(int64(len(blob))); err != nil {
			return err
		}
		<-held
		_, err := fl.Write(blob)
		return err
	})
	return src, func() { once.Do(func() { close(held) }) }
}

// pullFixture is a mirror whose only source of blobs is a fakeSource: no
// upstream, tracker or swarm is ever asked.
type pullFixture struct {
	m    *Mirror
	data string
	url  string
}

func newPullFixture(t *testing.T, src BlobSource) *pullFixture {
	t.Helper()
	cfg := Defaults()
	cfg.Data = t.TempDir()
	m, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	m.source = src
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		srv.Close()
		m.Drain(context.Background())
		m.Close()
	})
	return &pullFixture{m: m, data: cfg.Data, url: srv.URL}
}

func (f *pullFixture) blobURL(d digest.Digest) string {
	return f.url + "/v2/library/app/blobs/" + d.String()
}

// do sends a GET for blob d, with a Range header unless rng is empty, and
// returns once the response headers are in.
func (f *pullFixture) do(ctx context.Context, d digest.Digest, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.blobURL(d), nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	return http.DefaultClient.Do(req)
}

// get is do from the test's goroutine; the body is closed with the test.
func (f *pullFixture) get(t *testing.T, d digest.Digest, rng string) *http.Response {
	t.Helper()
	resp, err := f.do(t.Context(), d, rng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// fetchBody GETs blob d and reads the whole body, for other goroutines
// than the test's.
func (f *pullFixture) fetchBody(ctx context.Context, d digest.Digest, rng string, headers chan<- struct{}) ([]byte, error) {
	resp, err := f.do(ctx, d, rng)
	if headers != nil {
		headers <- struct{}{}
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// settled waits until every fetch has ended: committed or aborted.
func (f *pullFixture) settled(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.m.Drain(ctx); err != nil {
		t.Fatalf("fetches still running: %v", err)
	}
}

// checkNotStored fails unless d is absent from the store and no partial
// file is left behind.
func (f *pullFixture) checkNotStored(t *testing.T, d digest.Digest) {
	t.Helper()
	if _, err := f.m.store.Stat(d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("blob stored after a failed fetch: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(f.data, "tmp")); len(left) != 0 {
		t.Errorf("%d partial files left behind", len(left))
	}
}

func (f *pullFixture) storedBytes(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(f.m.store.Path(d))
	if err != nil {
		t.Fatalf("blob not stored: %v", err)
	}
	return b
}

func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// Many clients asking for one missing blob at once share one fetch; each
// gets the whole blob, which is then stored.
func TestConcurrentGetsShareOneFetch(t *testing.T) {
	const clients = 5
	blob := testBytes(3<<20 + 17)
	d := digest.FromBytes(blob)
	src, releaseSource := heldSource(blob)
	f := newPullFixture(t, src)
	defer releaseSource()

	var wg sync.WaitGroup
	bodies := make([][]byte, clients)
	errs := make([]error, clients)
	headers := make(chan struct{}, clients)
	for i := range clients {
		wg.Go(func() { bodies[i], errs[i] = f.fetchBody(t.Context(), d, "", headers) })
	}
	// Every client has its headers, so has joined the fetch, before the
	// source writes a byte.
	for range clients {
		select {
		case <-headers:
		case <-time.After(5 * time.Second):
			t.Fatal("a client got no headers before the source wrote a byte")
		}
	}
	releaseSource()
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || !bytes.Equal(bodies[i], blob) {
			t.Fatalf("client %d: %d bytes, %v; want the blob", i, len(bodies[i]), errs[i])
		}
	}
	f.settled(t)
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("%d clients started %d fetches, want 1", clients, n)
	}
	if !bytes.Equal(f.storedBytes(t, d), blob) {
		t.Fatal("stored bytes differ from the blob")
	}
	if err := <-src.committed; err != nil {
		t.Fatalf("source told the commit failed: %v", err)
	}
	// Now a hit, not another fetch.
	if b, _ := io.ReadAll(f.get(t, d, "").Body); !bytes.Equal(b, blob) || src.fetches.Load() != 1 {
		t.Fatalf("GET after the commit: %d bytes, %d fetches", len(b), src.fetches.Load())
	}
}

// The status line and headers go out when the size is known, before the
// source has written a byte: clients give up on headers that do not come.
func TestHeadersBeforeFirstByte(t *testing.T) {
	blob := testBytes(1 << 20)
	d := digest.FromBytes(blob)
	src, release := heldSource(blob)
	f := newPullFixture(t, src)
	defer release()

	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := f.do(t.Context(), d, "")
		got <- result{resp, err}
	}()
	var resp *http.Response
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		resp = r.resp
		defer resp.Body.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no response headers while the source holds the first byte")
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(blob)) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("headers: %s, Content-Length %d, digest %q", resp.Status, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
}

// A source that fails before it knows the size: the client gets the
// source's error, nothing is stored, and the next GET fetches again.
func TestFetchErrorBeforeSizeIsNotStored(t *testing.T) {
	blob := testBytes(1 << 20)
	d := digest.FromBytes(blob)
	var fail atomic.Bool
	fail.Store(true)
	src := newFakeSource(func(_ context.Context, fl *flight.Flight) error {
		if fail.Load() {
			return errcode.ErrorCodeBlobUnknown.WithMessage("the origin has no such blob")
		}
		if err := fl.Reserve(int64(len(blob))); err != nil {
			return err
		}
		_, err := fl.Write(blob)
		return err
	})
	f := newPullFixture(t, src)

	if resp := f.get(t, d, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET while the source fails: %s, want 404", resp.Status)
	}
	f.settled(t)
	f.checkNotStored(t, d)

	fail.Store(false)
	if b, _ := io.ReadAll(f.get(t, d, "").Body); !bytes.Equal(b, blob) {
		t.Fatalf("GET once the source works: %d bytes, want the blob", len(b))
	}
	if n := src.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want a new one after the failure", n)
	}
	f.settled(t)
	if len(src.committed) != 1 {
		t.Fatalf("source told of %d commits, want only the second fetch's", len(src.committed))
	}
}

// A source that fails after writing some or all of the bytes is not
// trusted: the blob is aborted, not committed, and the client never sees
// a complete answer for a failed fetch (the headers are out, so a broken
// body is how it is told).
func TestFetchErrorAfterBytesIsNotStored(t *testing.T) {
	blob := testBytes(2 << 20)
	d := digest.FromBytes(blob)
	for _, tc := range []struct {
		name    string
		written int
	}{{"mid-body", len(blob) / 2}, {"after the last byte", len(blob)}} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource(func(_ context.Context, fl *flight.Flight) error {
				if err := fl.Reserve(int64(len(blob))); err != nil {
					return err
				}
				if _, err := fl.Write(blob[:tc.written]); err != nil {
					return err
				}
				return errors.New("origin went away")
			})
			f := newPullFixture(t, src)

			resp := f.get(t, d, "")
			if b, err := io.ReadAll(resp.Body); err == nil && len(b) == len(blob) {
				t.Fatalf("client got a complete %s answer from a failed fetch", resp.Status)
			}
			f.settled(t)
			f.checkNotStored(t, d)
			if len(src.committed) != 0 {
				t.Fatal("source was told of a commit after its fetch failed")
			}
		})
	}
}

// Bytes that do not hash to the digest are never stored, the client
// streaming them gets a broken body rather than a complete one, and the
// source hears that the commit failed. The same goes for a range that
// ends before the blob's bad byte: it is no more checked than the rest.
func TestBytesFailingTheDigestAreNotStored(t *testing.T) {
	for _, tc := range []struct{ name, rng string }{{"whole blob", ""}, {"range before the bad byte", "bytes=0-99"}} {
		t.Run(tc.name, func(t *testing.T) {
			blob := testBytes(1 << 20)
			d := digest.FromBytes(blob)
			src := newFakeSource(func(_ context.Context, fl *flight.Flight) error {
				if err := fl.Reserve(int64(len(blob))); err != nil {
					return err
				}
				bad := bytes.Clone(blob)
				bad[len(bad)-1] ^= 0xff
				_, err := fl.Write(bad)
				return err
			})
			f := newPullFixture(t, src)

			resp := f.get(t, d, tc.rng)
			want := int64(len(blob))
			if tc.rng != "" {
				want = 100
			}
			if b, err := io.ReadAll(resp.Body); err == nil && int64(len(b)) == want {
				t.Fatalf("client got a complete %s answer of bytes that fail the digest", resp.Status)
			}
			f.settled(t)
			f.checkNotStored(t, d)
			if err := <-src.committed; !errors.Is(err, store.ErrDigestMismatch) {
				t.Fatalf("source told the commit ended with %v, want ErrDigestMismatch", err)
			}
			io.ReadAll(f.get(t, d, "").Body)
			if n := src.fetches.Load(); n != 2 {
				t.Fatalf("%d fetches, want a new one after the mismatch", n)
			}
		})
	}
}

// A client that asks while the blob is halfway in gets the same bytes as
// the one that started the fetch: the half already written, then the rest
// as it comes.
func TestLateJoinerGetsTheWholeBlob(t *testing.T) {
	blob := testBytes(4<<20 + 5)
	d := digest.FromBytes(blob)
	half := len(blob) / 2
	written, release := make(chan struct{}, 2), make(chan struct{})
	src := newFakeSource(func(_ context.Context, fl *flight.Flight) error {
		if err := fl.Reserve(int64(len(blob))); err != nil {
			return err
		}
		if _, err := fl.Write(blob[:half]); err != nil {
			return err
		}
		written <- struct{}{}
		<-release
		_, err := fl.Write(blob[half:])
		return err
	})
	f := newPullFixture(t, src)

	first := make(chan []byte, 1)
	go func() {
		b, _ := f.fetchBody(t.Context(), d, "", nil)
		first <- b
	}()
	<-written
	late := make(chan []byte, 1)
	headers := make(chan struct{}, 1)
	go func() {
		b, _ := f.fetchBody(t.Context(), d, "", headers)
		late <- b
	}()
	<-headers
	close(release)
	for name, got := range map[string][]byte{"first": <-first, "late": <-late} {
		if !bytes.Equal(got, blob) {
			t.Errorf("%s client: %d bytes (match %v), want the blob", name, len(got), bytes.Equal(got, blob[:min(len(got), len(blob))]))
		}
	}
	f.settled(t)
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want the late client to join the first", n)
	}
}

// A Range on a blob still arriving is answered at once from pieces
// checked against hashes the tracker vouched for, and a range past them waits for the source to verify more: the
// unchecked bytes already in the file (a piece before its hash check)
// never reach a reader.
func TestRangeOnInFlightBlobSeesOnlyVerifiedBytes(t *testing.T) {
	blob := testBytes(4 << 20)
	d := digest.FromBytes(blob)
	half := int64(len(blob) / 2)
	// Buffered: a second fetch, were there one, must not block or panic.
	verifiedHalf, release := make(chan struct{}, 2), make(chan struct{})
	src := newFakeSource(func(_ context.Context, fl *flight.Flight) error {
		if err := fl.Reserve(int64(len(blob))); err != nil {
			return err
		}
		if _, err := fl.WriteAt(blob[:half], 0); err != nil {
			return err
		}
		fl.PieceChecked(0, half)
		// Its pieces were checked against hashes the tracker had all
		// given, as a swarm download's are.
		fl.Vouch()
		garbage := bytes.Repeat([]byte{0xee}, len(blob)-int(half))
		if _, err := fl.WriteAt(garbage, half); err != nil {
			return err
		}
		verifiedHalf <- struct{}{}
		<-release
		if _, err := fl.WriteAt(blob[half:], half); err != nil {
			return err
		}
		fl.PieceChecked(half, int64(len(blob)))
		return nil
	})
	f := newPullFixture(t, src)
	// Registered after the fixture, so it runs before the fixture's drain:
	// a failed assertion must not leave the fetch waiting for ever.
	releaseFetch := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseFetch)

	tail := make(chan []byte, 1)
	go func() {
		b, _ := f.fetchBody(t.Context(), d, "bytes="+strconv.FormatInt(half, 10)+"-", nil)
		tail <- b
	}()
	<-verifiedHalf
	resp := f.get(t, d, "bytes=1000-"+strconv.FormatInt(half-1, 10))
	head, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || err != nil || !bytes.Equal(head, blob[1000:half]) {
		t.Fatalf("range in the verified prefix: %s, %d bytes (match %v), %v", resp.Status, len(head), bytes.Equal(head, blob[1000:half]), err)
	}
	releaseFetch()
	if b := <-tail; !bytes.Equal(b, blob[half:]) {
		t.Fatalf("range past the verified prefix: %d bytes (match %v), want the blob's tail", len(b), bytes.Equal(b, blob[half:]))
	}
	f.settled(t)
	if !bytes.Equal(f.storedBytes(t, d), blob) || src.fetches.Load() != 1 {
		t.Fatalf("after two ranges: %d fetches, stored bytes match %v", src.fetches.Load(), bytes.Equal(f.storedBytes(t, d), blob))
	}
}
