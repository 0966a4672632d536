package mirror

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// progressLog records what Fetch reports.
type progressLog struct {
	mu   sync.Mutex
	seen []int64
}

func (p *progressLog) report(n int64) {
	p.mu.Lock()
	p.seen = append(p.seen, n)
	p.mu.Unlock()
}

func (p *progressLog) values() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func (p *progressLog) reached(n int64) bool {
	v := p.values()
	return len(v) > 0 && v[len(v)-1] >= n
}

func TestFetchSharesOneFetchAndOutlivesItsCallers(t *testing.T) {
	const size, held = 1 << 20, 64 << 10
	valve := harness.NewValve(held)
	t.Cleanup(valve.Open)
	o := harness.NewOriginWith(t, origin.Config{}, valve.Wrap)
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/app:v1", 1, size)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	m, data := newTestMirror(t, o)
	layer := pushed.Images[0].Layers[0]
	ref := oci.Blob{Registry: o.Host(), Repo: "app", Digest: layer.Digest}

	type result struct {
		fetched bool
		err     error
	}
	leaving, leave := context.WithCancel(t.Context())
	var left, stayed progressLog
	leftDone, stayedDone := make(chan result, 1), make(chan result, 1)
	go func() {
		fetched, err := m.Fetch(leaving, ref, -1, left.report)
		leftDone <- result{fetched, err}
	}()
	harness.Eventually(t, "the first caller's progress up to the held bytes", func() bool { return left.reached(held) })
	go func() {
		fetched, err := m.Fetch(t.Context(), ref, -1, stayed.report)
		stayedDone <- result{fetched, err}
	}()
	harness.Eventually(t, "the second caller's progress up to the held bytes", func() bool { return stayed.reached(held) })

	leave()
	select {
	case res := <-leftDone:
		if !errors.Is(res.err, context.Canceled) {
			t.Errorf("the caller who left got %v, want context.Canceled", res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch did not return when its caller's context ended")
	}
	valve.Open()
	if res := <-stayedDone; !res.fetched || res.err != nil {
		t.Fatalf("the caller who stayed: fetched %v, %v; want the blob fetched", res.fetched, res.err)
	}
	// Fetch returned after the commit, not merely after the last byte.
	if !slices.Contains(harness.StoredBlobs(t, data), layer.Digest) {
		t.Error("Fetch returned before the blob was in the store")
	}
	if n := o.BlobGETs(layer.Digest); n != 1 {
		t.Errorf("two callers made the origin serve the blob %d times, want once", n)
	}
	got := stayed.values()
	if got[0] != 0 || got[len(got)-1] != layer.Size || !slices.IsSorted(got) {
		t.Errorf("progress %v; want from 0 up to %d, never back", got, layer.Size)
	}

	var again progressLog
	if fetched, err := m.Fetch(t.Context(), ref, -1, again.report); fetched || err != nil {
		t.Errorf("Fetch of a stored blob: fetched %v, %v; want it found in the store", fetched, err)
	}
	if v := again.values(); len(v) != 0 || o.BlobGETs(layer.Digest) != 1 {
		t.Errorf("Fetch of a stored blob reported %v and made %d origin GETs; want nothing and still 1", v, o.BlobGETs(layer.Digest))
	}
}
