package uploadcap_test

import (
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/blobswarm/uploadcap"
)

// After an idle spell a capped sender may put only a few milliseconds'
// worth on the wire at once, not a second's: that is what fills the
// uplink queue the cap is there to keep short.
func TestUploadLimiterBurstIsMillisecondsNotASecond(t *testing.T) {
	const rate = 10 << 20 // bytes/s
	lim := uploadcap.Limiter(rate, 64<<10)
	if got := lim.Burst(); got != 64<<10 {
		t.Fatalf("burst at 10 MiB/s = %d, want the largest request, 64 KiB (5 ms is only 52 KiB)", got)
	}
	now := time.Now()
	var wait time.Duration
	for range 80 { // 5 MiB in 64 KiB chunks, all at once
		r := lim.ReserveN(now, 64<<10)
		if !r.OK() {
			t.Fatal("a request of the largest size was refused")
		}
		wait = r.DelayFrom(now)
	}
	if want := 490 * time.Millisecond; wait < want {
		t.Fatalf("half a second's worth was let through after %s, want at least %s", wait, want)
	}
	if got := uploadcap.Limiter(1<<30, 64<<10).Burst(); got != (1<<30)/200 {
		t.Fatalf("burst at 1 GiB/s = %d, want 5 ms of it", got)
	}
}
