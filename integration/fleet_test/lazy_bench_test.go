package fleet_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/blobswarm/blobswarm/integration/fleetbench"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// BenchmarkLazyFirstRange times a lazy pull's first two reads of a 24 MiB
// layer (the footer, then the 1 MiB table of contents before it) through
// a new mirror, against the same reads straight from the origin. Every
// link carries 2 MiB/s: the origin's answers, the tracker's and the peer
// mirror's uploads. Two shapes:
//
//   - warm: a peer mirror and the tracker hold the layer, the new mirror
//     has none of it (the common case of a rollout);
//   - cold: nobody has it: the tracker's seeder reads it from the origin,
//     in order, and hands out each piece's hash as it goes, the last after
//     its digest check; the footer is in the last piece.
//
// Each is the median of b.N new mirrors; run with -benchtime 3x. Nothing
// passes or fails on speed.
func BenchmarkLazyFirstRange(b *testing.B) {
	const link = 2 << 20
	secret := writeSecretFile(b, b.TempDir(), "secret", "fleet-lazy-bench")
	f := newFleet(b, fleetOptions{
		mirrors:     1,
		wrapOrigin:  throttleBlobs(link),
		trackerArgs: []string{"--secret-file", secret, "--upload-rate", strconv.Itoa(link)},
		mirrorArgs:  []string{"--tracker-secret-file", secret, "--upload-rate", strconv.Itoa(link)},
	})
	warm := f.push(b, "bench/lazy:warm", 1, 24<<20)
	checkPulled(b, warm, pullAll(b.Context(), warm, f.mirrors))

	var direct, warmMirror, coldMirror [2][]time.Duration
	for i := 0; i < b.N; i++ {
		cold := f.push(b, fmt.Sprintf("bench/lazy:cold%d", i), 1, 24<<20)
		addAll(&direct, lazyFirstReads(b, f, nil, warm))
		m := f.addMirror(b)
		addAll(&warmMirror, lazyFirstReads(b, f, m, warm))
		m.Kill()
		m = f.addMirror(b)
		addAll(&coldMirror, lazyFirstReads(b, f, m, cold))
		m.Kill()
	}
	for i, what := range []string{"footer", "toc"} {
		d, w, c := fleetbench.Percentile(direct[i], 50), fleetbench.Percentile(warmMirror[i], 50), fleetbench.Percentile(coldMirror[i], 50)
		b.ReportMetric(ms(d), what+"-direct-ms")
		b.ReportMetric(ms(w), what+"-warm-ms")
		b.ReportMetric(ms(c), what+"-cold-ms")
		b.ReportMetric(ms(w)/ms(d), what+"-warm/direct")
		b.ReportMetric(ms(c)/ms(d), what+"-cold/direct")
	}
}

// lazyFirstReads reads the footer and then the table of contents of the
// image's layer through m (from the origin if m is nil) and returns the
// time from the first request to the end of each answer.
func lazyFirstReads(b *testing.B, f *fleet, m *mirror, image testimage.Pushed) [2]time.Duration {
	layer := image.Images[0].Layers[0]
	base := f.origin.Server.URL
	if m != nil {
		base = m.URL()
	}
	var took [2]time.Duration
	start := time.Now()
	for i, r := range lazyReads[:2] {
		rng, _ := r.rangeOf(layer.Size)
		if got := readBlob(b, f, base, image.Repository, layer.Digest, rng); int64(len(got)) != r.n {
			b.Fatalf("%s through %s: %d bytes, want %d", r.what, base, len(got), r.n)
		}
		took[i] = time.Since(start)
	}
	return took
}

func addAll(to *[2][]time.Duration, d [2]time.Duration) {
	for i := range d {
		to[i] = append(to[i], d[i])
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// throttleBlobs sends each blob answer at bytesPerSec, as an origin behind
// a link of that speed would.
func throttleBlobs(bytesPerSec int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/blobs/") {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&throttled{ResponseWriter: w, r: r, lim: rate.NewLimiter(rate.Limit(bytesPerSec), 32<<10)}, r)
		})
	}
}

type throttled struct {
	http.ResponseWriter
	r   *http.Request
	lim *rate.Limiter
}

func (t *throttled) Write(p []byte) (int, error) {
	var sent int
	for len(p) > 0 {
		n := min(len(p), t.lim.Burst())
		if err := t.lim.WaitN(t.r.Context(), n); err != nil {
			return sent, err
		}
		k, err := t.ResponseWriter.Write(p[:n])
		sent += k
		if err != nil {
			return sent, err
		}
		p = p[n:]
	}
	return sent, nil
}
