package mirror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

// hangBound bounds a wait for something that must happen: it catches a
// hang, it is not a speed check.
const hangBound = 30 * time.Second

// startHeld GETs a blob through the mirror in the background and returns
// once the answer's headers are in: the mirror's fetch of it is under way
// and holds its slot. The body is left unread until the test ends.
func startHeld(t *testing.T, m *harness.Process, o *harness.Origin, repo string, d digest.Digest) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/blobs/%s?ns=%s", m.URL(), repo, d, o.Host())
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", d, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", d, resp.StatusCode)
	}
}

// A registry that trickles holds only its own fetch slots: with every
// slot of a slow registry taken, a blob of another registry is served,
// and the slow registry still sees no more fetches than its slots.
func TestSlowRegistryHoldsOnlyItsOwnFetchSlots(t *testing.T) {
	t.Parallel()
	slow, _ := harness.NewHeldOrigin(t, 1<<10)
	fast := harness.NewOrigin(t, origin.Config{})
	var held []digest.Digest
	for range 3 {
		_, d := pushBlob(t, slow, "team/app", 64<<10)
		held = append(held, d)
	}
	want, _ := pushBlob(t, fast, "team/app", 64<<10)
	m := startMirror(t, t.TempDir(), upstreamFlag(slow), upstreamFlag(fast), "--max-concurrent-fetches=2")

	startHeld(t, m, slow, "team/app", held[0])
	startHeld(t, m, slow, "team/app", held[1])
	// The third waits for a slot of its registry, without an answer yet.
	go try(t.Context(), http.MethodGet, fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), held[2], slow.Host()))
	waitMetric(t, m, 3, inflightMetric)

	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), digest.FromBytes(want), fast.Host())
	resp, body, err := try(ctx, http.MethodGet, url)
	if err != nil {
		t.Fatalf("a blob of another registry while the slow one holds its fetch slots: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("a blob of another registry: status %d, %d bytes; want 200 and the %d-byte blob", resp.StatusCode, len(body), len(want))
	}
	if n := slow.TotalBlobGETs(); n != 2 {
		t.Errorf("the slow registry got %d blob GETs, want 2: one per fetch slot", n)
	}
}

// A blob whose upstream stops sending is given up after
// fetch-idle-timeout: the answers of the client that started the fetch
// and of one that joined it break instead of ending as if complete, nothing half-written stays, and the fetch slot is free for
// the next blob. Once the upstream sends again, the blob is served whole.
func TestStalledUpstreamBodyIsAbandoned(t *testing.T) {
	t.Parallel()
	o, valve := harness.NewHeldOrigin(t, 1<<10)
	first, firstDigest := pushBlob(t, o, "team/app", 64<<10)
	_, secondDigest := pushBlob(t, o, "team/app", 64<<10)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), "--max-concurrent-fetches=1", "--fetch-idle-timeout=1s")

	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	url := fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), firstDigest, o.Host())
	// Two clients: the second joins the fetch the first started, and must
	// not be left waiting on it either.
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, body, err := try(ctx, http.MethodGet, url)
			answers <- answer{resp, body, err}
		}()
	}
	for range 2 {
		a := <-answers
		switch {
		case ctx.Err() != nil:
			t.Fatalf("the answer of a blob whose upstream stopped sending neither ended nor broke within %s", hangBound)
		case a.err == nil:
			t.Fatalf("the answer of a blob whose upstream stopped sending ended cleanly: status %d, %d bytes", a.resp.StatusCode, len(a.body))
		}
	}
	if n := o.BlobGETs(firstDigest); n != 1 {
		t.Errorf("origin got %d GETs of the stalled blob from two clients, want 1: the second joins the first's fetch", n)
	}
	for _, f := range filesUnder(t, data+"/tmp") {
		t.Errorf("partial left behind: %s", f)
	}
	// The one slot is free again: the next blob's fetch starts.
	startHeld(t, m, o, "team/app", secondDigest)

	valve.Open()
	getBlob(t, m, o, "team/app", first)
	if n := o.BlobGETs(firstDigest); n != 2 {
		t.Errorf("origin served the abandoned blob %d times, want 2", n)
	}
}

// hugeImage is a registry whose one manifest names a config and a given
// number of layers, none of which it ever sends: each blob GET gets its
// headers and a first KiB, then nothing. It counts the blob GETs.
type hugeImage struct {
	*httptest.Server
	gets atomic.Int64
}

func newHugeImage(t *testing.T, layers int) *hugeImage {
	t.Helper()
	const size = 1 << 20
	desc := func(mediaType string, i int) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(fmt.Sprint("blob ", i)), Size: size}
	}
	man := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: desc(ocispec.MediaTypeImageConfig, 0)}
	for i := range layers {
		man.Layers = append(man.Layers, desc(ocispec.MediaTypeImageLayerGzip, i+1))
	}
	data, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	h := &hugeImage{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(data).String())
			w.Write(data)
		case strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet:
			h.gets.Add(1)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(make([]byte, 1<<10))
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() {
		h.CloseClientConnections()
		h.Close()
	})
	return h
}

func (h *hugeImage) Host() string { return strings.TrimPrefix(h.URL, "http://") }

// A manifest naming 3000 layers does not make a mirror fetch 3000 blobs:
// read-ahead starts the first readahead-blobs of a manifest, and none
// while readahead-fetches wait for a slot; only fetches that have their
// slot hold a partial file and an upstream connection.
func TestReadaheadOfAHugeManifestIsBounded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		args    []string
		flights int // read ahead: running and waiting for a slot
	}{
		// Two get their slot, six wait: the manifest's first eight.
		{"per manifest", []string{"--readahead-blobs=8"}, 8},
		// Two get their slot, then three wait, and read-ahead stops.
		{"in total", []string{"--readahead-fetches=3"}, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reg := newHugeImage(t, 3000)
			data := t.TempDir()
			// A tracker that is down sends every fetch to the origin.
			m := startMirror(t, data, append([]string{"--upstream=" + reg.Host() + "=" + reg.URL,
				"--tracker=http://" + harness.FreeAddr(t), "--peer-listen=127.0.0.1:0",
				"--max-concurrent-fetches=2", "--fetch-idle-timeout=10m"}, c.args...)...)
			resp, _ := send(t, http.MethodGet, m.URL()+"/v2/app/manifests/v1?ns="+reg.Host())
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("manifest: status %d", resp.StatusCode)
			}
			bounded := func() {
				if n := len(filesUnder(t, data+"/tmp")); n > 2 {
					t.Fatalf("%d partial files with 2 fetch slots", n)
				}
				if n := m.Metric(inflightMetric); n > float64(c.flights) {
					t.Fatalf("%.0f blob fetches read ahead, want at most %d", n, c.flights)
				}
			}
			harness.Eventually(t, "read-ahead to stop", func() bool {
				bounded()
				return len(m.LogLines("read-ahead stopped")) > 0
			})
			bounded()
			if n := m.Metric(inflightMetric); n != float64(c.flights) {
				t.Errorf("%.0f blob fetches read ahead, want %d", n, c.flights)
			}
			if n := reg.gets.Load(); n != 2 {
				t.Errorf("the registry got %d blob GETs, want 2: one per fetch slot", n)
			}
		})
	}
}

// idle waits until the mirror has no fetch in progress: a client has a
// blob's last byte once its digest matched, a moment before the blob is
// stored.
func idle(t *testing.T, m *harness.Process) {
	t.Helper()
	harness.Eventually(t, "no fetch in progress", func() bool { return m.Metric(inflightMetric) == 0 })
}

// refusal GETs what must be refused before any byte: an answer whose
// body breaks or does not come is no refusal.
func refusal(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	resp, body, err := try(ctx, http.MethodGet, url)
	if err != nil {
		t.Fatalf("want a refusal before any byte, got an answer that broke or did not come: %v", err)
	}
	return resp, body
}

// sizeLiar stands in front of an origin: a GET of a blob it was told
// about claims the size it was given, sends a first KiB of zeros and then
// nothing until the client leaves. Other requests reach the origin.
type sizeLiar struct {
	mu     sync.Mutex
	claims map[digest.Digest]int64
}

// newSizeLiar serves an origin behind a sizeLiar.
func newSizeLiar(t *testing.T) (*sizeLiar, *harness.Origin) {
	t.Helper()
	l := &sizeLiar{}
	return l, harness.NewOriginWith(t, origin.Config{}, l.wrap)
}

func (l *sizeLiar) claim(d digest.Digest, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claims == nil {
		l.claims = map[digest.Digest]int64{}
	}
	l.claims[d] = size
}

func (l *sizeLiar) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ds, found := strings.Cut(r.URL.Path, "/blobs/")
		l.mu.Lock()
		size, lie := l.claims[digest.Digest(ds)]
		l.mu.Unlock()
		if !found || !lie || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Write(make([]byte, 1<<10))
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
}

// An upstream that claims a blob larger than the cache quota is refused
// before anything is stored or evicted: the client gets a clear 503 naming
// the blob and the quota, not a 200 whose body never comes.
func TestClaimedSizeOverTheQuotaIsRefused(t *testing.T) {
	t.Parallel()
	liar, o := newSizeLiar(t)
	cached, _ := pushBlob(t, o, "team/app", 3<<20)
	huge := digest.FromString("a blob of 64 MiB, they say")
	liar.claim(huge, 64<<20)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), "--cache-size=10MiB", "--fetch-idle-timeout=2s")
	getBlob(t, m, o, "team/app", cached)
	idle(t, m)

	wantQuotaRefusal(t, m, o, huge, "a blob claimed larger than the quota")
	for _, f := range filesUnder(t, data+"/tmp") {
		t.Errorf("partial left behind: %s", f)
	}
	getBlob(t, m, o, "team/app", cached)
}

// wantQuotaRefusal asks the mirror for blob d, which must be refused for
// the quota before any byte, with nothing evicted for it.
func wantQuotaRefusal(t *testing.T, m *harness.Process, o *harness.Origin, d digest.Digest, what string) {
	t.Helper()
	resp, body := refusal(t, fmt.Sprintf("%s/v2/team/app/blobs/%s?ns=%s", m.URL(), d, o.Host()))
	msg := wantError(t, what, resp, body, http.StatusServiceUnavailable, "UNAVAILABLE")
	mustContain(t, "error message", msg, d.String(), "quota")
	if n := m.Metric(evictionsMetric); n != 0 {
		t.Errorf("%.0f blobs evicted for a blob that cannot fit", n)
	}
}

// Room held for blobs still arriving counts against the quota: with 6 MiB
// on their way, another 6 MiB does not fit a 10 MiB quota and is refused,
// and no cached blob is evicted for it.
func TestReservationsCountAgainstTheQuota(t *testing.T) {
	t.Parallel()
	liar, o := newSizeLiar(t)
	cached, _ := pushBlob(t, o, "team/app", 3<<20)
	arriving, other := digest.FromString("6 MiB arriving"), digest.FromString("6 MiB more")
	liar.claim(arriving, 6<<20)
	liar.claim(other, 6<<20)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), "--cache-size=10MiB", "--fetch-idle-timeout=10m")
	getBlob(t, m, o, "team/app", cached)
	idle(t, m)
	startHeld(t, m, o, "team/app", arriving)

	wantQuotaRefusal(t, m, o, other, "a blob that does not fit beside one arriving")
	if n := len(filesUnder(t, data+"/tmp")); n != 1 {
		t.Errorf("%d partial files, want the one arriving", n)
	}
	getBlob(t, m, o, "team/app", cached)
}

// An upstream whose blob is larger than the manifest says is refused when
// the manifest is known (prefetch, read-ahead): the layer fails naming
// both sizes, and nothing of it is stored.
func TestClaimedSizeOverTheDescriptorIsRefused(t *testing.T) {
	t.Parallel()
	liar, o := newSizeLiar(t)
	img, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 2, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	layer := img.Images[0].Layers[1]
	liar.claim(layer.Digest, 6<<20)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), "--fetch-idle-timeout=2s")

	events := prefetch(t, m, img.Ref)
	var failed *adminapi.Event
	for i, ev := range events {
		if ev.Type == adminapi.EventBlob && ev.State == adminapi.StateFailed {
			failed = &events[i]
		}
	}
	switch {
	case failed == nil:
		t.Fatalf("no blob failed: %+v", events)
	case failed.Digest != layer.Digest.String():
		t.Fatalf("blob %s failed (%s), want the layer %s", failed.Digest, failed.Error, layer.Digest)
	}
	mustContain(t, "the layer's error", failed.Error, strconv.FormatInt(6<<20, 10), strconv.FormatInt(layer.Size, 10))
	if slices.Contains(harness.StoredBlobs(t, data), layer.Digest) {
		t.Error("the layer was stored")
	}
	for _, f := range filesUnder(t, data+"/tmp") {
		t.Errorf("partial left behind: %s", f)
	}
}

// prefetch asks the mirror's admin API to pull ref and returns every event
// of the answer.
func prefetch(t *testing.T, m *harness.Process, ref string) []adminapi.Event {
	t.Helper()
	body, err := json.Marshal(adminapi.PrefetchRequest{Image: ref})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+adminapi.PrefetchPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prefetch %s: status %d", ref, resp.StatusCode)
	}
	var events []adminapi.Event
	dec := json.NewDecoder(resp.Body)
	for {
		var ev adminapi.Event
		if err := dec.Decode(&ev); err == io.EOF {
			return events
		} else if err != nil {
			t.Fatalf("prefetch %s: %v", ref, err)
		}
		events = append(events, ev)
	}
}
