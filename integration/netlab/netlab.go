// Package netlab builds a small datacenter on one Linux machine: a network
// namespace per host, all plugged into a bridge in a "switch" namespace by
// veth pairs whose both ends are shaped with tc, so each host's upload and
// download are limited to its link's rate. It needs root and iproute2.
//
// Every name it creates lives inside namespaces called <prefix>-<name>, so
// removing those namespaces (and the processes in them) removes everything:
// New does that first for leftovers of a run that crashed, Close at the end.
package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HostSpec is one host to create.
type HostSpec struct {
	// Name is short and unique in the lab: it names the host's namespace
	// and its port on the switch (at most 15 bytes, an interface name).
	Name string
	// Rate caps the host's link in each direction.
	Rate Rate
}

// Config describes a lab.
type Config struct {
	// Prefix starts every namespace name; leftovers with it are removed.
	Prefix string
	// Subnet holds the hosts' addresses, given in order from its second
	// address on. The default is 10.77.0.0/24.
	Subnet netip.Prefix
	Hosts  []HostSpec
	// Latency, when set, delays every packet a host sends (netem), so it is
	// the one-way delay between two hosts. It needs the sch_netem module.
	Latency time.Duration
	// MTU of every link; the default is Ethernet's 1500. Jumbo frames
	// (9000) cut the per-packet CPU cost of the emulation about sixfold.
	MTU int
}

func (c Config) withDefaults() Config {
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.77.0.0/24")
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	return c
}

func (c Config) validate() error {
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "/ ") {
		return fmt.Errorf("netlab: prefix %q: want a non-empty name", c.Prefix)
	}
	if !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 30 {
		return fmt.Errorf("netlab: subnet %s: want an IPv4 prefix of /30 or larger", c.Subnet)
	}
	seen := map[string]bool{switchName: true}
	for _, h := range c.Hosts {
		switch {
		case h.Name == "" || len(h.Name) > 15 || strings.ContainsAny(h.Name, "/ "):
			return fmt.Errorf("netlab: host name %q: want 1-15 bytes without / or space", h.Name)
		case seen[h.Name]:
			return fmt.Errorf("netlab: host name %q used twice (or reserved)", h.Name)
		case h.Rate <= 0:
			return fmt.Errorf("netlab: host %s: rate must be positive", h.Name)
		}
		seen[h.Name] = true
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return fmt.Errorf("netlab: MTU %d: want 576 to 65535", c.MTU)
	}
	if n := 1<<(32-c.Subnet.Bits()) - 2; len(c.Hosts) > n-1 {
		return fmt.Errorf("netlab: %d hosts do not fit in %s", len(c.Hosts), c.Subnet)
	}
	return nil
}

const (
	switchName = "switch"
	bridgeName = "br0"
	// HostIface is the name of every host's one interface.
	HostIface = "eth0"
)

// Lab is a running set of namespaces.
type Lab struct {
	cfg   Config
	log   *slog.Logger
	hosts []*Host

	closeOnce sync.Once
	closeErr  error
}

// Host is one namespace on the switch.
type Host struct {
	Name string
	// NS is the namespace's name for `ip netns`.
	NS   string
	Addr netip.Addr
	Rate Rate
}

// Available says why this machine cannot run a lab, or nil if it can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab needs root (network namespaces, veths, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab needs %s from iproute2: %w", tool, err)
		}
	}
	return nil
}

// New removes what a previous lab with the same prefix left behind and
// builds this one. On error nothing of it is left.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Lab, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if err := Cleanup(ctx, cfg.Prefix, log); err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, log: log}
	addr := cfg.Subnet.Masked().Addr().Next()
	for _, spec := range cfg.Hosts {
		addr = addr.Next()
		l.hosts = append(l.hosts, &Host{Name: spec.Name, NS: l.ns(spec.Name), Addr: addr, Rate: spec.Rate})
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *Lab) ns(name string) string { return l.cfg.Prefix + "-" + name }

func (l *Lab) build(ctx context.Context) error {
	if err := raiseNeighbourLimits(len(l.hosts)); err != nil {
		return err
	}
	sw := l.ns(switchName)
	mtu := strconv.Itoa(l.cfg.MTU)
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "add", bridgeName, "mtu", mtu, "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "dev", bridgeName, "up"},
	}
	for _, h := range l.hosts {
		cidr := netip.PrefixFrom(h.Addr, l.cfg.Subnet.Bits()).String()
		steps = append(steps,
			[]string{"ip", "netns", "add", h.NS},
			// Both ends are created in their namespaces: nothing ever
			// appears in the machine's own.
			[]string{"ip", "link", "add", HostIface, "netns", h.NS, "type", "veth", "peer", "name", h.Name, "netns", sw},
			[]string{"ip", "-n", h.NS, "link", "set", "dev", "lo", "up"},
			[]string{"ip", "-n", h.NS, "addr", "add", cidr, "dev", HostIface},
			[]string{"ip", "-n", h.NS, "link", "set", "dev", HostIface, "mtu", mtu, "up"},
			[]string{"ip", "-n", sw, "link", "set", "dev", h.Name, "mtu", mtu, "master", bridgeName, "up"},
		)
		// The host's end shapes its upload, the switch's end its download.
		steps = append(steps, shape(h.NS, HostIface, h.Rate, l.cfg.Latency, l.cfg.MTU)...)
		steps = append(steps, shape(sw, h.Name, h.Rate, 0, l.cfg.MTU)...)
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return err
		}
	}
	l.log.Info("netlab up", "prefix", l.cfg.Prefix, "hosts", len(l.hosts), "subnet", l.cfg.Subnet, "latency", l.cfg.Latency, "mtu", l.cfg.MTU)
	return nil
}

// shape caps what leaves dev at rate, after an optional delay.
func shape(ns, dev string, rate Rate, delay time.Duration, mtu int) [][]string {
	// The bucket must hold a few milliseconds of traffic at the rate (the
	// kernel refills it per tick) and a whole GSO super-packet (64 KiB):
	// tbf splits a packet larger than its bucket in software, CPU the
	// emulation should not spend on these 2 cores.
	burst := max(int64(rate.BytesPerSecond()*0.004), 128<<10, int64(4*mtu))
	tbf := []string{"tbf", "rate", strconv.FormatInt(int64(rate), 10) + "bit",
		"burst", strconv.FormatInt(burst, 10), "latency", "50ms"}
	if delay <= 0 {
		return [][]string{append([]string{"tc", "-n", ns, "qdisc", "add", "dev", dev, "root"}, tbf...)}
	}
	usec := strconv.FormatInt(delay.Microseconds(), 10) + "us"
	return [][]string{
		{"tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", usec},
		append([]string{"tc", "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:"}, tbf...),
	}
}

// Hosts lists the lab's hosts in the order of Config.Hosts.
func (l *Lab) Hosts() []*Host { return l.hosts }

// Host returns the host called name, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Close kills every process in the lab's namespaces and removes them. It
// is safe to call more than once and from several goroutines.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = Cleanup(context.Background(), l.cfg.Prefix, l.log)
	})
	return l.closeErr
}

// CloseOnSignal removes the lab when the process gets SIGINT or SIGTERM,
// runs also (if not nil) to remove what the caller made besides, then
// exits, since a benchmark or test killed that way would otherwise leave
// its namespaces, processes and files behind. Call the returned function
// once the lab is closed.
func (l *Lab) CloseOnSignal(also func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			l.log.Warn("signal: removing the lab", "signal", sig.String(), "prefix", l.cfg.Prefix)
			if err := l.Close(); err != nil {
				l.log.Error("netlab cleanup", "err", err)
			}
			if also != nil {
				also()
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// Cleanup kills the processes in every namespace whose name starts with
// prefix-, and removes those namespaces (their veths and bridge go too).
func Cleanup(ctx context.Context, prefix string, log *slog.Logger) error {
	names, err := Namespaces(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if err := killAll(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range names {
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(names) > 0 {
		log.Info("netlab removed", "namespaces", len(names), "prefix", prefix)
	}
	return errors.Join(errs...)
}

// Namespaces lists the namespaces whose names start with prefix-.
func Namespaces(ctx context.Context, prefix string) ([]string, error) {
	out, err := output(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(out) {
		// Lines read "name" or "name (id: 3)".
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			names = append(names, name)
		}
	}
	return names, nil
}

// killAll SIGKILLs every process in namespace ns and waits until none is
// left, so that the namespace really goes away with `ip netns del`.
func killAll(ctx context.Context, ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := Pids(ctx, ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: processes %v in %s survive SIGKILL", pids, ns)
		}
		for _, pid := range pids {
			// A killed child stays a zombie until its parent reaps it, but
			// it holds no namespace any more and `ip netns pids` drops it.
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pids lists the processes in namespace ns, except this one (a thread of
// it may be visiting the namespace to open a socket there).
func Pids(ctx context.Context, ns string) ([]int, error) {
	out, err := output(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("ip netns pids %s: %q: %w", ns, f, err)
		}
		if pid != os.Getpid() && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Command runs name with args inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Counters are an interface's totals since it was created, on the wire:
// Ethernet, IP and TCP headers included.
type Counters struct {
	RxBytes, TxBytes int64
}

// Counters reads the host's interface counters.
func (h *Host) Counters(ctx context.Context) (Counters, error) {
	out, err := output(ctx, "ip", "-n", h.NS, "-s", "-j", "link", "show", "dev", HostIface)
	if err != nil {
		return Counters{}, err
	}
	var links []struct {
		Stats struct {
			Rx struct{ Bytes int64 } `json:"rx"`
			Tx struct{ Bytes int64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return Counters{}, fmt.Errorf("netlab: counters of %s in %s: %q: %v", HostIface, h.NS, out, err)
	}
	return Counters{RxBytes: links[0].Stats.Rx.Bytes, TxBytes: links[0].Stats.Tx.Bytes}, nil
}

// Qdiscs returns `tc qdisc show` for the host's interface and for its port
// on the switch, to check or log how the link is shaped.
func (l *Lab) Qdiscs(ctx context.Context, h *Host) (host, port string, err error) {
	if host, err = output(ctx, "tc", "-n", h.NS, "qdisc", "show", "dev", HostIface); err != nil {
		return "", "", err
	}
	port, err = output(ctx, "tc", "-n", l.ns(switchName), "qdisc", "show", "dev", h.Name)
	return host, port, err
}

func run(ctx context.Context, args ...string) error {
	_, err := output(ctx, args...)
	return err
}

func output(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if slices.Contains(args, "netem") {
			msg += " (latency needs the sch_netem kernel module)"
		}
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
