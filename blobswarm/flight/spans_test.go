package flight

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSpansMergeWhatTouches(t *testing.T) {
	var s spans
	for _, a := range []span{{10, 20}, {30, 40}, {0, 5}, {20, 30}, {5, 6}, {50, 50}, {45, 60}, {44, 46}} {
		s = s.add(a.off, a.end)
	}
	want := spans{{0, 6}, {10, 40}, {44, 60}}
	if !slices.Equal(s, want) {
		t.Fatalf("spans %v, want %v", s, want)
	}
	for _, tc := range []struct{ off, want int64 }{
		{0, 6}, {5, 6}, {6, 6}, {9, 9}, {10, 40}, {39, 40}, {40, 40}, {44, 60}, {60, 60}, {100, 100},
	} {
		if got := s.reach(tc.off); got != tc.want {
			t.Errorf("reach(%d) = %d, want %d", tc.off, got, tc.want)
		}
	}
}

// Whatever order pieces come in, the set says of each byte what a plain
// array of flags says.
func TestSpansAgreeWithFlags(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		const n = 64
		var flags [n + 1]bool
		var s spans
		for range r.IntN(20) {
			off := r.Int64N(n)
			end := off + r.Int64N(n-off+1)
			for i := off; i < end; i++ {
				flags[i] = true
			}
			s = s.add(off, end)
		}
		for off := int64(0); off <= n; off++ {
			want := off
			for want < n && flags[want] {
				want++
			}
			if got := s.reach(off); got != want {
				t.Fatalf("spans %v: reach(%d) = %d, want %d", s, off, got, want)
			}
		}
		for i := 1; i < len(s); i++ {
			if s[i-1].end >= s[i].off {
				t.Fatalf("spans %v not disjoint and apart", s)
			}
		}
	}
}
