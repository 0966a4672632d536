package upstream

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"120", 120 * time.Second},
		{"0", time.Second}, // at least a second: a hold of nothing holds nothing
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
		{"", defaultHold},
		{"soon", defaultHold},
		{"-5", defaultHold},
		{"999999", maxHold},
	} {
		if got := retryAfter(http.Header{"Retry-After": {tc.value}}, now); got != tc.want {
			t.Errorf("Retry-After %q: %s, want %s", tc.value, got, tc.want)
		}
	}
}

func TestHoldsRunOutAndArePruned(t *testing.T) {
	var h holds
	now := time.Now()
	h.hold("r repository:a:pull", now, time.Minute)
	if d, ok := h.left("r repository:a:pull", now.Add(20*time.Second)); !ok || d != 40*time.Second {
		t.Errorf("hold 20 s in: %s, %v; want 40 s left", d, ok)
	}
	if _, ok := h.left("r repository:b:pull", now); ok {
		t.Error("another scope is held too")
	}
	if _, ok := h.left("r repository:a:pull", now.Add(time.Minute)); ok {
		t.Error("the hold outlived its Retry-After")
	}
	h.hold("r repository:b:pull", now.Add(2*time.Minute), time.Minute)
	if len(h.until) != 1 {
		t.Errorf("%d holds kept, want the one still running", len(h.until))
	}
}
