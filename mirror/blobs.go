package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/internal/registry/byterange"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/turns"
)

func (m *Mirror) serveBlob(w http.ResponseWriter, r *http.Request, req request) {
	ref := oci.Blob{Registry: req.registry, Repo: req.Name, Digest: req.Digest}
	if f, err := m.store.Open(req.Digest); err == nil {
		defer f.Close()
		defer m.cache.Use(req.Digest)()
		m.metrics.cache.WithLabelValues("blob", "hit").Inc()
		m.serveFile(w, r, f, ref)
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		m.writeError(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		// A HEAD is no reason to pull a layer of gigabytes.
		m.metrics.cache.WithLabelValues("blob", "miss").Inc()
		m.headUpstreamBlob(w, r, ref)
		return
	}
	fl, joined, err := m.flight(ref, ask{size: -1})
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	if fl == nil {
		// Committed between our store lookup and now.
		m.serveBlob(w, r, req)
		return
	}
	defer fl.Release()
	result := "miss"
	if joined {
		result = "joined"
	}
	m.metrics.cache.WithLabelValues("blob", result).Inc()
	size, err := fl.Size(r.Context())
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	rng, status := m.blobHeaders(w, r, ref, size)
	if status == http.StatusRequestedRangeNotSatisfiable {
		return
	}
	// The headers go out now, not with the first bytes of the body: those
	// come when the fetch has them from the start of the blob, which from
	// the swarm (pieces rarest first) can be near the end, and clients
	// give up on headers that do not come.
	if err := http.NewResponseController(w).Flush(); err != nil {
		m.log.Warn("blob stream ended early", "digest", ref.Digest, "sent", 0, "err", err)
		panic(http.ErrAbortHandler)
	}
	n, err := streamFlight(r.Context(), w, fl, rng)
	m.metrics.bytesServed.Add(float64(n))
	if err != nil {
		m.log.Warn("blob stream ended early", "digest", ref.Digest, "sent", n, "err", err)
		// Headers are out; only a broken connection tells the client.
		panic(http.ErrAbortHandler)
	}
}

// serveFile answers from the store; io.Copy from the *os.File lets the
// kernel send it (sendfile), never through a user-space buffer.
func (m *Mirror) serveFile(w http.ResponseWriter, r *http.Request, f *os.File, ref oci.Blob) {
	fi, err := f.Stat()
	if err != nil {
		m.writeError(w, r, fmt.Errorf("stat blob %s: %w", ref.Digest, err))
		return
	}
	rng, status := m.blobHeaders(w, r, ref, fi.Size())
	if status == http.StatusRequestedRangeNotSatisfiable || r.Method == http.MethodHead {
		return
	}
	if _, err := f.Seek(rng.Start, io.SeekStart); err != nil {
		panic(http.ErrAbortHandler)
	}
	n, err := io.CopyN(w, f, rng.Length())
	m.metrics.bytesServed.Add(float64(n))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
}

// blobHeaders writes the status line and headers for a blob of the given
// size and returns the span to send.
func (m *Mirror) blobHeaders(w http.ResponseWriter, r *http.Request, ref oci.Blob, size int64) (byterange.Range, int) {
	h := w.Header()
	h.Set("Docker-Content-Digest", ref.Digest.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+ref.Digest.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	full := byterange.Range{Start: 0, End: size - 1}
	if hdr := r.Header.Get("Range"); hdr != "" {
		rng, err := byterange.Parse(hdr, size)
		switch {
		case err == nil:
			h.Set("Content-Range", rng.ContentRange(size))
			h.Set("Content-Length", strconv.FormatInt(rng.Length(), 10))
			w.WriteHeader(http.StatusPartialContent)
			return rng, http.StatusPartialContent
		case errors.Is(err, byterange.ErrUnsatisfiable):
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			} else {
				errcode.ServeJSON(w, errcode.ErrorCodeRangeInvalid.WithMessage(
					fmt.Sprintf("range %q outside blob of %d bytes", hdr, size)).WithDetail(nil))
			}
			return full, http.StatusRequestedRangeNotSatisfiable
		}
		// A range we do not understand is ignored, as RFC 9110 allows.
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return full, http.StatusOK
}

// errQueueFull says a read-ahead found readahead-fetches waiting for a
// slot: what it has not started, clients ask for themselves.
var errQueueFull = errors.New("read-ahead stopped: the fetch queue is full")

// ask is how a blob was asked for.
type ask struct {
	// size is what a manifest's descriptor gives the blob, -1 when no
	// manifest is known: a fetch that starts refuses any other
	// (flight.SizeError).
	size int64
	// readahead is a fetch no client asked for yet; errQueueFull may
	// refuse it.
	readahead bool
}

// flight returns the in-progress fetch of ref, starting one if needed, with
// a reference held for the caller. It returns nil if the blob is already in
// the store. joined says whether the caller shares someone else's fetch.
// A read-ahead starts no fetch while readahead-fetches wait for a slot
// (errQueueFull).
func (m *Mirror) flight(ref oci.Blob, a ask) (*flight.Flight, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fl, ok := m.flights[ref.Digest]; ok && fl.Acquire() {
		return fl, true, nil
	}
	if _, err := m.store.Stat(ref.Digest); err == nil {
		return nil, false, nil
	}
	// Under the lock, like every start of a fetch, so the queue is never
	// longer than the cap.
	if a.readahead && m.fetchSlots.Waiting() >= m.cfg.ReadaheadFetches {
		return nil, false, errQueueFull
	}
	fl := flight.New(a.size)
	fl.Acquire() // the caller's; the fetch goroutine owns the first
	m.flights[ref.Digest] = fl
	// The place in line is taken here, under the lock, so fetches of a
	// registry start in the order they were asked for.
	slot := m.fetchSlots.Enqueue(ref.Registry)
	m.fetches.Go(func() { m.fetch(ref, fl, slot) })
	return fl, false, nil
}

// fetch fills one flight. It runs detached from the request that started
// it: other clients may be streaming from it, and a blob fetched halfway is
// worth finishing for the next pull. The partial file is created once the
// fetch has its slot: a fetch waiting in line costs no file descriptor.
func (m *Mirror) fetch(ref oci.Blob, fl *flight.Flight, slot *turns.Ticket) {
	m.metrics.inflight.Inc()
	defer m.metrics.inflight.Dec()
	defer slot.Leave()
	// Nothing cancels the wait: the fetch goes on without its clients.
	_ = slot.Wait(context.Background())

	var fetched Fetched
	p, err := m.store.NewPartial(ref.Digest)
	if err == nil {
		fl.Begin(p)
		fetched, err = m.source.Fetch(context.Background(), ref, fl)
		if err == nil {
			err = fl.Commit()
		} else {
			fl.Abort()
		}
	}
	m.stored(err)
	if fetched != nil {
		fetched.Committed(err)
	}
	if err != nil {
		m.log.Warn("blob fetch failed", "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest, "err", err)
	} else {
		m.log.Info("blob stored", "registry", ref.Registry, "repo", ref.Repo, "digest", ref.Digest)
	}
	// Unpublish before finishing, under the lock, so a newcomer finds either
	// this flight or the stored blob, never neither.
	m.mu.Lock()
	delete(m.flights, ref.Digest)
	fl.Finish(err)
	m.mu.Unlock()
	fl.Release()
}

// headUpstreamBlob answers a HEAD for a blob the store lacks by asking the
// upstream, without fetching the blob.
func (m *Mirror) headUpstreamBlob(w http.ResponseWriter, r *http.Request, ref oci.Blob) {
	resp, err := m.upstream.Do(r.Context(), http.MethodHead, ref.Registry, ref.Repo, "/v2/"+ref.Repo+"/blobs/"+ref.Digest.String(), nil)
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	resp.Body.Close()
	what := "blob " + ref.Digest.String()
	if resp.StatusCode != http.StatusOK {
		m.writeError(w, r, m.upstream.StatusError(ref.Registry, resp.StatusCode, what))
		return
	}
	if resp.ContentLength < 0 {
		m.writeError(w, r, m.upstream.StatusError(ref.Registry, http.StatusBadGateway, what+": no Content-Length"))
		return
	}
	m.blobHeaders(w, r, ref, resp.ContentLength)
}

// copyBuffers are the buffers blobs are fetched through on a miss. 1 MiB
// instead of io.Copy's 32 KiB: every chunk costs a file write and a wake-up
// of the readers, and at 32 KiB that overhead held a cold miss to a quarter
// of the origin's throughput (see BENCHMARKS.md).
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// ownFileStreams counts the client streams of a miss that send from a
// descriptor of their own (Flight.SendTo: sendfile, no copy through a
// buffer). Past maxOwnFileStreams a stream reads the shared partial file
// through a 64 KiB buffer instead: 500 clients of one cold blob would
// otherwise hold 500 more open files (BENCHMARKS.md, Load).
var ownFileStreams atomic.Int64

const maxOwnFileStreams = 32

var smallBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// streamFlight sends rng of an in-flight blob to a client as it arrives.
func streamFlight(ctx context.Context, w io.Writer, fl *flight.Flight, rng byterange.Range) (int64, error) {
	if ownFileStreams.Add(1) <= maxOwnFileStreams {
		defer ownFileStreams.Add(-1)
		return fl.SendTo(ctx, w, rng.Start, rng.Length())
	}
	ownFileStreams.Add(-1)
	buf := smallBuffers.Get().(*[]byte)
	defer smallBuffers.Put(buf)
	return io.CopyBuffer(writerOnly{w}, fl.NewReader(ctx, rng.Start, rng.Length()), *buf)
}

// writerOnly hides the ResponseWriter's ReadFrom, which would otherwise
// copy in its own 32 KiB chunks and ignore our buffer.
type writerOnly struct{ io.Writer }
