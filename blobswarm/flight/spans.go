package flight

import "slices"

// span is the bytes [off, end) of a blob.
type span struct{ off, end int64 }

// spans is a set of bytes, kept as sorted, disjoint, non-adjacent spans:
// pieces arrive in any order (rarest first), and a reader asks whether the
// bytes from its offset are all in.
type spans []span

// add puts [off, end) in the set, merging it with the spans it touches.
func (s spans) add(off, end int64) spans {
	if off >= end {
		return s
	}
	// The first span that ends at or after off may touch [off, end).
	i, _ := slices.BinarySearchFunc(s, off, func(sp span, off int64) int {
		switch {
		case sp.end < off:
			return -1
		case sp.end > off:
			return 1
		}
		return 0
	})
	j := i
	for j < len(s) && s[j].off <= end {
		off, end = min(off, s[j].off), max(end, s[j].end)
		j++
	}
	return slices.Replace(s, i, j, span{off, end})
}

// reach is where the run of bytes in the set starting at off ends: off
// itself if off is not in the set.
func (s spans) reach(off int64) int64 {
	i, found := slices.BinarySearchFunc(s, off, func(sp span, off int64) int {
		switch {
		case sp.end <= off:
			return -1
		case sp.off > off:
			return 1
		}
		return 0
	})
	if !found {
		return off
	}
	return s[i].end
}
