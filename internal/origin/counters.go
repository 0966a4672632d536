package origin

import (
	"io"
	"net/http"
	"sync"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/felixge/httpsnoop"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
)

// counters records what the origin actually served: only 2xx and 3xx
// answers count, so auth challenges and misses do not look like traffic.
// A ranged GET (206) counts as a GET of the blob.
type counters struct {
	mu               sync.Mutex
	blobGETs         map[digest.Digest]int
	blobBytes        int64
	manifestRequests int
}

// record serves r with next and records the result.
func (c *counters) record(next http.Handler, w http.ResponseWriter, r *http.Request) {
	route, vars := classify(r)
	blobGET := route == v2.RouteNameBlob && r.Method == http.MethodGet
	// A blob GET counts the moment its status goes out, before its body:
	// a client that has read the whole body (and a test after it) must
	// not see the count the handler would record only once it returns.
	var once sync.Once
	counted := false
	status := func(code int) {
		if code < 200 {
			return
		}
		once.Do(func() {
			if blobGET && code < 400 {
				c.mu.Lock()
				if c.blobGETs == nil {
					c.blobGETs = make(map[digest.Digest]int)
				}
				c.blobGETs[digest.Digest(vars["digest"])]++
				c.mu.Unlock()
				counted = true
			}
		})
	}
	w = httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) { status(code); next(code) }
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) { status(http.StatusOK); return next(b) }
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) { status(http.StatusOK); return next(src) }
		},
	})
	m := httpsnoop.CaptureMetrics(next, w, r)
	if m.Code < 200 || m.Code >= 400 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case counted:
		c.blobBytes += m.Written
	case route == v2.RouteNameManifest && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		c.manifestRequests++
	}
}

// classify names the registry API route r is for, using distribution's own
// router so the origin and the counters agree on what a path means.
func classify(r *http.Request) (string, map[string]string) {
	var match mux.RouteMatch
	if !v2.Router().Match(r, &match) || match.Route == nil {
		return "", nil
	}
	return match.Route.GetName(), match.Vars
}

// BlobGETs is how many GETs of blob d were answered with 2xx or 3xx.
func (o *Origin) BlobGETs(d digest.Digest) int {
	c := &o.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobGETs[d]
}

// TotalBlobGETs is BlobGETs summed over all digests.
func (o *Origin) TotalBlobGETs() int {
	c := &o.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.blobGETs {
		total += n
	}
	return total
}

// BlobBytesSent is the number of blob body bytes sent in answer to GETs.
func (o *Origin) BlobBytesSent() int64 {
	c := &o.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobBytes
}

// ManifestRequests is how many manifest GETs and HEADs were answered with
// 2xx or 3xx.
func (o *Origin) ManifestRequests() int {
	c := &o.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manifestRequests
}

// Reset sets every counter to zero, e.g. after pushing test images.
func (o *Origin) Reset() {
	c := &o.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobGETs = nil
	c.blobBytes = 0
	c.manifestRequests = 0
}
