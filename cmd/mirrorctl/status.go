package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func statusCmd(c *client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's mirror at a glance",
		Long: `status shows the mirror's cache (size, quota, blobs), the registries it
mirrors, the swarms it takes part in (peers, progress, rates), the bytes it
got from each source since it started, and whether its trackers answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := c.status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			quota := "none"
			if st.Cache.QuotaBytes > 0 {
				quota = size(st.Cache.QuotaBytes)
			}
			fmt.Fprintf(out, "cache        %s in %d blobs (quota %s; %d evicted, %s), %d fetches in progress\n",
				size(st.Cache.Bytes), st.Cache.Blobs, quota, st.Cache.Evictions, size(st.Cache.EvictedBytes), st.InflightFetches)
			for _, r := range st.Registries {
				def := ""
				if r.Host == st.DefaultRegistry {
					def = " (default)"
				}
				fmt.Fprintf(out, "registry     %s -> %s%s\n", r.Host, r.URL, def)
			}
			b := st.Bytes
			fmt.Fprintf(out, "since start  served %s; received %s from origin, %s from peers, %s from seeder; uploaded %s\n",
				size(b.Served), size(b.FromOrigin), size(b.FromPeers), size(b.FromSeeder), size(b.Uploaded))
			if len(st.Trackers) == 0 {
				fmt.Fprintln(out, "tracker      none (plain pull-through cache)")
			}
			for _, t := range st.Trackers {
				state := "reachable"
				if !t.Reachable {
					state = "UNREACHABLE: " + t.Error
				}
				fmt.Fprintf(out, "tracker      %s %s\n", t.URL, state)
			}
			if sw := st.Swarm; sw != nil {
				fmt.Fprintf(out, "swarm        seeding %d blobs; down %s/s, up %s/s\n", sw.Seeding, size(int64(sw.DownloadRate)), size(int64(sw.UploadRate)))
				if len(sw.Active) > 0 {
					tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "  BLOB\tPROGRESS\tPEERS\tRATE")
					for _, t := range sw.Active {
						pct := 100.0
						if t.Size > 0 {
							pct = 100 * float64(t.Completed) / float64(t.Size)
						}
						fmt.Fprintf(tw, "  %s\t%s / %s (%.0f%%)\t%d\t%s/s\n", short(t.Digest), size(t.Completed), size(t.Size), pct, t.Peers, size(int64(t.Rate)))
					}
					tw.Flush()
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON, for scripts")
	return cmd
}
