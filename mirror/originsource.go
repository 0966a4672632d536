package mirror

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/swarm"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// sourceCounters are the mirror's metrics that blob sources count into.
// The vectors are passed whole so a series appears with its first count,
// as it always did.
type sourceCounters struct {
	originBytes prometheus.Counter     // blob bytes received from the origin
	fetches     *prometheus.CounterVec // completed fetches by source and result
	fallbacks   *prometheus.CounterVec // trips to the origin by reason
}

// originSource fetches blobs straight from their upstream registry.
type originSource struct {
	up       *upstream.Client
	counters sourceCounters
}

// When the swarm fell short, the bytes it verified stay: only the rest is
// asked for, with a Range request.
func (o *originSource) Fetch(ctx context.Context, ref oci.Blob, fl *flight.Flight) (Fetched, error) {
	from := fl.Verified()
	body, start, size, err := o.up.GetBlobFrom(ctx, ref.Registry, ref.Repo, ref.Digest, from)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if start < from {
		// The upstream ignored the Range and sends the whole blob.
		fl.Rewind()
	}
	if err := fl.Reserve(size); err != nil {
		return nil, err
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	n, err := io.CopyBuffer(fl, body, *buf)
	o.counters.originBytes.Add(float64(n))
	if err == nil && start+n != size {
		err = fmt.Errorf("got %d of %d bytes", start+n, size)
	}
	if err != nil {
		return nil, o.up.StatusError(ref.Registry, http.StatusBadGateway, fmt.Sprintf("reading blob %s: %v", ref.Digest, err))
	}
	o.counters.fetches.WithLabelValues("origin", "ok").Inc()
	// Nothing follows the commit: this fetch had no torrent, so the blob
	// is not seeded.
	return nil, nil
}

// ranges reads spans of ref from the origin: the pieces a stalled swarm
// download lacks.
func (o *originSource) ranges(ref oci.Blob) swarm.RangeSource {
	return func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		body, err := o.up.GetBlobRange(ctx, ref.Registry, ref.Repo, ref.Digest, off, n)
		if err != nil {
			return nil, err
		}
		return countingBody{body, o.counters.originBytes}, nil
	}
}

// countingBody adds what is read to a counter.
type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}
