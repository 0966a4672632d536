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

// A sentinel set is one string, go-redis's failover URL: master_name makes
// the address a sentinel's, and addr adds more sentinels.
func TestValidateAcceptsAServerOrASentinelSet(t *testing.T) {
	for _, url := range []string{
		"redis://10.0.0.5:6379/0",
		"redis://10.0.0.5:26379/0?master_name=blobswarm",
		"redis://10.0.0.5:26379/0?master_name=blobswarm&addr=10.0.0.6:26379&addr=10.0.0.7:26379",
	} {
		cfg := tracker.Defaults()
		cfg.Redis = url
		if err := cfg.Validate(); err != nil {
			t.Errorf("redis %q: Validate() = %v, want nil", url, err)
		}
	}
}

func TestValidateRejectsABadSentinelSet(t *testing.T) {
	for _, tc := range []struct{ url, says string }{
		{"redis://10.0.0.5:26379/0?master_name=", "master_name is empty"},
		{"redis://10.0.0.5:26379/0?addr=10.0.0.6:26379", "need master_name"},
		{"redis://10.0.0.5:26379/0?master_name=blobswarm&addr=10.0.0.6", "addr"},
		{"redis://10.0.0.5:26379/0?master_name=blobswarm&sentinels=3", "unexpected option: sentinels"},
	} {
		cfg := tracker.Defaults()
		cfg.Redis = tc.url
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "redis: ") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("redis %q: Validate() = %v, want an error naming redis that says %q", tc.url, err, tc.says)
		}
	}
}

func TestValidateRejectsNoOriginReads(t *testing.T) {
	cfg := tracker.Defaults()
	cfg.OriginReads = 0
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "origin-reads: ") {
		t.Fatalf("Validate() = %v, want an error naming origin-reads", err)
	}
}
