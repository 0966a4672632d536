package cache

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func blob(name string) digest.Digest { return digest.FromString(name) }

// evictions records what the cache asked to evict.
type evictions struct{ got []digest.Digest }

func (e *evictions) evict(d digest.Digest) error { e.got = append(e.got, d); return nil }

// Over the high watermark, the least recently used blobs go until the
// total is under the low one; the one in use stays whatever its age.
func TestEvictsLeastRecentlyUsedDownToLowWatermark(t *testing.T) {
	c := New(Config{Quota: 1000, High: 90, Low: 50})
	for i, name := range []string{"a", "b", "c", "d"} {
		c.Add(blob(name), 200, t0.Add(time.Duration(i)*time.Minute))
	}
	release := c.Use(blob("a")) // oldest, but being served
	defer release()
	c.Use(blob("c"))() // used just now, then released
	var ev evictions
	c.Add(blob("e"), 200, t0.Add(time.Hour)) // 1000 > 900
	if err := c.evictTo(context.Background(), c.low, ev.evict); err != nil {
		t.Fatal(err)
	}
	// Total 1000, target 500: b, d and e go, oldest use first; c was
	// used last, a is in use.
	if want := []digest.Digest{blob("b"), blob("d"), blob("e")}; !slices.Equal(ev.got, want) {
		t.Fatalf("evicted %v, want b, d, e", ev.got)
	}
	st := c.Stats()
	if st.Bytes != 400 || st.Blobs != 2 || st.Evictions != 3 || st.EvictedBytes != 600 {
		t.Fatalf("stats after eviction: %+v", st)
	}
}

// Run evicts on its own once a new blob passes the high watermark.
func TestRunEvictsWhenOverQuota(t *testing.T) {
	c := New(Config{Quota: 1000})
	c.Add(blob("old"), 600, t0)
	done := make(chan digest.Digest, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx, func(d digest.Digest) error { done <- d; return nil })
	c.Add(blob("new"), 600, t0.Add(time.Minute))
	select {
	case d := <-done:
		if d != blob("old") {
			t.Fatalf("evicted %s, want the older blob", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing evicted at 120% of quota")
	}
}

// A blob whose eviction failed stays accounted; nothing in use or
// unlimited is ever evicted.
func TestEvictionFailuresAndLimits(t *testing.T) {
	c := New(Config{Quota: 100})
	c.Add(blob("a"), 100, t0)
	c.Add(blob("b"), 100, t0)
	err := c.evictTo(context.Background(), 0, func(d digest.Digest) error {
		if d == blob("a") {
			return errors.New("disk says no")
		}
		return nil
	})
	if err == nil || c.Stats().Bytes != 100 {
		t.Fatalf("after one failed eviction: err %v, stats %+v", err, c.Stats())
	}

	u := New(Config{})
	u.Add(blob("x"), 1<<40, t0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	u.Run(ctx, func(digest.Digest) error { t.Fatal("evicted with no quota"); return nil })
}

// The disk filled up below the quota: room is made at once.
func TestSqueezeFreesRoomBelowQuota(t *testing.T) {
	c := New(Config{})
	c.Add(blob("a"), 300, t0)
	c.Add(blob("b"), 300, t0.Add(time.Minute))
	var ev evictions
	if err := c.Squeeze(context.Background(), 100, ev.evict); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ev.got, []digest.Digest{blob("a")}) {
		t.Fatalf("squeezed %v, want the older blob only", ev.got)
	}
	// More than all that is left: keep what there is.
	if err := c.Squeeze(context.Background(), 1000, ev.evict); err == nil || len(ev.got) != 1 {
		t.Fatalf("impossible squeeze: err %v, evicted %v", err, ev.got)
	}
}

func TestParseQuota(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"", 0}, {"0", 0}, {"1024", 1024}, {"50GiB", 50 << 30}, {"500 MB", 500e6}, {"1.5KiB", 1536},
	} {
		got, err := ParseQuota(tc.in, dir)
		if err != nil || got != tc.want {
			t.Errorf("ParseQuota(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	pct, err := ParseQuota("50%", dir+"/not/yet/there")
	if err != nil || pct <= 0 {
		t.Errorf("ParseQuota(50%%) = %d, %v; want half the filesystem", pct, err)
	}
	for _, bad := range []string{"-5", "lots", "0%", "101%", "NaN%", "12XB"} {
		if _, err := ParseQuota(bad, dir); err == nil {
			t.Errorf("ParseQuota(%q) accepted", bad)
		}
	}
	if err := (Config{Quota: 10, High: 50, Low: 60}).Validate(); err == nil {
		t.Error("low watermark above high accepted")
	}
}

// Room held for a blob arriving counts as a stored blob's: past the high
// watermark older blobs go to make room, and once stored it is the
// blob's, counted once.
func TestReservationCountsAgainstTheQuota(t *testing.T) {
	c := New(Config{Quota: 1000, High: 90, Low: 60})
	c.Add(blob("old"), 400, t0)
	c.Add(blob("newer"), 200, t0.Add(time.Minute))
	r, err := c.Reserve(blob("arriving"), 400) // 1000 > 900
	if err != nil {
		t.Fatal(err)
	}
	var ev evictions
	if err := c.evictTo(context.Background(), c.low, ev.evict); err != nil {
		t.Fatal(err)
	}
	if want := []digest.Digest{blob("old")}; !slices.Equal(ev.got, want) {
		t.Fatalf("evicted %v, want the oldest blob", ev.got)
	}
	r.Stored()
	r.Release() // after Stored, a no-op
	if st := c.Stats(); st.Bytes != 600 || st.Reserved != 0 || st.Blobs != 2 {
		t.Fatalf("stats once stored: %+v", st)
	}
}

// A blob larger than the quota, or than what blobs arriving and blobs in
// use leave of it, is refused, and nothing is evicted for it.
func TestReservationThatCannotFitEvictsNothing(t *testing.T) {
	c := New(Config{Quota: 1000})
	c.Add(blob("cached"), 300, t0)
	release := c.Use(blob("cached"))
	defer release()
	if _, err := c.Reserve(blob("huge"), 1001); !errors.As(err, new(*QuotaError)) {
		t.Fatalf("Reserve over the quota = %v, want a QuotaError", err)
	}
	r, err := c.Reserve(blob("arriving"), 600)
	if err != nil {
		t.Fatal(err)
	}
	// 300 in use and 600 arriving leave 100.
	var qe *QuotaError
	if _, err := c.Reserve(blob("more"), 200); !errors.As(err, &qe) || qe.Held != 900 {
		t.Fatalf("Reserve beside what is held = %v, want a QuotaError naming 900 bytes held", err)
	}
	r.Release()
	if _, err := c.Reserve(blob("more"), 200); err != nil {
		t.Fatalf("Reserve once the room was given back: %v", err)
	}
	if st := c.Stats(); st.Evictions != 0 || st.Reserved != 200 {
		t.Fatalf("stats: %+v, want no eviction and 200 bytes reserved", st)
	}
}
