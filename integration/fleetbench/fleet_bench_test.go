package fleetbench_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/blobswarm/blobswarm/integration/fleetbench"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/netlab"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// cfg is set by the flags after -args (see fleetbench.Config.Bind).
var cfg = fleetbench.Defaults()

func init() { cfg.Bind(flag.CommandLine) }

func TestMain(m *testing.M) {
	fleetbench.RunChildIfAsked()
	harness.Main(m)
}

// labPrefix names the benchmark's namespaces; a crashed run's leftovers
// with it are removed when the next run starts.
const labPrefix = "bsfleet"

// Ports inside the hosts; every host has its own address.
const (
	registryPort = "5000"
	trackerPort  = "7070"
	mirrorPort   = "5000"
	peerPort     = "6881"
)

// Metrics the mirrors export.
const (
	receivedMetric  = "blobswarm_mirror_received_bytes_total"
	fallbacksMetric = "blobswarm_mirror_origin_fallbacks_total"
)

// BenchmarkFleet rolls a fresh image out to every host of an emulated
// datacenter at the same moment, once per mode and run: central (a plain
// caching mirror per host, all pulling from the origin) and swarm (the
// same mirrors with the tracker), the tracker on a host of its own or
// beside the origin registry on its host (-topology); with -single also
// one host alone, directly and through the swarm. The origin host's and
// the tracker host's sent bytes are counted on their interfaces.
// It needs root; run it with `make bench-fleet`.
func BenchmarkFleet(b *testing.B) {
	if err := netlab.Available(); err != nil {
		b.Skipf("the fleet benchmark builds a network of namespaces: %v", err)
	}
	c := cfg.WithDefaults()
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	if c.Out != "" {
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f := newFleet(b, c, log)
	report := fleetbench.Report{Config: c}
	for run := 1; run <= c.Runs; run++ {
		for _, n := range c.Fleets() {
			for _, mode := range c.Modes(run) {
				res := f.rollout(b, mode, run, n)
				log.Info("rollout done", "mode", mode, "run", run, "hosts", len(res.Hosts), "all_done", res.AllDone().Round(time.Millisecond),
					"origin_sent_MiB", res.OriginTx>>20, "tracker_sent_MiB", res.TrackerTx>>20, "cpu_pct", int(res.CPU))
				report.Results = append(report.Results, res)
			}
		}
	}
	if len(c.Sweep) > 0 {
		report.WriteSweep(os.Stdout)
	} else {
		report.WriteTable(os.Stdout)
	}
	report.WriteHosts(os.Stdout)
	if c.Timeline {
		if err := fleetbench.ReportTimelines(os.Stdout, c.Out, c, f.timelines); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range f.profiles {
		if err := fleetbench.WriteTop(os.Stdout, p.title+", tracker", p.tracker); err != nil {
			b.Error(err)
		}
		if err := fleetbench.WriteTop(os.Stdout, fmt.Sprintf("%s, %d mirrors merged", p.title, len(p.mirrors)), p.mirrors); err != nil {
			b.Error(err)
		}
	}
	if c.Out != "" {
		path, plotFn := filepath.Join(c.Out, "fleet.png"), report.Plot
		if len(c.Sweep) > 0 {
			path, plotFn = filepath.Join(c.Out, "sweep.png"), report.PlotSweep
		}
		if err := plotFn(path); err != nil {
			b.Fatal(err)
		}
		fmt.Println("plot:", path)
	}
	fmt.Println(report.FleetLine())
	swarm, central := report.Median(c.PrimarySwarm()), report.Median(fleetbench.Central)
	b.ReportMetric(swarm.AllDone, "swarm-s")
	b.ReportMetric(central.AllDone, "central-s")
	b.ReportMetric(swarm.OriginTimesImage, "swarm-origin-x-image")
	b.ReportMetric(central.OriginTimesImage, "central-origin-x-image")
	if x := report.SingleRatio(); x > 0 {
		b.ReportMetric(x, "single-swarm/direct")
	}
}

// fleet is the lab with its origin registry running.
type fleet struct {
	cfg        fleetbench.Config
	log        *slog.Logger
	bin        string
	lab        *netlab.Lab
	origin     *netlab.Host
	tracker    *netlab.Host // the tracker's own host; nil if no mode needs one
	mirrors    []*netlab.Host
	registry   string // host:port, as in image references
	originProc *netlab.Proc
	root       string                   // every file the benchmark writes
	logs       string                   // every process's output, kept for a failure
	timelines  []fleetbench.TimelineRun // with -timeline
	profiles   []profileRun             // with -profile
}

// profileRun is one rollout's CPU profiles.
type profileRun struct {
	title            string
	tracker, mirrors []string
}

func newFleet(b *testing.B, c fleetbench.Config, log *slog.Logger) *fleet {
	b.Helper()
	root, err := os.MkdirTemp("", "blobswarm-fleet-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	f := &fleet{cfg: c, log: log, bin: c.Bin, root: root, logs: filepath.Join(root, "logs")}
	built := f.bin == ""
	if built {
		f.bin = harness.Binary(b)
	}
	if err := os.Mkdir(f.logs, 0o755); err != nil {
		b.Fatal(err)
	}
	specs := []netlab.HostSpec{{Name: "origin", Rate: c.OriginLink}}
	if c.TrackerHost() {
		specs = append(specs, netlab.HostSpec{Name: "tracker", Rate: c.TrackerLink})
	}
	firstMirror := len(specs)
	for i := 1; i <= c.Nodes; i++ {
		specs = append(specs, netlab.HostSpec{Name: "h" + strconv.Itoa(i), Rate: c.Link})
	}
	lab, err := netlab.New(b.Context(), netlab.Config{Prefix: labPrefix, Hosts: specs, Latency: c.Latency, MTU: c.MTU}, log)
	if err != nil {
		b.Fatal(err)
	}
	// Killed, the benchmark removes its files too; harness.Main would
	// remove the binary's directory on a normal exit.
	stop := lab.CloseOnSignal(func() {
		os.RemoveAll(root)
		if built {
			os.RemoveAll(filepath.Dir(f.bin))
		}
	})
	b.Cleanup(func() {
		if err := lab.Close(); err != nil {
			b.Error(err)
		}
		stop()
	})
	f.lab, f.origin, f.tracker, f.mirrors = lab, lab.Host("origin"), lab.Host("tracker"), lab.Hosts()[firstMirror:]
	f.registry = net.JoinHostPort(f.origin.Addr.String(), registryPort)
	f.originProc = netlab.Start(b, "origin", f.logs, fleetbench.OriginCommand(context.Background(), f.origin, filepath.Join(root, "origin"), f.registry))
	f.origin.WaitReady(b, "http://"+f.registry+"/v2/", f.originProc)
	return f
}

// rollout pushes a fresh image, starts fresh mirrors (and, for the swarm,
// a fresh tracker on the host the mode puts it on), pulls the image on
// the first nodes hosts (or, for a single mode, the first alone) at the
// same moment and measures it.
func (f *fleet) rollout(b *testing.B, mode string, run, nodes int) fleetbench.ModeResult {
	b.Helper()
	ctx := b.Context()
	c := f.cfg
	spec := fleetbench.ModeOf(mode)
	hosts := f.mirrors[:nodes]
	if spec.Single {
		hosts = hosts[:1]
	}
	var trackerHost *netlab.Host
	switch spec.Tracker {
	case fleetbench.TrackerOwnHost:
		trackerHost = f.tracker
	case fleetbench.TrackerBesideOrigin:
		trackerHost = f.origin
	}
	image, err := testimage.PushImage(ctx, fmt.Sprintf("%s/fleet/app:%s-%d-%d", f.registry, mode, len(hosts), run),
		c.Layers, c.Size/int64(c.Layers), remote.WithTransport(f.origin.Transport()))
	if err != nil {
		b.Fatal(err)
	}
	res := fleetbench.ModeResult{Mode: mode, Run: run, Nodes: len(hosts)}
	for _, blob := range image.Blobs() {
		res.ImageBytes += blob.Size
	}
	data, err := os.MkdirTemp(f.root, mode+"-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(data)

	var procs []*netlab.Proc
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	upstream := f.registry + "=http://" + f.registry
	var swarmArgs []string
	var trackerURL string
	if trackerHost != nil {
		addr := trackerHost.Addr.String()
		args := append([]string{"tracker",
			"--listen", net.JoinHostPort(addr, trackerPort), "--peer-listen", net.JoinHostPort(addr, peerPort),
			"--data", filepath.Join(data, "tracker"), "--upstream", upstream, "--log-level", "warn"},
			append(f.debugArgs(trackerHost), strings.Fields(f.cfg.TrackerFlags)...)...)
		tr := netlab.Start(b, "tracker", f.logs, trackerHost.Command(context.Background(), f.bin, args...))
		procs = append(procs, tr)
		trackerURL = "http://" + net.JoinHostPort(addr, trackerPort)
		trackerHost.WaitReady(b, trackerURL+"/readyz", tr)
		swarmArgs = []string{"--tracker", trackerURL}
	}
	mirrorURLs := make([]string, len(hosts))
	for i, h := range hosts {
		addr := h.Addr.String()
		args := []string{"mirror", "--listen", net.JoinHostPort(addr, mirrorPort), "--data", filepath.Join(data, h.Name),
			"--upstream", upstream, "--log-level", "warn"}
		if r := c.MirrorUploadRate(); r > 0 {
			args = append(args, "--upload-rate", strconv.FormatInt(r, 10))
		}
		args = append(append(args, f.debugArgs(h)...), strings.Fields(f.cfg.MirrorFlags)...)
		if swarmArgs != nil {
			args = append(append(args, swarmArgs...), "--peer-listen", net.JoinHostPort(addr, peerPort))
		}
		p := netlab.Start(b, h.Name+"-mirror", f.logs, h.Command(context.Background(), f.bin, args...))
		procs = append(procs, p)
		mirrorURLs[i] = "http://" + net.JoinHostPort(addr, mirrorPort)
		h.WaitReady(b, mirrorURLs[i]+"/readyz", p)
	}

	originBefore := f.counters(b, f.origin)
	// Beside the origin the tracker's bytes are in the origin's count.
	var trackerBefore netlab.Counters
	if spec.Tracker == fleetbench.TrackerOwnHost {
		trackerBefore = f.counters(b, f.tracker)
	}
	rxBefore := make([]netlab.Counters, len(hosts))
	linkBefore := make([]netlab.LinkStats, len(hosts))
	for i, h := range hosts {
		rxBefore[i] = f.counters(b, h)
		linkBefore[i] = f.linkStats(b, h)
	}
	// Far enough ahead that every client process is up and waiting.
	t0 := time.Now().Add(time.Second + time.Duration(len(hosts))*100*time.Millisecond)
	reports := make([]fleetbench.PullReport, len(hosts))
	errs := make([]error, len(hosts))
	clientCPU := make([]time.Duration, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		cmd := fleetbench.PullCommand(ctx, h, image.Ref, mirrorURLs[i], t0, c.Concurrency)
		wg.Go(func() {
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if cmd.ProcessState != nil {
				clientCPU[i] = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			if err != nil {
				errs[i] = fmt.Errorf("client on %s: %w: %s", h.Name, err, stderr.String())
				return
			}
			reports[i], errs[i] = fleetbench.ReadPullReport(out)
		})
	}
	var sampler *fleetbench.Sampler
	if c.Timeline {
		sampler = f.startSampler(ctx, t0, hosts, mirrorURLs, trackerHost, trackerURL)
	}
	var profiles *rolloutProfiles
	if c.Profile > 0 {
		profiles = f.startProfiles(ctx, t0, fmt.Sprintf("cpu-%s-%d", mode, run), hosts, trackerHost)
	}
	daemons := append([]*netlab.Proc{f.originProc}, procs...)
	time.Sleep(time.Until(t0))
	cpu0, err := fleetbench.ReadCPU()
	if err != nil {
		b.Fatal(err)
	}
	daemonCPU0 := cpuOf(b, daemons)
	wg.Wait()
	cpu1, err := fleetbench.ReadCPU()
	if err != nil {
		b.Fatal(err)
	}
	wall := time.Since(t0)
	var timeline fleetbench.Timeline
	if sampler != nil {
		if timeline, err = sampler.Stop(); err != nil {
			f.log.Warn("the timeline misses readings", "mode", mode, "run", run, "failed", timeline.Errors, "err", err)
		}
	}
	if profiles != nil {
		f.keepProfiles(fmt.Sprintf("%s run %d", mode, run), profiles)
	}
	res.CPU = fleetbench.BusyPercent(cpu0, cpu1)
	used := cpuOf(b, daemons) - daemonCPU0
	for _, c := range clientCPU {
		used += c
	}
	res.FleetCPU = 100 * used.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
	res.OriginTx = f.counters(b, f.origin).TxBytes - originBefore.TxBytes
	if spec.Tracker == fleetbench.TrackerOwnHost {
		res.TrackerTx = f.counters(b, f.tracker).TxBytes - trackerBefore.TxBytes
	}

	want := len(image.Blobs()) + 1 // and the manifest
	for i, h := range hosts {
		rep := reports[i]
		switch {
		case errs[i] != nil:
			f.fail(b, procs, "%s rollout: %v", mode, errs[i])
		case rep.Error != "":
			f.fail(b, procs, "%s rollout: client on %s: %s", mode, h.Name, rep.Error)
		case rep.Digest != image.Top.Digest.String() || rep.Blobs != want:
			f.fail(b, procs, "%s rollout: client on %s got %s with %d blobs, want %s with %d", mode, h.Name, rep.Digest, rep.Blobs, image.Top.Digest, want)
		}
		if late := rep.Start.Sub(t0); late > 100*time.Millisecond {
			f.log.Warn("a client started late: the machine is overloaded", "host", h.Name, "late", late)
		}
		m, err := fleetbench.Scrape(ctx, h.HTTPClient(), mirrorURLs[i]+"/metrics")
		if err != nil {
			b.Fatal(err)
		}
		res.Hosts = append(res.Hosts, fleetbench.HostResult{
			Name:       h.Name,
			Done:       rep.End.Sub(t0),
			FirstByte:  rep.FirstByte,
			FromPeers:  m.Sum(receivedMetric, "source", "peers"),
			FromSeeder: m.Sum(receivedMetric, "source", "seeder"),
			FromOrigin: m.Sum(receivedMetric, "source", "origin"),
			Fallbacks:  m.Sum(fallbacksMetric),
			Redundant:  m.Sum("blobswarm_mirror_redundant_bytes_total"),
			WireRx:     f.counters(b, h).RxBytes - rxBefore[i].RxBytes,
			Link:       f.linkStats(b, h).Sub(linkBefore[i]),
		})
	}
	if sampler != nil {
		f.timelines = append(f.timelines, fleetbench.TimelineRun{Result: res, Timeline: timeline})
	}
	return res
}

// startSampler reads the counters of the mirrors on hosts, and of the
// tracker on trackerHost when there is one, from inside their hosts
// during the rollout starting at t0 (-timeline).
func (f *fleet) startSampler(ctx context.Context, t0 time.Time, hosts []*netlab.Host, mirrorURLs []string, trackerHost *netlab.Host, trackerURL string) *fleetbench.Sampler {
	targets := make([]fleetbench.Target, len(hosts))
	for i, h := range hosts {
		targets[i] = fleetbench.Target{Name: h.Name, URL: mirrorURLs[i] + "/metrics", Client: h.HTTPClient()}
	}
	var tracker *fleetbench.Target
	if trackerHost != nil {
		tracker = &fleetbench.Target{Name: "seeder", URL: trackerURL + "/metrics", Client: trackerHost.HTTPClient()}
	}
	return fleetbench.StartSampler(ctx, t0, targets, tracker)
}

// debugArgs serves the profiles of a process on h with -profile.
func (f *fleet) debugArgs(h *netlab.Host) []string {
	if f.cfg.Profile <= 0 {
		return nil
	}
	return []string{"--debug-listen", profileAddr(h)}
}

// profileAddr is where a process on h serves its profiles.
func profileAddr(h *netlab.Host) string {
	return net.JoinHostPort(h.Addr.String(), fleetbench.ProfilePort)
}

// rolloutProfiles is one rollout's CPU profiles being recorded; tracker
// is nil in the modes without one.
type rolloutProfiles struct{ tracker, mirrors *fleetbench.Profiles }

// startProfiles records the CPU profiles of the tracker on trackerHost
// (when there is one) and of the mirrors on hosts from t0 for -profile.
func (f *fleet) startProfiles(ctx context.Context, t0 time.Time, prefix string, hosts []*netlab.Host, trackerHost *netlab.Host) *rolloutProfiles {
	record := func(targets []fleetbench.Target) *fleetbench.Profiles {
		return fleetbench.StartProfiles(ctx, t0, f.cfg.Profile, f.cfg.Out, prefix, targets)
	}
	target := func(name string, h *netlab.Host) fleetbench.Target {
		return fleetbench.Target{Name: name, URL: "http://" + profileAddr(h), Client: h.HTTPClient()}
	}
	r := &rolloutProfiles{}
	if trackerHost != nil {
		r.tracker = record([]fleetbench.Target{target("tracker", trackerHost)})
	}
	mirrors := make([]fleetbench.Target, len(hosts))
	for i, h := range hosts {
		mirrors[i] = target(h.Name, h)
	}
	r.mirrors = record(mirrors)
	return r
}

// keepProfiles waits for a rollout's profiles, which may outlast its
// clients, while its processes still run.
func (f *fleet) keepProfiles(title string, r *rolloutProfiles) {
	wait := func(p *fleetbench.Profiles) []string {
		if p == nil {
			return nil
		}
		paths, err := p.Wait()
		if err != nil {
			f.log.Warn("profiles missing", "rollout", title, "err", err)
		}
		return paths
	}
	f.profiles = append(f.profiles, profileRun{title: title, tracker: wait(r.tracker), mirrors: wait(r.mirrors)})
}

// cpuOf sums the CPU time the processes used so far.
func cpuOf(b *testing.B, procs []*netlab.Proc) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, p := range procs {
		d, err := harness.CPUTime(p.Pid())
		if err != nil {
			b.Fatalf("%s: %v", p.Name, err)
		}
		sum += d
	}
	return sum
}

func (f *fleet) counters(b *testing.B, h *netlab.Host) netlab.Counters {
	b.Helper()
	c, err := h.Counters(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// fail ends the benchmark with the logs of the processes involved.
func (f *fleet) linkStats(b *testing.B, h *netlab.Host) netlab.LinkStats {
	b.Helper()
	s, err := f.lab.LinkStats(b.Context(), h)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func (f *fleet) fail(b *testing.B, procs []*netlab.Proc, format string, args ...any) {
	b.Helper()
	for _, p := range procs {
		b.Logf("%s logs (tail):\n%s", p.Name, p.Tail())
	}
	b.Fatalf(format, args...)
}
