package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

func prefetchCmd(c *client) *cobra.Command {
	var req adminapi.PrefetchRequest
	cmd := &cobra.Command{
		Use:   "prefetch IMAGE...",
		Short: "Pull images into the mirror's store ahead of time",
		Long: `prefetch has the node's mirror resolve each image (tag or digest, on any
registry the mirror has an upstream for: nginx:1.27, ghcr.io/org/app@sha256:...),
pick this host's platform from an index (--platform, --all-platforms), and pull
the manifests, the config and every layer into its store through the swarm.

With --fleet the tracker's seeder fetches every layer from the origin instead,
so that a rollout to the whole fleet afterwards costs the origin nothing more.

The exit status is non-zero when any layer failed; the failed ones are named.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, images []string) error {
			if req.AllPlatforms && req.Platform != "" {
				return fmt.Errorf("--platform and --all-platforms exclude each other")
			}
			return runPrefetch(cmd, c, req, images)
		},
	}
	cmd.Flags().StringVar(&req.Platform, "platform", "", "os/arch[/variant] to pick from an index (default: the mirror host's)")
	cmd.Flags().BoolVar(&req.AllPlatforms, "all-platforms", false, "every platform of an index")
	cmd.Flags().BoolVar(&req.Fleet, "fleet", false, "pre-heat the fleet: the tracker's seeder fetches every layer from the origin")
	return cmd
}

func runPrefetch(cmd *cobra.Command, c *client, base adminapi.PrefetchRequest, images []string) error {
	var failed []string
	start := time.Now()
	for _, image := range images {
		req := base
		req.Image = image
		sum, err := prefetchOne(cmd, c, req)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", image, err)
			failed = append(failed, image)
			continue
		}
		for _, d := range sum.Failed {
			failed = append(failed, image+" "+d)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("prefetch failed for:\n  %s", strings.Join(failed, "\n  "))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "prefetched %d image(s) in %s\n", len(images), time.Since(start).Round(time.Millisecond))
	return nil
}

// blobView is one blob's bar and what the stream said about it.
type blobView struct {
	bar *mpb.Bar
	mu  sync.Mutex
	ev  adminapi.Event
	// start is when the mirror announced the blob (it starts every fetch
	// then), end when the blob was done: the rate is over that span.
	start, end time.Time
}

func (b *blobView) set(ev adminapi.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ev = ev
	if ev.State == adminapi.StateDone || ev.State == adminapi.StateFailed {
		b.end = time.Now()
	}
}

func (b *blobView) rate(decor.Statistics) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	end := b.end
	if end.IsZero() {
		end = time.Now()
	}
	if !end.After(b.start) || b.ev.Source == adminapi.SourceCache {
		return ""
	}
	return size(int64(float64(b.ev.Done)/end.Sub(b.start).Seconds())) + "/s"
}

// source is what the bar shows after the rate: where the bytes came from.
func (b *blobView) source(decor.Statistics) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.ev.State == adminapi.StateFailed:
		return "FAILED"
	case b.ev.Source == adminapi.SourceSwarm && b.ev.State != adminapi.StateDone:
		return fmt.Sprintf("swarm, %d peers", b.ev.Peers)
	}
	return b.ev.Source
}

func prefetchOne(cmd *cobra.Command, c *client, req adminapi.PrefetchRequest) (adminapi.Event, error) {
	stderr := cmd.ErrOrStderr()
	bars := isTerminal(stderr)
	var p *mpb.Progress
	if bars {
		p = mpb.NewWithContext(cmd.Context(), mpb.WithOutput(stderr), mpb.WithWidth(40))
	}
	views := map[string]*blobView{}
	sources := map[string]int{}
	start := time.Now()
	sum, err := c.prefetch(cmd.Context(), req, func(ev adminapi.Event) {
		switch ev.Type {
		case adminapi.EventResolved:
			fmt.Fprintf(stderr, "%s: %s\n", ev.Image, ev.Digest)
		case adminapi.EventManifest:
			fmt.Fprintf(stderr, "  %s %s\n", ev.Platform, ev.Digest)
		case adminapi.EventBlob:
			v := views[ev.Digest]
			if v == nil {
				v = &blobView{ev: ev, start: time.Now()}
				views[ev.Digest] = v
				if bars {
					v.bar = p.AddBar(ev.Size,
						mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-6s %s", ev.Kind, short(ev.Digest)), decor.WCSyncSpaceR)),
						mpb.AppendDecorators(
							decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace),
							decor.Any(v.rate, decor.WCSyncSpace),
							decor.Any(v.source, decor.WCSyncSpace)))
				}
			}
			v.set(ev)
			switch ev.State {
			case adminapi.StateRunning:
				if v.bar != nil {
					v.bar.SetCurrent(ev.Done)
				}
			case adminapi.StateDone:
				sources[ev.Source]++
				if v.bar != nil {
					v.bar.SetTotal(ev.Size, true)
				} else {
					fmt.Fprintf(stderr, "  %-6s %s %s from %s\n", ev.Kind, ev.Digest, size(ev.Size), ev.Source)
				}
			case adminapi.StateFailed:
				if v.bar != nil {
					v.bar.Abort(false)
				}
				fmt.Fprintf(stderr, "  %-6s %s FAILED: %s\n", ev.Kind, ev.Digest, ev.Error)
			}
		}
	})
	if bars {
		// Bars of a cut-off stream never complete; stop them so Wait ends.
		// Abort leaves a completed bar alone.
		for _, v := range views {
			v.bar.Abort(false)
		}
		p.Wait()
	}
	if err != nil {
		return sum, err
	}
	var by []string
	for _, s := range slices.Sorted(maps.Keys(sources)) {
		by = append(by, fmt.Sprintf("%d from %s", sources[s], s))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d blobs, %s in %s (%s)", req.Image, sum.Blobs, size(sum.Bytes),
		time.Since(start).Round(time.Millisecond), cmp.Or(strings.Join(by, ", "), "nothing fetched"))
	if len(sum.Failed) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "; %d FAILED", len(sum.Failed))
	}
	fmt.Fprintln(cmd.OutOrStdout())
	return sum, nil
}

func short(d string) string {
	_, hex, _ := strings.Cut(d, ":")
	return hex[:min(12, len(hex))]
}

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[u-1])
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
