// Command swarmsim predicts rollouts with the fleet simulator
// (integration/swarmsim): first the measured shapes it is checked against,
// measured and predicted side by side, then the given fleet sizes of one
// shape, with all done, p50 and p95 over the limit and their growth per
// doubling of the fleet.
//
//	go run ./integration/swarmsim/cmd/swarmsim -hosts 4,8,16,32,64,1000,10000 -size 16MiB -layers 2 -link 10mbit
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blobswarm/blobswarm/integration/fleetbench"
	"github.com/blobswarm/blobswarm/integration/netlab"
	"github.com/blobswarm/blobswarm/integration/swarmsim"
)

func main() {
	if err := run(); err != nil {
		slog.Error("swarmsim", "err", err)
		os.Exit(1)
	}
}

func run() error {
	shape := swarmsim.Shape{Layers: 2, Image: 16 << 20, Host: 10e6, Origin: 100e6, Tracker: 100e6}
	p := swarmsim.Defaults()
	hosts := []int{4, 8, 16, 32, 64, 1000, 10000}
	fs := flag.NewFlagSet("swarmsim", flag.ContinueOnError)
	fs.Func("hosts", "comma-separated fleet sizes (default 4,8,16,32,64,1000,10000)", func(s string) error {
		hosts = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("-hosts %q: %w", s, err)
			}
			hosts = append(hosts, n)
		}
		return nil
	})
	fs.Func("size", "image size (default 16MiB)", func(s string) (err error) {
		shape.Image, err = fleetbench.ParseSize(s)
		return err
	})
	fs.IntVar(&shape.Layers, "layers", shape.Layers, "layers the image is split into")
	rate := func(name string, dst *float64) {
		fs.Func(name, fmt.Sprintf("link rate, tc syntax (default %gmbit)", *dst/1e6), func(s string) error {
			r, err := netlab.ParseRate(s)
			*dst = float64(r)
			return err
		})
	}
	rate("link", &shape.Host)
	rate("origin-link", &shape.Origin)
	rate("tracker-link", &shape.Tracker)
	fs.Float64Var(&p.TrackerRate, "tracker-rate", p.TrackerRate, "requests a second the tracker answers at start-up")
	fs.DurationVar(&p.Patience, "patience", p.Patience, "the seeder's patience (what-if: longer than the rollout turns its tick off)")
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "random seed")
	fs.Float64Var(&p.Step, "step", p.Step, "coarsest time step, as a share of a piece's time at a host's link")
	runs := fs.Int("runs", 3, "runs (seeds) per fleet size; medians are printed")
	calibration := fs.Bool("calibration", true, "first print the measured shapes, measured and predicted")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *calibration {
		if err := printCalibration(p); err != nil {
			return err
		}
	}
	return printSweep(shape, hosts, *runs, p)
}

func printCalibration(p swarmsim.Params) error {
	fmt.Println("calibration: fleet bench all done (median of runs) against the model")
	fmt.Printf("%-75s %9s %9s %7s\n", "shape", "measured", "model", "error")
	for _, m := range swarmsim.Measured {
		r, err := swarmsim.Run(m.Shape, p)
		if err != nil {
			return err
		}
		fmt.Printf("%-75v %7.2f s %7.2f s %+6.1f%%\n", m.Shape, m.Median(), r.AllDone(), 100*(r.AllDone()/m.Median()-1))
	}
	fmt.Println()
	return nil
}

func printSweep(shape swarmsim.Shape, hosts []int, runs int, p swarmsim.Params) error {
	shape.Hosts = 1
	fmt.Printf("prediction: %d MiB in %d layers, host links %gM, origin %gM, tracker %gM; limit %.2f s; piece %d KiB\n",
		shape.Image>>20, shape.Layers, shape.Host/1e6, shape.Origin/1e6, shape.Tracker/1e6, shape.Limit(), shape.PieceLength()>>10)
	fmt.Printf("medians of %d runs (seeds %d-%d)\n", runs, p.Seed, p.Seed+uint64(runs)-1)
	fmt.Printf("%6s %10s %15s %9s %7s %7s %14s %13s %10s\n", "hosts", "all done", "range", "x limit", "p50 x", "p95 x", "seeder/image", "moved/image", "sim took")
	var pts []fleetbench.SweepPoint
	for _, n := range hosts {
		shape.Hosts = n
		start := time.Now()
		var all, p50, p95, seeder, moved []float64
		for k := range runs {
			q := p
			q.Seed += uint64(k)
			r, err := swarmsim.Run(shape, q)
			if err != nil {
				return err
			}
			all, p50, p95 = append(all, r.AllDone()), append(p50, r.Quantile(0.5)), append(p95, r.Quantile(0.95))
			seeder = append(seeder, r.SeederBytes/float64(shape.Image))
			moved = append(moved, r.MovedBytes/float64(shape.Image))
		}
		l := shape.Limit()
		pt := fleetbench.SweepPoint{Nodes: n, Runs: runs, AllDoneSeconds: swarmsim.Median(all),
			AllDone: swarmsim.Median(all) / l, P50: swarmsim.Median(p50) / l, P95: swarmsim.Median(p95) / l}
		pts = append(pts, pt)
		fmt.Printf("%6d %8.2f s %6.2f-%6.2f s %9.2f %7.2f %7.2f %14.2f %13.2f %10s\n", n, pt.AllDoneSeconds, slices.Min(all), slices.Max(all),
			pt.AllDone, pt.P50, pt.P95, swarmsim.Median(seeder), swarmsim.Median(moved), time.Since(start).Round(time.Millisecond))
	}
	if len(pts) < 2 {
		return nil
	}
	fmt.Printf("growth per doubling (least squares over log2 hosts): all done %+.3fx, p50 %+.3fx, p95 %+.3fx\n",
		fleetbench.GrowthPerDoubling(pts, func(p fleetbench.SweepPoint) float64 { return p.AllDone }),
		fleetbench.GrowthPerDoubling(pts, func(p fleetbench.SweepPoint) float64 { return p.P50 }),
		fleetbench.GrowthPerDoubling(pts, func(p fleetbench.SweepPoint) float64 { return p.P95 }))
	return nil
}
