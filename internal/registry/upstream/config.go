package upstream

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// CredentialFiles point at files holding secrets, so a config file can be
// world-readable and secrets never appear in flags or process listings.
type CredentialFiles struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password-file"`
	TokenFile    string `yaml:"token-file"`
}

// ParseEndpoints turns HOST=URL entries (the --upstream flag) and
// per-host credential files into endpoints.
func ParseEndpoints(entries []string, creds map[string]CredentialFiles) (map[string]Endpoint, error) {
	eps := map[string]Endpoint{}
	for _, e := range entries {
		host, raw, ok := strings.Cut(e, "=")
		if !ok || host == "" {
			return nil, fmt.Errorf("upstream %q: want HOST=URL", e)
		}
		if _, err := oci.ParseRegistry(host); err != nil {
			return nil, fmt.Errorf("upstream %q: HOST is not a registry name: %w", e, err)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("upstream %q: URL must be http:// or https:// with a host", e)
		}
		if u.User != nil {
			// The URL would show in error messages, status and logs, and a
			// flag in every process listing.
			return nil, fmt.Errorf("upstream %s=%s: the URL must not carry credentials; give them as credentials: {%s: {username: ..., password-file: ...}} in the config file", host, u.Redacted(), host)
		}
		eps[host] = Endpoint{Host: host, URL: u}
	}
	for host, cf := range creds {
		if _, err := oci.ParseRegistry(host); err != nil {
			return nil, fmt.Errorf("credentials for %q: not a registry name: %w", host, err)
		}
		ep, ok := eps[host]
		if !ok {
			ep = DefaultEndpoint(host)
		}
		c, err := cf.load()
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", host, err)
		}
		ep.Creds = c
		eps[host] = ep
	}
	return eps, nil
}

func (cf CredentialFiles) load() (Credentials, error) {
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
		return Credentials{}, fmt.Errorf("password-file: %w", err)
	}
	tok, err := read(cf.TokenFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("token-file: %w", err)
	}
	if cf.Username == "" && pw != "" {
		return Credentials{}, fmt.Errorf("password-file without username")
	}
	return Credentials{Username: cf.Username, Password: pw, Token: tok}, nil
}
