// Package cliconfig gives every server one configuration surface: a YAML
// file whose keys are the flag names, with flags given on the command line
// taking precedence over the file, and the file over the defaults.
package cliconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Load fills cfg (already holding the defaults) from the YAML file at path,
// if any, and then from the flags the user set on cmd. bind must register
// the same flags on a flag set for a given config value; it is how a flag
// finds its field.
func Load[T any](cmd *cobra.Command, path string, cfg *T, bind func(*pflag.FlagSet, *T)) error {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	bind(fs, cfg)
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		dst := fs.Lookup(f.Name)
		if dst == nil || err != nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = dst.Value.(pflag.SliceValue).Replace(sv.GetSlice())
		} else {
			err = dst.Value.Set(f.Value.String())
		}
		if err != nil {
			err = fmt.Errorf("--%s: %w", f.Name, err)
		}
	})
	return err
}
