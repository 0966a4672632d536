// Command mirrorctl operates the blobswarm mirror on this node: it warms
// the node (or the whole fleet) with images before they are needed, shows
// what the mirror holds and does, and points containerd and Docker at it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mirrorctl:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	c := &client{}
	root := &cobra.Command{
		Use:   "mirrorctl",
		Short: "Operate the node's blobswarm mirror",
		Long: `mirrorctl talks to the blobswarm mirror on this node through its admin API
(under /_blobswarm/v1/ on the registry's own listener).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&c.base, "mirror", envOr("MIRRORCTL_MIRROR", "http://127.0.0.1:5000"), "the node's mirror (env MIRRORCTL_MIRROR)")
	root.PersistentFlags().StringVar(&c.token, "token", os.Getenv("MIRRORCTL_TOKEN"), "the mirror's --admin-token (env MIRRORCTL_TOKEN, which keeps it out of process listings)")
	root.AddCommand(prefetchCmd(c), statusCmd(c), configureCmd(c), unconfigureCmd(c))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
