package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/blobswarm/blobswarm/internal/configure"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

func configureCmd(c *client) *cobra.Command {
	var o configure.Options
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Point containerd or Docker at the mirror",
	}
	fileFlags(cmd, &o, "print the files instead of writing them")

	var registries []string
	containerd := &cobra.Command{
		Use:   "containerd",
		Short: "Write certs.d/<registry>/hosts.toml for each mirrored registry",
		Long: `Writes <root>/etc/containerd/certs.d/<registry>/hosts.toml for each registry the
mirror serves: pulls and tag resolution go to the mirror (--mirror) first, and
to the registry itself (server) when the mirror cannot be reached. A file
that was there is kept as hosts.toml.bak-<time>.

The registries come from the mirror's status unless --registry names them
(HOST, or HOST=URL when the registry is not reached at https://HOST), so this
also works before the mirror runs (an init container).

containerd reads these files when its CRI registry config_path is
/etc/containerd/certs.d; ctr needs --hosts-dir. No restart is needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mirrorURL, err := c.mirrorURL()
			if err != nil {
				return err
			}
			regs, err := parseRegistries(registries)
			if err != nil {
				return err
			}
			if len(regs) == 0 {
				st, err := c.status(cmd.Context())
				if err != nil {
					return fmt.Errorf("asking the mirror which registries it serves (or name them with --registry): %w", err)
				}
				for _, r := range st.Registries {
					regs = append(regs, configure.Registry{Host: r.Host, Server: r.URL})
				}
			}
			o.Out = cmd.OutOrStdout()
			_, err = configure.Containerd(o, mirrorURL, regs)
			return err
		},
	}
	containerd.Flags().StringArrayVar(&registries, "registry", nil, "HOST or HOST=URL to configure (repeatable; default: every registry the mirror serves)")

	docker := &cobra.Command{
		Use:   "docker",
		Short: "Add the mirror to registry-mirrors in daemon.json",
		Long: `Puts the mirror (--mirror) first in registry-mirrors of
<root>/etc/docker/daemon.json, keeping every other key and mirror as it was
and the previous file as daemon.json.bak-<time>. Reload dockerd afterwards
(systemctl reload docker, or SIGHUP).

Docker uses registry-mirrors for Docker Hub (docker.io) images only: images
of other registries are pulled from them directly. The mirror's
default-upstream must be docker.io for Docker to get anything through it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mirrorURL, err := c.mirrorURL()
			if err != nil {
				return err
			}
			o.Out = cmd.OutOrStdout()
			_, err = configure.Docker(o, mirrorURL)
			return err
		},
	}
	cmd.AddCommand(containerd, docker)
	return cmd
}

// fileFlags are the flags of configure and unconfigure: where the files
// are, and whether to change them.
func fileFlags(cmd *cobra.Command, o *configure.Options, dryRun string) {
	cmd.PersistentFlags().StringVar(&o.Root, "root", "/", "directory that holds etc/ (for tests and images)")
	cmd.PersistentFlags().BoolVar(&o.DryRun, "dry-run", false, dryRun)
}

// parseRegistries reads --registry HOST[=URL]; a bare HOST is reached
// where the mirror would reach it by default.
func parseRegistries(flags []string) ([]configure.Registry, error) {
	var regs []configure.Registry
	for _, f := range flags {
		host, server, ok := strings.Cut(f, "=")
		if host == "" || (ok && server == "") {
			return nil, fmt.Errorf("--registry %q: want HOST or HOST=URL", f)
		}
		if !ok {
			server = upstream.DefaultEndpoint(host).URL.String()
		}
		regs = append(regs, configure.Registry{Host: host, Server: server})
	}
	return regs, nil
}
