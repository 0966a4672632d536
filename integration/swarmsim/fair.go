package swarmsim

import "container/heap"

// fairShare.allocate gives every flow its max-min fair rate: each flow crosses two
// links (the sender's uplink, the receiver's downlink), and no flow can
// get more without taking from one that has less. This is the fluid model
// of long-lived TCP connections sharing bottlenecks, which is what the
// fleet bench's links are: a tbf per direction of every host, and each
// peer connection a TCP flow through two of them. Per-flow fairness on
// a FIFO tbf is what TCP approximates over a piece's time (a quarter of a
// second and more at these rates), not per packet.
//
// Progressive filling: the link with the smallest fair share freezes its
// flows at that share, the others' shares grow, repeat. caps are the
// links' capacities in bytes/s; a flow's rate is written to rates. The
// scratch space is kept between calls: a large fleet calls it thousands
// of times.
type fairShare struct {
	left         []float64
	count, start []int
	of, fill     []int
	frozen       []bool
	heap         shareHeap
}

func (s *fairShare) allocate(caps []float64, flows [][2]int, rates []float64) {
	n := len(caps)
	s.left = append(s.left[:0], caps...)
	s.count = resize(s.count, n)
	for _, f := range flows {
		s.count[f[0]]++
		s.count[f[1]]++
	}
	// The flows of each link, in one array (offsets by link).
	s.start = resize(s.start, n+1)
	for l := range n {
		s.start[l+1] = s.start[l] + s.count[l]
	}
	s.of = resize(s.of, s.start[n])
	s.fill = append(s.fill[:0], s.start[:n]...)
	for i, f := range flows {
		for _, l := range f {
			s.of[s.fill[l]] = i
			s.fill[l]++
		}
	}
	s.frozen = resize(s.frozen, len(flows))
	h := s.heap[:0]
	for l := range n {
		if s.count[l] > 0 {
			h = append(h, linkShare{l, s.left[l] / float64(s.count[l])})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := heap.Pop(&h).(linkShare)
		l := top.link
		if s.count[l] == 0 {
			continue
		}
		share := max(s.left[l], 0) / float64(s.count[l])
		if share > top.share {
			// Stale: the link's share grew since it was pushed (shares
			// only grow as flows elsewhere freeze at smaller ones).
			heap.Push(&h, linkShare{l, share})
			continue
		}
		for _, i := range s.of[s.start[l]:s.start[l+1]] {
			if s.frozen[i] {
				continue
			}
			s.frozen[i] = true
			rates[i] = share
			for _, m := range flows[i] {
				s.left[m] -= share
				s.count[m]--
			}
		}
	}
	s.heap = h
}

// resize is s with n zero elements, reusing its array.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

type linkShare struct {
	link  int
	share float64
}

type shareHeap []linkShare

func (h shareHeap) Len() int           { return len(h) }
func (h shareHeap) Less(i, j int) bool { return h[i].share < h[j].share }
func (h shareHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *shareHeap) Push(x any)        { *h = append(*h, x.(linkShare)) }
func (h *shareHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
