package main

import "github.com/spf13/cobra"

func demoCmd() *cobra.Command {
	return &cobra.Command{Use: "demo", Short: "Run an origin, a tracker and a fleet of mirrors on this host and pull an image through them"}
}
