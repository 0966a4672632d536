package mirror_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// The load tests are not parallel: they measure the mirror process's
// goroutines, memory and descriptors, and other tests' traffic on the
// same machine would only blur the peaks they log.

// TestLoad500ClientsOneColdBlob sends 500 GETs at once for one blob the
// mirror does not have. The origin holds the blob back after its first MiB
// until every request has reached the mirror, so all 500 are streaming
// from the one download at the same time. Every client must get the exact
// bytes, the origin must be asked once, and the mirror's goroutines,
// memory and open files must stay within bounds that a per-client leak or
// buffer would break, and fall back once the clients are gone.
func TestLoad500ClientsOneColdBlob(t *testing.T) {
	const clients, size = 500, 8 << 20
	valve := harness.NewValve(1 << 20)
	gets := &blobGETMeter{}
	o := harness.NewOriginWith(t, origin.Config{}, func(h http.Handler) http.Handler { return gets.Wrap(valve.Wrap(h)) })
	_, d := pushBlob(t, o, "app", size)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o))
	url := m.URL() + "/v2/app/blobs/" + d.String() + "?ns=" + o.Host()

	before := mustProcStats(t, m)
	peaks := sampleProcStats(m.URL() + "/metrics")
	results := getAll(t, slices.Repeat([]string{url}, clients))
	waitMetric(t, m, clients, cacheMetric, "kind", "blob")
	// Every client is connected and waiting on the held download: the
	// moment the mirror holds the most at once.
	held := mustProcStats(t, m)
	valve.Open()
	for range clients {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || r.n != size || r.got != d {
			t.Errorf("client got status %d, %d bytes with digest %s, err %v; want 200, %d bytes of %s", r.status, r.n, r.got, r.err, size, d)
		}
	}
	peak, samples, err := peaks.stop()
	if err != nil {
		t.Fatalf("sampling the mirror's metrics: %v", err)
	}
	peak = peak.max(held)
	hwm, err := harness.PeakRSS(m.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d clients x %d MiB: before %s; peak over %d samples %s; peak RSS (VmHWM) %.1f MiB",
		clients, size>>20, before, samples, peak, float64(hwm)/(1<<20))

	if miss, joined := m.Metric(cacheMetric, "kind", "blob", "result", "miss"), m.Metric(cacheMetric, "kind", "blob", "result", "joined"); miss != 1 || joined != clients-1 {
		t.Errorf("mirror counted %v misses and %v joins, want 1 and %d", miss, joined, clients-1)
	}
	// A connection costs the server about two goroutines; twice that would
	// mean something per reader that should not be there.
	if limit := before.goroutines + 4*clients; peak.goroutines > limit {
		t.Errorf("mirror peaked at %.0f goroutines with %d clients, want below %.0f", peak.goroutines, clients, limit)
	}
	// One descriptor per client connection, plus the partial file and the
	// origin connection; a descriptor per reader would double it.
	if limit := before.fds + 1.5*clients; peak.fds > limit {
		t.Errorf("mirror peaked at %.0f open files with %d clients, want below %.0f", peak.fds, clients, limit)
	}
	if limit := int64(512 << 20); hwm > limit {
		t.Errorf("mirror peak RSS %.0f MiB streaming one %d MiB blob to %d clients, want below %d MiB", float64(hwm)/(1<<20), size>>20, clients, limit>>20)
	}
	settled(t, m, before)

	// The last bytes can reach the clients before the digest check commits.
	harness.Eventually(t, "blob committed", func() bool { return m.Metric(inflightMetric) == 0 })
	// The origin counts a GET once its handler returns, which can be
	// after the mirror has the last byte.
	harness.Eventually(t, "origin done serving", func() bool { return gets.current() == 0 })
	if n, all := o.BlobGETs(d), gets.total(); n != 1 || all != 1 {
		t.Errorf("origin answered %d blob GETs (%d asked), want exactly one", n, all)
	}
	if f, err := digestFile(harness.BlobPath(data, d)); err != nil || f != d {
		t.Errorf("stored blob hashes to %s (%v), want %s", f, err, d)
	}
}

// TestLoad100BlobsBoundedFetches asks a mirror limited to 8 concurrent
// fetches for 100 different blobs at once. The origin holds every blob
// back after its first bytes, so without the limit all 100 fetches would
// be at the origin together; with it the origin must never see more than
// 8, every client must still get its exact blob, every blob must end up
// stored, and the mirror's open files must stay bounded and drop back.
func TestLoad100BlobsBoundedFetches(t *testing.T) {
	const blobs, size, maxFetches = 100, 256 << 10, 8
	valve := harness.NewValve(64 << 10)
	gets := &blobGETMeter{}
	o := harness.NewOriginWith(t, origin.Config{}, func(h http.Handler) http.Handler { return gets.Wrap(valve.Wrap(h)) })
	want := make([]digest.Digest, blobs)
	for i := range want {
		_, want[i] = pushBlob(t, o, "app", size)
	}
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o), fmt.Sprintf("--max-concurrent-fetches=%d", maxFetches))
	urls := make([]string, blobs)
	for i, d := range want {
		urls[i] = m.URL() + "/v2/app/blobs/" + d.String() + "?ns=" + o.Host()
	}

	before := mustProcStats(t, m)
	peaks := sampleProcStats(m.URL() + "/metrics")
	results := getAll(t, urls)
	waitMetric(t, m, blobs, cacheMetric, "kind", "blob", "result", "miss")
	// Every fetch has started, and the origin holds those it serves: the
	// limit is what keeps the others away.
	harness.Eventually(t, fmt.Sprintf("%d blob GETs held at the origin", maxFetches), func() bool {
		return gets.current() >= maxFetches
	})
	held := mustProcStats(t, m)
	valve.Open()
	for range blobs {
		r := <-results
		if d := want[r.i]; r.err != nil || r.status != http.StatusOK || r.n != size || r.got != d {
			t.Errorf("client got status %d, %d bytes with digest %s, err %v; want 200, %d bytes of %s", r.status, r.n, r.got, r.err, size, d)
		}
	}
	peak, samples, err := peaks.stop()
	if err != nil {
		t.Fatalf("sampling the mirror's metrics: %v", err)
	}
	peak = peak.max(held)
	t.Logf("%d blobs, --max-concurrent-fetches=%d: origin saw at most %d blob GETs at once, %d in all; mirror before %s; peak over %d samples %s",
		blobs, maxFetches, gets.peak(), gets.total(), before, samples, peak)

	if p := gets.peak(); p > maxFetches {
		t.Errorf("origin served %d blob GETs at once, want at most %d", p, maxFetches)
	}
	// A client connection per blob asked for; a partial file, an origin
	// connection and a client's own descriptor of the partial (sendfile)
	// per running fetch only, twice over for room: a fetch waiting for
	// its turn holds no file (one per blob would be another 100).
	if limit := before.fds + blobs + 8*maxFetches; peak.fds > limit {
		t.Errorf("mirror peaked at %.0f open files for %d blobs, want below %.0f", peak.fds, blobs, limit)
	}
	if limit := before.goroutines + 5*blobs; peak.goroutines > limit {
		t.Errorf("mirror peaked at %.0f goroutines for %d blobs, want below %.0f", peak.goroutines, blobs, limit)
	}
	settled(t, m, before)

	// The last bytes can reach the clients before the digest check commits.
	harness.Eventually(t, "every blob committed", func() bool { return m.Metric(inflightMetric) == 0 })
	harness.Eventually(t, "origin done serving", func() bool { return gets.current() == 0 })
	if n, all := o.TotalBlobGETs(), gets.total(); n != blobs || all != blobs {
		t.Errorf("origin answered %d blob GETs (%d asked), want one per blob: %d", n, all, blobs)
	}
	stored := harness.StoredBlobs(t, data)
	for _, d := range want {
		if !slices.Contains(stored, d) {
			t.Errorf("blob %s is not in the store", d)
		}
	}
	if files := filesUnder(t, data+"/tmp"); len(files) != 0 {
		t.Errorf("tmp/ still holds %d files after every fetch finished", len(files))
	}
}

// settled waits until the mirror's goroutines and open files are back near
// where they were before a burst: what each client or fetch held must be
// released once it is over. The slack covers the origin connections the
// upstream client keeps idle and the runtime's own goroutines.
func settled(t *testing.T, m *harness.Process, before procStats) {
	t.Helper()
	var now procStats
	harness.Eventually(t, "goroutines and open files back near their level before the burst", func() bool {
		now = mustProcStats(t, m)
		return now.goroutines <= before.goroutines+40 && now.fds <= before.fds+40
	})
	t.Logf("mirror after the burst: %s", now)
}

// loadResult is what one client of a burst got.
type loadResult struct {
	i      int // which of the URLs it asked for
	status int
	n      int64
	got    digest.Digest
	err    error
}

// getAll GETs every url at once, each on its own connection (closed after
// use, so the mirror can be seen to let go of it), and hashes each body.
// Results arrive on the returned channel in no particular order.
func getAll(t *testing.T, urls []string) <-chan loadResult {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	client := &http.Client{Transport: tr}
	results := make(chan loadResult, len(urls))
	for i, url := range urls {
		go func() {
			r := loadResult{i: i}
			defer func() { results <- r }()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
			if err != nil {
				r.err = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				r.err = err
				return
			}
			defer resp.Body.Close()
			r.status = resp.StatusCode
			dg := digest.Canonical.Digester()
			r.n, r.err = io.Copy(dg.Hash(), resp.Body)
			r.got = dg.Digest()
		}()
	}
	return results
}

// blobGETMeter counts the blob GETs an origin is serving at once, the most
// it ever served at once, and all it was asked, whatever their outcome.
type blobGETMeter struct {
	mu             sync.Mutex
	cur, max, seen int
}

func (g *blobGETMeter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "/blobs/uploads/") {
			next.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		g.cur++
		g.seen++
		g.max = max(g.max, g.cur)
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.cur--
			g.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

func (g *blobGETMeter) current() int { g.mu.Lock(); defer g.mu.Unlock(); return g.cur }
func (g *blobGETMeter) peak() int    { g.mu.Lock(); defer g.mu.Unlock(); return g.max }
func (g *blobGETMeter) total() int   { g.mu.Lock(); defer g.mu.Unlock(); return g.seen }

// procStats is what a mirror's /metrics says about its own process.
type procStats struct {
	goroutines float64
	rss        float64 // bytes
	fds        float64
}

func (s procStats) String() string {
	return fmt.Sprintf("%.0f goroutines, %.1f MiB RSS, %.0f open files", s.goroutines, s.rss/(1<<20), s.fds)
}

func (s procStats) max(o procStats) procStats {
	return procStats{goroutines: max(s.goroutines, o.goroutines), rss: max(s.rss, o.rss), fds: max(s.fds, o.fds)}
}

func mustProcStats(t *testing.T, m *harness.Process) procStats {
	t.Helper()
	s, err := readProcStats(t.Context(), m.URL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readProcStats scrapes the Go and process collectors' gauges in one
// request, so the three numbers describe the same moment.
func readProcStats(ctx context.Context, url string) (procStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return procStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return procStats{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return procStats{}, fmt.Errorf("parse metrics from %s: %w", url, err)
	}
	gauge := func(name string) (float64, error) {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 || f.Metric[0].Gauge == nil {
			return 0, fmt.Errorf("%s exports no gauge %s", url, name)
		}
		return f.Metric[0].Gauge.GetValue(), nil
	}
	var s procStats
	for _, g := range []struct {
		name string
		v    *float64
	}{{"go_goroutines", &s.goroutines}, {"process_resident_memory_bytes", &s.rss}, {"process_open_fds", &s.fds}} {
		if *g.v, err = gauge(g.name); err != nil {
			return procStats{}, err
		}
	}
	return s, nil
}

// procSampler scrapes a process's stats back to back and keeps the highest
// of each. A sampled peak can only be at or below the true one, so a bound
// checked against it never fails spuriously.
type procSampler struct {
	cancel  context.CancelFunc
	done    chan struct{}
	peak    procStats
	samples int
	err     error
}

func sampleProcStats(url string) *procSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &procSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			st, err := readProcStats(ctx, url)
			if err != nil {
				if ctx.Err() == nil {
					s.err = err
				}
				return
			}
			s.peak = s.peak.max(st)
			s.samples++
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return s
}

// stop ends sampling and returns the peaks and how many samples they come
// from.
func (s *procSampler) stop() (procStats, int, error) {
	s.cancel()
	<-s.done
	if s.err == nil && s.samples == 0 {
		s.err = fmt.Errorf("no sample taken")
	}
	return s.peak, s.samples, s.err
}
