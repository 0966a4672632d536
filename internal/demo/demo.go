// Package demo runs blobswarm end to end on one machine with nothing from
// outside: an origin registry holding a generated image, mirrors in front
// of it, and a real client pulling the image through every mirror at once.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/pull"
	"github.com/blobswarm/blobswarm/mirror"
	"github.com/blobswarm/blobswarm/tracker"
)

// Options shape the demo; Defaults gives the embedded default.
type Options struct {
	Mirrors   int
	Layers    int
	LayerSize int64
	// SeederRate caps the tracker's seeder upload in bytes/s (0: none).
	SeederRate int64
	// Dir holds every node's data; a temp dir removed afterwards if empty.
	Dir string
	Out io.Writer
	Log *slog.Logger
}

// Defaults is the demo a new user runs with no flags.
func Defaults() Options {
	return Options{Mirrors: 4, Layers: 4, LayerSize: 16 << 20, SeederRate: 64 << 20, Out: os.Stdout}
}

// Run performs the demo and prints one table row per mirror.
func Run(ctx context.Context, opt Options) error {
	if opt.Mirrors < 1 || opt.Layers < 1 || opt.LayerSize < 1 {
		return errors.New("demo: mirrors, layers and layer size must be positive")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Dir == "" {
		dir, err := os.MkdirTemp("", "blobswarm-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opt.Dir = dir
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	org, err := origin.New(ctx, origin.Config{Dir: filepath.Join(opt.Dir, "origin")})
	if err != nil {
		return err
	}
	defer org.Close()
	originURL, err := serve(ctx, org)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	originHost := originURL[len("http://"):]
	fmt.Fprintf(opt.Out, "origin registry at %s: pushing library/demo:latest (%d layers of %s)\n",
		originURL, opt.Layers, human(opt.LayerSize))
	pushed, err := testimage.PushImage(ctx, originHost+"/library/demo:latest", opt.Layers, opt.LayerSize)
	if err != nil {
		return fmt.Errorf("push demo image: %w", err)
	}
	var imageBytes int64
	for _, b := range pushed.Blobs() {
		imageBytes += b.Size
	}

	tcfg := tracker.Defaults()
	tcfg.Listen = "127.0.0.1:0"
	tcfg.Data = filepath.Join(opt.Dir, "tracker")
	// Each node gets its own loopback address, as hosts have their own.
	tcfg.PeerListen = "127.0.0.2:0"
	tcfg.Upstream = []string{"docker.io=" + originURL}
	// A datacenter seeder's link is finite; on loopback it is not, and an
	// unbounded seeder would simply serve everyone. Capping it shows what
	// the swarm is for: mirrors trading pieces among themselves.
	tcfg.UploadRate = opt.SeederRate
	ln, err := net.Listen("tcp", tcfg.Listen)
	if err != nil {
		return err
	}
	// The announce URL must name the port the tracker really got.
	tcfg.Listen = ln.Addr().String()
	trk, err := tracker.New(tcfg, opt.Log.With("node", "tracker"))
	if err != nil {
		ln.Close()
		return err
	}
	defer trk.Close()
	trackerURL := serveOn(ctx, ln, trk.Handler())
	fmt.Fprintf(opt.Out, "tracker at %s, seeding from the origin\n", trackerURL)

	mirrors := make([]*mirror.Mirror, opt.Mirrors)
	urls := make([]string, opt.Mirrors)
	for i := range mirrors {
		cfg := mirror.Defaults()
		cfg.Data = filepath.Join(opt.Dir, fmt.Sprintf("mirror-%d", i+1))
		cfg.Upstream = []string{"docker.io=" + originURL}
		cfg.Tracker = []string{trackerURL}
		cfg.PeerListen = fmt.Sprintf("127.0.0.%d:0", 10+i)
		if mirrors[i], err = mirror.New(cfg, opt.Log.With("mirror", i+1)); err != nil {
			return err
		}
		defer mirrors[i].Close()
		if urls[i], err = serve(ctx, mirrors[i].Handler()); err != nil {
			return fmt.Errorf("mirror %d: %w", i+1, err)
		}
	}
	fmt.Fprintf(opt.Out, "%d mirrors up; pulling docker.io/library/demo:latest through all of them at once with containerd's resolver\n\n", opt.Mirrors)

	org.Reset()
	results := make([]pull.Result, opt.Mirrors)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := range mirrors {
		g.Go(func() error {
			r, err := pull.Image(gctx, "docker.io/library/demo:latest", pull.Options{MirrorURL: urls[i], Platform: "linux/amd64"})
			if err != nil {
				return fmt.Errorf("pull through mirror %d: %w", i+1, err)
			}
			results[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	wall := time.Since(start)

	tw := tabwriter.NewWriter(opt.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mirror\tpull time\tverified\tfrom origin\tfrom peers\tfrom seeder\t")
	var fromPeers, fromSeeder int64
	for i, m := range mirrors {
		s := m.Stats()
		fromPeers += s.BytesFromPeers
		fromSeeder += s.BytesFromSeeder
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t\n", i+1, results[i].Duration.Round(time.Millisecond),
			human(results[i].Bytes), human(s.BytesFromOrigin), human(s.BytesFromPeers), human(s.BytesFromSeeder))
	}
	tw.Flush()
	sent := org.BlobBytesSent()
	fmt.Fprintf(opt.Out, "\nimage %s pulled on %d mirrors in %s; the origin sent %s of blobs (%.2fx the image),\n",
		human(imageBytes), opt.Mirrors, wall.Round(time.Millisecond), human(sent), float64(sent)/float64(imageBytes))
	fmt.Fprintf(opt.Out, "the tracker's seeder %s (%.2fx), the mirrors to each other %s\n",
		human(fromSeeder), float64(fromSeeder)/float64(imageBytes), human(fromPeers))
	return nil
}

// serve runs h on a fresh loopback port until ctx ends.
func serve(ctx context.Context, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	return serveOn(ctx, ln, h), nil
}

func serveOn(ctx context.Context, ln net.Listener, h http.Handler) string {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
