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
	"strings"

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
			return fmt.Errorf("config file %s: %w", path, nameKeys(b, err))
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

// nameKeys puts the top-level key in front of each of a decode error's
// messages: yaml.v3 says only "line 3: cannot unmarshal !!str `lots` into
// time.Duration", and a user looks for the key, not the Go type.
func nameKeys(b []byte, err error) error {
	var te *yaml.TypeError
	var doc yaml.Node
	if !errors.As(err, &te) || yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return err
	}
	if doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping of flag names to values: %w", err)
	}
	pairs := doc.Content[0].Content
	msgs := make([]string, len(te.Errors))
	for i, msg := range te.Errors {
		msgs[i] = msg
		var line int
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr != nil {
			continue
		}
		// A key's value spans the lines up to the next key.
		key := ""
		for j := 0; j+1 < len(pairs); j += 2 {
			if pairs[j].Line <= line {
				key = pairs[j].Value
			}
		}
		if key != "" && !strings.Contains(msg, key) {
			msgs[i] = key + ": " + msg
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
