package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// LinkStats are a host's counters of what its shaped link and its TCP
// stack did: packets the token bucket filters dropped because their
// queue was full, on the host's end (its uploads) and on the switch's
// end (its downloads), and TCP segments sent and sent again.
type LinkStats struct {
	UpDrops, DownDrops   int64
	OutSegs, RetransSegs int64
}

// Sub is the change from an earlier reading.
func (s LinkStats) Sub(before LinkStats) LinkStats {
	return LinkStats{
		UpDrops:     s.UpDrops - before.UpDrops,
		DownDrops:   s.DownDrops - before.DownDrops,
		OutSegs:     s.OutSegs - before.OutSegs,
		RetransSegs: s.RetransSegs - before.RetransSegs,
	}
}

// LinkStats reads h's link and TCP counters.
func (l *Lab) LinkStats(ctx context.Context, h *Host) (LinkStats, error) {
	var s LinkStats
	var err error
	if s.UpDrops, err = qdiscDrops(ctx, h.NS, HostIface); err != nil {
		return s, err
	}
	if s.DownDrops, err = qdiscDrops(ctx, l.ns(switchName), h.Name); err != nil {
		return s, err
	}
	snmp, err := output(ctx, "ip", "netns", "exec", h.NS, "cat", "/proc/net/snmp")
	if err != nil {
		return s, err
	}
	tcp, err := snmpTCP(snmp)
	if err != nil {
		return s, fmt.Errorf("netlab: TCP counters of %s: %w", h.Name, err)
	}
	s.OutSegs, s.RetransSegs = tcp["OutSegs"], tcp["RetransSegs"]
	return s, nil
}

// qdiscDrops sums the drops of every qdisc on a device.
func qdiscDrops(ctx context.Context, ns, dev string) (int64, error) {
	out, err := output(ctx, "tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var qdiscs []struct {
		Drops int64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(out), &qdiscs); err != nil {
		return 0, fmt.Errorf("netlab: qdiscs of %s in %s: %q: %w", dev, ns, out, err)
	}
	var n int64
	for _, q := range qdiscs {
		n += q.Drops
	}
	return n, nil
}

// snmpTCP reads the Tcp: header and value lines of /proc/net/snmp.
func snmpTCP(snmp string) (map[string]int64, error) {
	var lines [][]string
	for _, line := range strings.Split(snmp, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Tcp:" {
			lines = append(lines, f[1:])
		}
	}
	if len(lines) != 2 || len(lines[0]) != len(lines[1]) {
		return nil, fmt.Errorf("no Tcp: header and values in %q", snmp)
	}
	out := make(map[string]int64, len(lines[0]))
	for i, name := range lines[0] {
		v, err := strconv.ParseInt(lines[1][i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Tcp: %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
