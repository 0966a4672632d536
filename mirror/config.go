package mirror

import (
	"fmt"
	"net/url"
	"os"
	"strings"
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
	Credentials map[string]CredentialFiles `yaml:"credentials"`

	UpstreamTimeout      time.Duration `yaml:"upstream-timeout"`
	MaxConcurrentFetches int           `yaml:"max-concurrent-fetches"`
	LogLevel             string        `yaml:"log-level"`
}

// CredentialFiles point at files holding secrets, so the config file itself
// can be world-readable.
type CredentialFiles struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password-file"`
	TokenFile    string `yaml:"token-file"`
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
	eps := map[string]upstream.Endpoint{}
	for _, e := range c.Upstream {
		host, raw, ok := strings.Cut(e, "=")
		if !ok || host == "" {
			return nil, fmt.Errorf("upstream %q: want HOST=URL", e)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("upstream %q: URL must be http:// or https:// with a host", e)
		}
		eps[host] = upstream.Endpoint{Host: host, URL: u}
	}
	for host, cf := range c.Credentials {
		ep, ok := eps[host]
		if !ok {
			ep = upstream.DefaultEndpoint(host)
		}
		creds, err := cf.load()
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", host, err)
		}
		ep.Creds = creds
		eps[host] = ep
	}
	return eps, nil
}

func (cf CredentialFiles) load() (upstream.Credentials, error) {
	read := func(path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	pw, err := read(cf.PasswordFile)
	if err != nil {
		return upstream.Credentials{}, fmt.Errorf("password-file: %w", err)
	}
	tok, err := read(cf.TokenFile)
	if err != nil {
		return upstream.Credentials{}, fmt.Errorf("token-file: %w", err)
	}
	if cf.Username == "" && pw != "" {
		return upstream.Credentials{}, fmt.Errorf("password-file without username")
	}
	return upstream.Credentials{Username: cf.Username, Password: pw, Token: tok}, nil
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
