package netlab

import (
	"context"
	"fmt"
	"slices"
)

// SetUploadRate reshapes what h sends to rate, in place and while traffic
// flows, leaving its download (shaped on the switch's end) as it was: a
// host with a slow uplink, as an overloaded NIC or a congested rack makes
// one. h.Rate keeps the rate the lab was built with.
func (l *Lab) SetUploadRate(ctx context.Context, h *Host, rate Rate) error {
	if rate <= 0 {
		return fmt.Errorf("netlab: host %s: rate must be positive", h.Name)
	}
	// The lab's own shaping, with the token bucket filter (the last
	// qdisc, under the delay if there is one) replaced where it sits.
	steps := shape(h.NS, HostIface, rate, l.cfg.Latency, l.cfg.MTU)
	tbf := steps[len(steps)-1]
	tbf[slices.Index(tbf, "add")] = "replace"
	if err := run(ctx, tbf...); err != nil {
		return fmt.Errorf("netlab: set %s's upload rate to %s: %w", h.Name, rate, err)
	}
	return nil
}
