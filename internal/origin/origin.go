// Package origin runs an embedded distribution registry as the origin that
// blobswarm mirrors and seeders pull from: in the demo, in integration tests
// and inside network namespaces. It counts what it serves, so tests can
// assert that the origin sent each layer exactly once, and it can demand
// basic or bearer-token auth to stand in for a private upstream.
package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// Auth controllers and the storage driver register themselves by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Config describes one origin. Only Dir is required.
type Config struct {
	// Dir holds the registry's storage and the auth files it is given; it
	// is created if missing. Separate origins need separate directories.
	Dir string
	// Auth selects at most one of its modes; the zero value is anonymous
	// pull and push.
	Auth AuthConfig
	// Debug lets distribution's logs through to stderr. Distribution logs
	// only through logrus's process-wide standard logger, so this setting
	// applies to the whole process and the last origin created wins.
	Debug bool
}

// AuthConfig picks how the origin authenticates clients.
type AuthConfig struct {
	Htpasswd *Htpasswd
	Token    *TokenAuth
}

// Htpasswd makes the origin accept exactly one user with HTTP basic auth.
type Htpasswd struct {
	Username string
	Password string
}

// TokenAuth makes the origin demand bearer tokens from a token service, as
// Docker Hub and most private registries do. TokenServer.Auth and
// TokenServer.EmbeddedAuth build one.
type TokenAuth struct {
	// Realm is the token endpoint URL put in the Bearer challenge. Leave it
	// empty to have the origin serve Server itself at TokenPath.
	Realm string
	// Server is the token service the origin serves at TokenPath when
	// Realm is empty. The challenge then names TokenPath on the scheme and
	// host the client used. go-containerregistry needs that: it refuses a
	// realm on a loopback or private IP unless it is the registry's own
	// host:port.
	Server      http.Handler
	Service     string
	Issuer      string
	RootCertPEM []byte // certificates that token signatures chain to
}

// TokenPath is where an origin serves an embedded token service.
const TokenPath = "/token"

const defaultService = "blobswarm-origin"

// Origin is an http.Handler serving the registry API from Config.Dir.
type Origin struct {
	app      *handlers.App
	token    http.Handler // embedded token service, or nil
	counters counters
}

// New builds an origin; serve it with http.Server or httptest.NewServer.
// Close it when done.
func New(ctx context.Context, cfg Config) (*Origin, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("origin: Config.Dir is required")
	}
	if cfg.Auth.Htpasswd != nil && cfg.Auth.Token != nil {
		return nil, fmt.Errorf("origin: choose htpasswd or token auth, not both")
	}
	var embedded http.Handler
	if t := cfg.Auth.Token; t != nil && t.Realm == "" {
		if t.Server == nil {
			return nil, fmt.Errorf("origin: token auth needs a Realm or a Server")
		}
		embedded = t.Server
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("origin: create dir: %w", err)
	}
	setDistributionLogging(cfg.Debug)

	dcfg, err := distributionConfig(cfg)
	if err != nil {
		return nil, err
	}
	app, err := newApp(ctx, dcfg)
	if err != nil {
		return nil, err
	}
	return &Origin{app: app, token: embedded}, nil
}

// ServeHTTP serves the registry API and counts what it served.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.token != nil {
		if r.URL.Path == TokenPath {
			o.token.ServeHTTP(w, r)
			return
		}
		// Distribution builds the embedded realm's scheme from this header
		// and assumes https without it.
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		r.Header.Set("X-Forwarded-Proto", scheme)
	}
	o.counters.record(o.app, w, r)
}

// Close stops the registry's background work.
func (o *Origin) Close() error {
	if err := o.app.Shutdown(); err != nil {
		return fmt.Errorf("origin: shutdown: %w", err)
	}
	return nil
}

// newApp turns handlers.NewApp's panics on bad configuration into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("origin: configure registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// distributionConfig is the one place where the origin's defaults live.
func distributionConfig(cfg Config) (*configuration.Configuration, error) {
	dcfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": filepath.Join(cfg.Dir, "storage")},
			// The purger would otherwise start a goroutine per origin that
			// outlives short tests.
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	switch {
	case cfg.Auth.Htpasswd != nil:
		path, err := writeHtpasswd(cfg.Dir, *cfg.Auth.Htpasswd)
		if err != nil {
			return nil, err
		}
		dcfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": defaultService,
			"path":  path,
		}}
	case cfg.Auth.Token != nil:
		t := cfg.Auth.Token
		bundle := filepath.Join(cfg.Dir, "token-root.pem")
		if err := os.WriteFile(bundle, t.RootCertPEM, 0o644); err != nil {
			return nil, fmt.Errorf("origin: write token root bundle: %w", err)
		}
		params := configuration.Parameters{
			"realm":          t.Realm,
			"service":        t.Service,
			"issuer":         t.Issuer,
			"rootcertbundle": bundle,
		}
		if t.Realm == "" {
			params["autoredirect"] = true
			params["autoredirectpath"] = TokenPath
		}
		dcfg.Auth = configuration.Auth{"token": params}
	}
	return dcfg, nil
}

// setDistributionLogging silences distribution, which logs several lines per
// request, unless debugging.
func setDistributionLogging(debug bool) {
	if debug {
		logrus.SetOutput(os.Stderr)
		return
	}
	logrus.SetOutput(io.Discard)
}
