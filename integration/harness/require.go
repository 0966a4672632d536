package harness

import (
	"fmt"
	"os"
	"testing"
)

// Missing ends a test that cannot run because the machine lacks something:
// a skip that names it, or a failure when REQUIRE_E2E=1 says the run must
// not skip (CI, where the missing thing is a setup bug).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("REQUIRE_E2E") == "1" {
		t.Fatal(msg + " (REQUIRE_E2E=1)")
	}
	t.Skip(msg)
}
