package netlab

import "testing"

// Every host of a lab may hold every other in the kernel's one ARP table,
// with room to spare for the entries a previous lab left.
func TestNeighbourLimitsFitTheLab(t *testing.T) {
	for _, n := range []int{2, 67, 200} {
		soft, hard := neighbourLimits(n)
		if soft < n*(n-1) || hard <= soft {
			t.Errorf("%d hosts: gc_thresh2 %d, gc_thresh3 %d; want at least %d, and hard above soft", n, soft, hard, n*(n-1))
		}
	}
}
