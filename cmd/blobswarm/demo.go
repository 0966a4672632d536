package main

import (
	"github.com/spf13/cobra"

	"github.com/blobswarm/blobswarm/internal/demo"
)

func demoCmd() *cobra.Command {
	opt := demo.Defaults()
	var logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run an origin registry and a fleet of mirrors on this host and pull an image through all of them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if logLevel != "" {
				log, err := newLogger(logLevel)
				if err != nil {
					return err
				}
				opt.Log = log
			}
			opt.Out = cmd.OutOrStdout()
			return demo.Run(cmd.Context(), opt)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Mirrors, "mirrors", opt.Mirrors, "number of mirrors (hosts) in the fleet")
	f.IntVar(&opt.Layers, "layers", opt.Layers, "layers in the generated image")
	f.Int64Var(&opt.LayerSize, "layer-size", opt.LayerSize, "bytes per layer")
	f.Int64Var(&opt.SeederRate, "seeder-rate", opt.SeederRate, "the tracker's seeder upload cap in bytes/s, as a finite link would (0: none)")
	f.StringVar(&opt.Dir, "data", "", "keep every node's data here instead of a temp dir")
	f.StringVar(&logLevel, "log-level", "", "show the nodes' logs at this level (debug, info, warn, error)")
	return cmd
}
