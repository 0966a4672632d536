package mirror

import (
	"fmt"
	"time"

	"github.com/blobswarm/blobswarm/mirror/upstream"
)

// Config is everything `blobswarm mirror` can be told, by flag or by the
// YAML file; the yaml keys are the flag names.
type Config struct {
	Listen string `yaml:"listen"`
	Data   string `yaml:"data"`
	// Upstream entries are HOST=URL: the registry clients call HOST is
	// reached at URL.
	Upstream        []string `yaml:"upstream"`
	DefaultUpstream string   `yaml:"default-upstream"`
	// Credentials per upstream host; only in the config file, never flags,
	// so secrets stay out of process listings.
	Credentials map[string]upstream.CredentialFiles `yaml:"credentials"`

	UpstreamTimeout      time.Duration `yaml:"upstream-timeout"`
	MaxConcurrentFetches int           `yaml:"max-concurrent-fetches"`
	LogLevel             string        `yaml:"log-level"`
}

// Defaults returns the configuration a mirror runs with when told nothing.
func Defaults() Config {
	return Config{
		Listen:               "127.0.0.1:5000",
		Data:                 "/var/lib/blobswarm/mirror",
		DefaultUpstream:      "docker.io",
		UpstreamTimeout:      30 * time.Second,
		MaxConcurrentFetches: 32,
		LogLevel:             "info",
	}
}

// Endpoints resolves the upstream entries and credential files.
func (c Config) Endpoints() (map[string]upstream.Endpoint, error) {
	return upstream.ParseEndpoints(c.Upstream, c.Credentials)
}

// Validate checks what can be checked before anything starts, naming the
// offending key.
func (c Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("listen: must not be empty")
	}
	if c.Data == "" {
		return fmt.Errorf("data: must not be empty")
	}
	if c.DefaultUpstream == "" {
		return fmt.Errorf("default-upstream: must not be empty")
	}
	if c.MaxConcurrentFetches < 1 {
		return fmt.Errorf("max-concurrent-fetches: must be at least 1, got %d", c.MaxConcurrentFetches)
	}
	if c.UpstreamTimeout <= 0 {
		return fmt.Errorf("upstream-timeout: must be positive, got %s", c.UpstreamTimeout)
	}
	if _, err := c.Endpoints(); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}
