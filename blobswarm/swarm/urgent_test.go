package swarm

import "testing"

// The pieces a reader waits for are those its bytes touch, the first and
// the last included, whatever the span's alignment.
func TestPiecesOfASpan(t *testing.T) {
	const pl = 512 << 10
	for _, tc := range []struct {
		off, end    int64
		first, last int
	}{
		{0, 1, 0, 0},
		{0, pl, 0, 0},
		{0, pl + 1, 0, 1},
		{pl - 1, pl + 1, 0, 1},
		{pl, 2 * pl, 1, 1},
		{24<<20 - 51, 24 << 20, 47, 47}, // a 24 MiB layer's footer
		{24<<20 - 1<<20 - 51, 24<<20 - 51, 45, 47},
	} {
		first, last := piecesOf(tc.off, tc.end, pl)
		if first != tc.first || last != tc.last {
			t.Errorf("piecesOf(%d, %d) = %d..%d, want %d..%d", tc.off, tc.end, first, last, tc.first, tc.last)
		}
	}
}
