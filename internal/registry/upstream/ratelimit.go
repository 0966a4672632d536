package upstream

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// ErrRateLimited says a registry answered 429 Too Many Requests for a
// scope, now or within its Retry-After: until that passes, requests for
// the scope are refused here without reaching the registry, so clients
// retrying (containerd asks six times at once) do not add to its count.
var ErrRateLimited = errors.New("rate limited by the registry (429 Too Many Requests)")

// RateLimited reports whether err is a registry's 429, whether this
// client got it or a tracker passed it on.
func RateLimited(err error) bool {
	var e errcode.Error
	return errors.Is(err, ErrRateLimited) || (errors.As(err, &e) && e.Code == errcode.ErrorCodeTooManyRequests)
}

const (
	// defaultHold is how long a 429 without a usable Retry-After holds.
	defaultHold = 10 * time.Second
	// maxHold bounds what a Retry-After can make the client refuse for.
	maxHold = 15 * time.Minute
)

// retryAfter is how long a 429 answer asks to wait: Retry-After in
// seconds or as an HTTP date, else defaultHold; at most maxHold.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	d := defaultHold
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, time.Second), maxHold)
}

// holds remembers, per registry and scope, until when the registry asked
// not to be asked again.
type holds struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// left is how long the hold on key still runs, if one does.
func (h *holds) left(key string, now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.until[key]
	if !ok || !now.Before(t) {
		return 0, false
	}
	return t.Sub(now), true
}

// hold refuses key until now+d, pruning holds that ran out.
func (h *holds) hold(key string, now time.Time, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.until == nil {
		h.until = map[string]time.Time{}
	}
	for k, t := range h.until {
		if !now.Before(t) {
			delete(h.until, k)
		}
	}
	h.until[key] = now.Add(d)
}

// SetRetryAfter passes a registry's Retry-After on with an error answer
// for err, rounded up to whole seconds, when err is a 429 that had one.
func SetRetryAfter(h http.Header, err error) {
	var ue *Error
	if errors.As(err, &ue) && ue.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((ue.RetryAfter+time.Second-1)/time.Second)))
	}
}
