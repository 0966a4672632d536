package harness

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/blobswarm/blobswarm/internal/origin"
)

// Valve holds back the blob bodies an origin sends: the first Pass bytes of
// every blob GET go out at once, the rest wait until Open. It catches a
// download in the middle without depending on timing.
type Valve struct {
	Pass int64
	// headers holds the answer back whole: an origin that has not
	// answered at all.
	headers bool

	once sync.Once
	open chan struct{}
}

// NewValve returns a closed valve that lets pass bytes of each blob through.
func NewValve(pass int64) *Valve {
	return &Valve{Pass: pass, open: make(chan struct{})}
}

// NewHeaderValve returns a closed valve that holds back blob GETs whole,
// headers included: the client does not even learn the blob's size.
func NewHeaderValve() *Valve {
	return &Valve{headers: true, open: make(chan struct{})}
}

// Open lets every held and future blob body flow. It may be called again.
func (v *Valve) Open() { v.once.Do(func() { close(v.open) }) }

// Wrap holds back blob GETs served by next; use it with NewOriginWith.
func (v *Valve) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "/blobs/uploads/") {
			next.ServeHTTP(w, r)
			return
		}
		if v.headers {
			select {
			case <-v.open:
			case <-r.Context().Done():
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&valveWriter{ResponseWriter: w, v: v, r: r}, r)
	})
}

type valveWriter struct {
	http.ResponseWriter
	v       *Valve
	r       *http.Request
	written int64
}

func (w *valveWriter) Write(b []byte) (int, error) {
	var sent int
	if free := w.v.Pass - w.written; free > 0 {
		n, err := w.ResponseWriter.Write(b[:min(free, int64(len(b)))])
		w.written += int64(n)
		sent += n
		if err != nil || sent == len(b) {
			return sent, err
		}
	}
	select {
	case <-w.v.open:
	default:
		// What passed, or with Pass 0 the headers alone, reaches the
		// client before the rest is held back.
		if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil {
			return sent, err
		}
		select {
		case <-w.v.open:
		case <-w.r.Context().Done():
			return sent, w.r.Context().Err()
		}
	}
	n, err := w.ResponseWriter.Write(b[sent:])
	w.written += int64(n)
	return sent + n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *valveWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// NewHeldOrigin serves an origin whose blob bodies stop after pass bytes
// until the returned valve opens, which it does when the test ends at the
// latest.
func NewHeldOrigin(t testing.TB, pass int64) (*Origin, *Valve) {
	t.Helper()
	v := NewValve(pass)
	o := NewOriginWith(t, origin.Config{}, v.Wrap)
	t.Cleanup(v.Open)
	return o, v
}
