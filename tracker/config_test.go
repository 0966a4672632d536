package tracker_test

import (
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/tracker"
)

// A Redis URL the client cannot use is refused by Validate, before the
// tracker creates its data dir or listens, like every other bad setting.
func TestValidateRejectsARedisURLTheClientCannotUse(t *testing.T) {
	cfg := tracker.Defaults()
	cfg.Redis = "http://127.0.0.1:6379"
	err := cfg.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "redis: ") {
		t.Fatalf("Validate() = %v, want an error naming redis", err)
	}
}

func TestValidateRejectsNoOriginReads(t *testing.T) {
	cfg := tracker.Defaults()
	cfg.OriginReads = 0
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "origin-reads: ") {
		t.Fatalf("Validate() = %v, want an error naming origin-reads", err)
	}
}
