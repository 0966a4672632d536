// Package bench measures the mirror against a plain distribution registry
// on the same machine and disk. Every number is reported next to its
// baseline from the same run; nothing here passes or fails on speed.
package bench

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
)

func TestMain(m *testing.M) {
	harness.ServeOriginIfChild()
	harness.Main(m)
}

const benchRepo = "bench/blob"

// BenchmarkMirror pushes one random blob of BENCH_BLOB_SIZE bytes (default
// 1 GiB) to an origin registry running as its own process (distribution,
// filesystem driver) and compares, for that blob, the mirror process with
// the origin:
//
//   - cached: the mirror serving it from its store vs. the origin serving
//     it from its storage, both files on the same disk and, after a
//     warm-up read, in the page cache;
//   - cold: a fresh mirror fetching it from the origin while streaming it
//     vs. the origin serving it directly, throughput and time to first byte;
//   - rss: the peak resident memory of a fresh mirror after streaming it
//     cold and once more from its store.
//
// With two cores the client's own copying caps both sides alike, so each
// serving process's CPU time per GB is reported too: it shows what the
// throughput ratio can hide.
func BenchmarkMirror(b *testing.B) {
	size := blobSize(b)
	harness.Binary(b) // a build failure should not wait for the upload
	o := harness.StartOriginProcess(b)
	d := pushRandomBlob(b, o.URL, size)
	direct := o.URL + "/v2/" + benchRepo + "/blobs/" + d.String()
	res := &results{size: size}

	b.Run("cached", func(b *testing.B) {
		m := startMirror(b, o, b.TempDir())
		viaMirror := m.URL() + "/v2/" + benchRepo + "/blobs/" + d.String()
		fetch(b, viaMirror, size, 0) // the cold fill, not measured
		fetch(b, direct, size, 0)    // the origin gets the same warm-up
		var mir, org transfer
		b.ResetTimer()
		for i := range b.N {
			// Alternate who goes first, so neither always follows the other.
			if i%2 == 0 {
				mir.add(fetch(b, viaMirror, size, m.Pid()))
				org.add(fetch(b, direct, size, o.Pid))
			} else {
				org.add(fetch(b, direct, size, o.Pid))
				mir.add(fetch(b, viaMirror, size, m.Pid()))
			}
		}
		res.cached = &pair{mirror: mir, origin: org}
		report(b, mir, org)
	})

	b.Run("cold", func(b *testing.B) {
		fetch(b, direct, size, 0) // the origin's file in the page cache
		var mir, org transfer
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			m := startMirror(b, o, b.TempDir())
			viaMirror := m.URL() + "/v2/" + benchRepo + "/blobs/" + d.String()
			b.StartTimer()
			// The mirror's CPU is what it adds; the origin works for both.
			if i%2 == 0 {
				mir.add(fetch(b, viaMirror, size, m.Pid()))
				org.add(fetch(b, direct, size, o.Pid))
			} else {
				org.add(fetch(b, direct, size, o.Pid))
				mir.add(fetch(b, viaMirror, size, m.Pid()))
			}
			b.StopTimer()
			m.Stop()
			b.StartTimer()
		}
		res.cold = &pair{mirror: mir, origin: org}
		report(b, mir, org)
		b.ReportMetric(mir.meanTTFB()-org.meanTTFB(), "added-TTFB-ms")
	})

	b.Run("rss", func(b *testing.B) {
		var peak int64
		for range b.N {
			m := startMirror(b, o, b.TempDir())
			viaMirror := m.URL() + "/v2/" + benchRepo + "/blobs/" + d.String()
			fetch(b, viaMirror, size, 0)
			fetch(b, viaMirror, size, 0)
			hwm, err := harness.PeakRSS(m.Pid())
			if err != nil {
				b.Fatal(err)
			}
			peak = max(peak, hwm)
			m.Stop()
		}
		res.peakRSS = peak
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	})

	res.print(os.Stdout)
}

func report(b *testing.B, mir, org transfer) {
	b.ReportMetric(mir.mbps(), "mirror-MB/s")
	b.ReportMetric(org.mbps(), "origin-MB/s")
	b.ReportMetric(mir.mbps()/org.mbps(), "ratio")
	b.ReportMetric(mir.cpuPerGB(), "mirror-CPU-s/GB")
	b.ReportMetric(org.cpuPerGB(), "origin-CPU-s/GB")
}

// upstreamHost is the registry the benchmark's blob belongs to: the mirrors'
// default upstream, so requests need no ?ns=.
const upstreamHost = "docker.io"

// startMirror runs a mirror process with an empty store in data whose
// default upstream is the origin, with extra flags if given.
func startMirror(b *testing.B, o *harness.OriginProcess, data string, extra ...string) *harness.Process {
	b.Helper()
	args := append([]string{"--data", data, "--upstream", upstreamHost + "=" + o.URL, "--log-level", "warn"}, extra...)
	return harness.Start(b, "mirror", args...)
}

// blobSize reads BENCH_BLOB_SIZE: bytes, or a number with KiB, MiB or GiB.
func blobSize(b *testing.B) int64 {
	b.Helper()
	s := strings.TrimSpace(os.Getenv("BENCH_BLOB_SIZE"))
	if s == "" {
		return 1 << 30
	}
	unit := int64(1)
	for suffix, u := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, unit = strings.TrimSpace(n), u
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("BENCH_BLOB_SIZE=%q: want a positive number of bytes, KiB, MiB or GiB", os.Getenv("BENCH_BLOB_SIZE"))
	}
	return n * unit
}

// pushRandomBlob streams size random bytes to the origin as one blob.
func pushRandomBlob(b *testing.B, base string, size int64) digest.Digest {
	b.Helper()
	var seed [32]byte
	crand.Read(seed[:])
	src := io.LimitReader(rand.NewChaCha8(seed), size)
	d, n, err := harness.PushBlob(context.Background(), base, benchRepo, src, digest.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	if n != size {
		b.Fatalf("pushed %d bytes, want %d", n, size)
	}
	return d
}

// client is shared by every measurement, so both sides pay the same
// client costs.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}

// transfer accumulates what some GETs took.
type transfer struct {
	n     int
	bytes int64
	ttfb  time.Duration // summed: request sent to first body byte
	total time.Duration // summed: request sent to last body byte
	cpu   time.Duration // summed: CPU the serving process spent
}

func (t *transfer) add(u transfer) {
	t.n += u.n
	t.bytes += u.bytes
	t.ttfb += u.ttfb
	t.total += u.total
	t.cpu += u.cpu
}

func (t transfer) mbps() float64 { return float64(t.bytes) / 1e6 / t.total.Seconds() }

func (t transfer) cpuPerGB() float64 { return t.cpu.Seconds() / (float64(t.bytes) / 1e9) }

func (t transfer) meanTTFB() float64 {
	return float64(t.ttfb) / float64(time.Millisecond) / float64(t.n)
}

// fetch GETs url to the end and checks that the whole blob came. With a
// pid it also measures the CPU time that process spent meanwhile.
func fetch(b *testing.B, url string, size int64, pid int) transfer {
	b.Helper()
	cpu0 := cpuTime(b, pid)
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	buf := make([]byte, 1<<20)
	var (
		n    int64
		ttfb time.Duration
	)
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 && n == 0 {
			ttfb = time.Since(start)
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatalf("GET %s: after %d bytes: %v", url, n, err)
		}
	}
	if n != size {
		b.Fatalf("GET %s: got %d bytes, want %d", url, n, size)
	}
	total := time.Since(start)
	return transfer{n: 1, bytes: n, ttfb: ttfb, total: total, cpu: cpuTime(b, pid) - cpu0}
}

func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	if pid == 0 {
		return 0
	}
	d, err := harness.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

type pair struct{ mirror, origin transfer }

type results struct {
	size    int64
	cached  *pair
	cold    *pair
	peakRSS int64
}

// print writes the table of whatever sub-benchmarks ran.
func (r *results) print(w io.Writer) {
	if r.cached == nil && r.cold == nil && r.peakRSS == 0 {
		return
	}
	fmt.Fprintf(w, "\nblob %d bytes (%.0f MiB); MB = 10^6 bytes\n", r.size, float64(r.size)/(1<<20))
	fmt.Fprintf(w, "%-8s %12s %12s %7s %12s %12s %11s %11s\n", "case", "mirror MB/s", "origin MB/s", "ratio",
		"mirror TTFB", "origin TTFB", "mirror CPU", "origin CPU")
	for _, row := range []struct {
		name string
		p    *pair
	}{{"cached", r.cached}, {"cold", r.cold}} {
		if row.p == nil {
			continue
		}
		m, o := row.p.mirror, row.p.origin
		fmt.Fprintf(w, "%-8s %12.0f %12.0f %7.2f %9.1f ms %9.1f ms %6.2f s/GB %6.2f s/GB\n", row.name, m.mbps(), o.mbps(), m.mbps()/o.mbps(),
			m.meanTTFB(), o.meanTTFB(), m.cpuPerGB(), o.cpuPerGB())
	}
	if r.peakRSS > 0 {
		fmt.Fprintf(w, "mirror peak RSS streaming the blob cold and cached: %.1f MiB (target < 100 MiB)\n", float64(r.peakRSS)/(1<<20))
	}
}
