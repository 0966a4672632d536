package harness

import (
	"context"
	"testing"
	"time"
)

// Eventually polls cond until it holds. The test fails if it does not
// within 30 seconds: that bound catches a hang, it is not a speed check.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
