package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/blobswarm/blobswarm/internal/configure"
)

func unconfigureCmd(c *client) *cobra.Command {
	var o configure.Options
	cmd := &cobra.Command{
		Use:   "unconfigure",
		Short: "Undo configure: take the mirror out of containerd's or Docker's configuration",
	}
	fileFlags(cmd, &o, "say what would change instead of changing it")

	var registries []string
	containerd := &cobra.Command{
		Use:   "containerd",
		Short: "Restore each registry's hosts.toml as it was before configure",
		Long: `For each <root>/etc/containerd/certs.d/<registry>/hosts.toml that names the
mirror (--mirror): restores the content it had before configure (its oldest
backup that does not name the mirror), or removes it, with its directory
when empty, if configure created it. Files that do not name the mirror are
left as they are. Needs no running mirror: without --registry every
registry directory under certs.d is looked at.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mirrorURL, err := c.mirrorURL()
			if err != nil {
				return err
			}
			hosts := registries
			if len(hosts) == 0 {
				entries, err := os.ReadDir(o.CertsDir())
				if err != nil {
					return fmt.Errorf("list the registries under %s (or name them with --registry): %w", o.CertsDir(), err)
				}
				for _, e := range entries {
					if e.IsDir() {
						hosts = append(hosts, e.Name())
					}
				}
			}
			o.Out = cmd.OutOrStdout()
			return configure.UndoContainerd(o, mirrorURL, hosts)
		},
	}
	containerd.Flags().StringArrayVar(&registries, "registry", nil, "registry HOST to unconfigure (repeatable; default: every one under certs.d)")

	docker := &cobra.Command{
		Use:   "docker",
		Short: "Take the mirror out of registry-mirrors in daemon.json",
		Long: `Removes the mirror (--mirror) from registry-mirrors of <root>/etc/docker/daemon.json,
and the key when no mirror is left, keeping every other key and mirror as
it is now and the previous file as daemon.json.bak-<time>. Reload dockerd
afterwards (systemctl reload docker, or SIGHUP).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mirrorURL, err := c.mirrorURL()
			if err != nil {
				return err
			}
			o.Out = cmd.OutOrStdout()
			_, err = configure.UndoDocker(o, mirrorURL)
			return err
		},
	}
	cmd.AddCommand(containerd, docker)
	return cmd
}
