package harness

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// RateLimit makes an origin answer 429 Too Many Requests with a
// Retry-After of 120 s to every API request but the version check, as
// Docker Hub does at its pull limit, once Start is called; it counts
// the requests it refused.
type RateLimit struct {
	on    atomic.Bool
	asked atomic.Int32
}

// Start turns the limit on.
func (l *RateLimit) Start() { l.on.Store(true) }

// Asked is how many requests the limit refused.
func (l *RateLimit) Asked() int { return int(l.asked.Load()) }

// Wrap is the origin's handler behind the limit (for NewOriginWith).
func (l *RateLimit) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.on.Load() && r.URL.Path != "/v2/" {
			l.asked.Add(1)
			w.Header().Set("Retry-After", "120")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`, http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}
