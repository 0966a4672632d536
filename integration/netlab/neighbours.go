package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel keeps one ARP table for every namespace, bounded by the
// machine's own gc_thresh sysctls (gc_thresh3 is 1024 by default). A lab
// whose n hosts all talk to each other needs about n² entries; past the
// bound the kernel refuses new neighbours ("neighbor table overflow" in
// dmesg) and connections fail with "no route to host" or a dial timeout.
// That broke the fleet bench at 64 hosts.
const neighDir = "/proc/sys/net/ipv4/neigh/default"

// neighbourLimits is what gc_thresh2 (soft) and gc_thresh3 (hard) must be
// at least for a lab of n hosts: every host may know every other, and
// entries linger a while after the lab that made them is gone.
func neighbourLimits(n int) (soft, hard int) {
	soft = 2 * n * n
	return soft, 2 * soft
}

// raiseNeighbourLimits lifts the ARP table's bounds to what a lab of n
// hosts needs; it never lowers them.
func raiseNeighbourLimits(n int) error {
	soft, hard := neighbourLimits(n)
	for name, want := range map[string]int{"gc_thresh2": soft, "gc_thresh3": hard} {
		path := filepath.Join(neighDir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("netlab: ARP table bounds: %w", err)
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("netlab: %s: %w", path, err)
		}
		if have >= want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			return fmt.Errorf("netlab: raise %s from %d to %d: %w", path, have, want, err)
		}
	}
	return nil
}
