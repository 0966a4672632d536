package mirror_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// TestConcurrentColdRequestsShareOneFetch sends 20 requests for a blob the
// mirror does not have. The origin holds the blob back after its first
// MiB until all 20 have arrived, so every later request must join the
// download in progress; the origin must see one GET.
func TestConcurrentColdRequestsShareOneFetch(t *testing.T) {
	t.Parallel()
	const clients, size = 20, 32 << 20
	valve := harness.NewValve(1 << 20)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	_, d := pushBlob(t, o, "app", size)
	data := t.TempDir()
	m := startMirror(t, data, upstreamFlag(o))
	url := m.URL() + "/v2/app/blobs/" + d.String() + "?ns=" + o.Host()

	type result struct {
		status int
		n      int64
		got    digest.Digest
		err    error
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			var r result
			defer func() { results <- r }()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
			if err != nil {
				r.err = err
				return
			}
			resp, err := http.DefaultClient.Do(req)
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
	waitMetric(t, m, clients, cacheMetric, "kind", "blob")
	valve.Open()
	for range clients {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || r.n != size || r.got != d {
			t.Errorf("client got status %d, %d bytes with digest %s, err %v; want 200, %d bytes of %s", r.status, r.n, r.got, r.err, size, d)
		}
	}

	if n := o.BlobGETs(d); n != 1 {
		t.Errorf("origin served the blob %d times, want once", n)
	}
	if miss, joined := m.Metric(cacheMetric, "kind", "blob", "result", "miss"), m.Metric(cacheMetric, "kind", "blob", "result", "joined"); miss != 1 || joined != clients-1 {
		t.Errorf("mirror counted %v misses and %v joins, want 1 and %d", miss, joined, clients-1)
	}
	harness.Eventually(t, "blob committed", func() bool { return m.Metric(inflightMetric) == 0 })
	if files := filesUnder(t, data+"/tmp"); len(files) != 0 {
		t.Errorf("tmp/ still holds %v after the fetch finished", files)
	}
	f, err := digestFile(harness.BlobPath(data, d))
	if err != nil || f != d {
		t.Errorf("stored blob hashes to %s (%v), want %s", f, err, d)
	}
}
