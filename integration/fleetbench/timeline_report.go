package fleetbench

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// smoothing is how many sample intervals each plotted rate spans.
const smoothing = 3

// ReportTimelines prints when every host's link was busy in each rollout
// with a tracker and, when dir is not empty, writes every rollout's
// readings there as timeline-<mode>-<run>.csv and each rollout's with a
// tracker receive rates as timeline-<mode>-<run>.png.
func ReportTimelines(w io.Writer, dir string, c Config, runs []TimelineRun) error {
	for _, r := range runs {
		if hasSeeder(r) {
			writeTimelineSummary(w, c, r)
		}
	}
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	for _, r := range runs {
		base := filepath.Join(dir, fmt.Sprintf("timeline-%s-%d", r.Result.Mode, r.Result.Run))
		if err := saveTimelineCSV(base+".csv", r.Timeline); err != nil {
			return err
		}
		fmt.Fprintln(w, "timeline:", base+".csv")
		if !hasSeeder(r) {
			continue
		}
		if err := plotTimeline(base+".png", c, r); err != nil {
			return err
		}
		fmt.Fprintln(w, "timeline plot:", base+".png")
	}
	return nil
}

// hasSeeder says whether a rollout ran a tracker. Those without get no
// summary nor plot: a mirror counts origin bytes only when a blob's copy
// ends, so their timelines are staircases.
func hasSeeder(r TimelineRun) bool { return ModeOf(r.Result.Mode).Tracker != NoTracker }

// writeTimelineSummary prints one line per host, the seeder's and the
// fleet's means.
func writeTimelineSummary(w io.Writer, c Config, r TimelineRun) {
	tl, res := r.Timeline, r.Result
	fmt.Fprintf(w, "\ntimeline %s run %d: every %s (%d rounds, %d failed scrapes, this process used %.2f CPU-s meanwhile); rates are payload over the link, so a full link reads 95-97%%; busy >= %.0f%%, idle < %.0f%% of the link per interval\n",
		res.Mode, res.Run, TimelineEvery, tl.Rounds, tl.Errors, tl.SelfCPU.Seconds(), 100*BusyShare, 100*IdleShare)
	fmt.Fprintf(w, "%-8s %10s %8s %10s %6s %6s %9s\n", "host", "first byte", "done", "mean rate", "busy", "idle", "intervals")
	var n int
	var sum Activity
	for _, s := range tl.Hosts {
		i := slices.IndexFunc(res.Hosts, func(h HostResult) bool { return h.Name == s.Name })
		if i < 0 {
			continue
		}
		a, ok := hostActivity(s.Points, res.Hosts[i].Done, c.Link)
		if !ok {
			fmt.Fprintf(w, "%-8s no bytes received in %d readings\n", s.Name, len(s.Points))
			continue
		}
		fmt.Fprintf(w, "%-8s %8.2f s %6.2f s %9.0f%% %5.0f%% %5.0f%% %9d\n", s.Name, a.From.Seconds(), a.To.Seconds(), 100*a.Rate, 100*a.Busy, 100*a.Idle, a.Intervals)
		n++
		sum.From += a.From
		sum.To += a.To
		sum.Rate += a.Rate
		sum.Busy += a.Busy
		sum.Idle += a.Idle
	}
	// The seeder counts what it writes into its sockets, which runs ahead
	// of its link by their send buffers: single intervals can exceed 100%.
	// Beside the registry the seeder shares the origin host's link.
	link := "the origin host's link"
	if ModeOf(res.Mode).Tracker == TrackerOwnHost {
		link = "the tracker host's link"
	}
	if a, ok := seederActivity(tl.Seeder.Points, c.SeederLink(res.Mode)); ok {
		fmt.Fprintf(w, "%-8s sent %.1f MiB from %.2f s to %.2f s: mean %.0f%% of %s, busy %.0f%%, idle %.0f%% of %d intervals (counted into its sockets, ahead of the wire)\n",
			"seeder", a.Bytes/mib, a.From.Seconds(), a.To.Seconds(), 100*a.Rate, link, 100*a.Busy, 100*a.Idle, a.Intervals)
	}
	if n > 0 {
		k := float64(n)
		fmt.Fprintf(w, "%-8s %8.2f s %6.2f s %9.0f%% %5.0f%% %5.0f%%\n", "mean", sum.From.Seconds()/k, sum.To.Seconds()/k, 100*sum.Rate/k, 100*sum.Busy/k, 100*sum.Idle/k)
	}
}

// saveTimelineCSV writes every reading, in time order, the seeder as a
// host named after it.
func saveTimelineCSV(path string, tl Timeline) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	if err := writeTimelineCSV(f, tl); err != nil {
		f.Close()
		return fmt.Errorf("timeline: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	return nil
}

func writeTimelineCSV(w io.Writer, tl Timeline) error {
	type row struct {
		host string
		Point
	}
	var rows []row
	for _, s := range append(slices.Clip(tl.Hosts), tl.Seeder) {
		for _, p := range s.Points {
			rows = append(rows, row{s.Name, p})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(a.T, b.T) })
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"t_seconds", "host", "received_bytes", "uploaded_bytes"}); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write([]string{strconv.FormatFloat(r.T.Seconds(), 'f', 3, 64), r.host,
			strconv.FormatFloat(r.Received, 'f', 0, 64), strconv.FormatFloat(r.Uploaded, 'f', 0, 64)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// plotTimeline draws every host's receive rate and the seeder's upload
// rate against time, with the link's rate as a flat line.
func plotTimeline(path string, c Config, r TimelineRun) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s run %d: %d hosts, %.0f MiB image, %s links: rate per host (%d-sample mean)",
		r.Result.Mode, r.Result.Run, len(r.Result.Hosts), float64(r.Result.ImageBytes)/mib, c.Link, smoothing)
	p.X.Label.Text = "seconds since the common start"
	p.Y.Label.Text = "Mbit/s"
	p.Legend.Top = true
	link := float64(c.Link) / 1e6
	var lines []any
	last, top := 0.0, link
	for _, s := range r.Timeline.Hosts {
		xys := rates(s.Points, received, smoothing)
		lines = append(lines, s.Name+" received", xys)
		for _, xy := range xys {
			last, top = max(last, xy.X), max(top, xy.Y)
		}
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return fmt.Errorf("timeline plot: %w", err)
	}
	if pts := r.Timeline.Seeder.Points; len(pts) > 0 {
		xys := rates(pts, uploaded, smoothing)
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
		seeder, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("timeline plot: %w", err)
		}
		seeder.Color = color.Gray{Y: 0x80}
		seeder.Width = vg.Points(2.5)
		p.Add(seeder)
		p.Legend.Add("seeder sent", seeder)
	}
	flat := plotter.NewFunction(func(float64) float64 { return link })
	flat.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(flat)
	p.Legend.Add(fmt.Sprintf("link %s", c.Link), flat)
	// The legend goes right of the last reading, where no curve runs.
	p.X.Min, p.X.Max = 0, last*1.35
	p.Y.Min, p.Y.Max = 0, top*1.1
	p.X.Tick.Marker = secondTicks{}
	if err := p.Save(20*vg.Centimeter, 11*vg.Centimeter, path); err != nil {
		return fmt.Errorf("timeline plot: save %s: %w", path, err)
	}
	return nil
}

// secondTicks labels every half second (every second beyond 10 s), fine
// enough to read a 200 ms sampling's phases off the plot.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 0.5
	if hi-lo > 10 {
		step = math.Ceil((hi - lo) / 10)
	}
	var ticks []plot.Tick
	for n := math.Ceil(lo / step); n*step <= hi; n++ {
		ticks = append(ticks, plot.Tick{Value: n * step, Label: strconv.FormatFloat(n*step, 'f', -1, 64)})
	}
	return ticks
}
