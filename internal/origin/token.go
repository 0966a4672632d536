package origin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenServerConfig describes a token service in the style of Docker Hub's
// auth.docker.io. Zero fields take the defaults noted.
type TokenServerConfig struct {
	// Service is the audience of issued tokens (default "blobswarm-origin").
	Service string
	// Issuer names the token service (default "blobswarm-token-server").
	Issuer string
	// Username and Password are the one accepted basic credential; with an
	// empty Username no credential is accepted.
	Username string
	Password string
	// AllowAnonymous grants pull to requests without credentials. Requests
	// with wrong credentials are refused either way.
	AllowAnonymous bool
	// ExpiresIn is the advertised token lifetime (default 5m, at least 1s).
	ExpiresIn time.Duration
}

// TokenServer issues JWTs that distribution's token access controller
// accepts: ES256-signed, the signing certificate in the x5c header, and
// that certificate as the origin's root bundle.
type TokenServer struct {
	cfg  TokenServerConfig
	key  *ecdsa.PrivateKey
	cert *x509.Certificate

	mu       sync.Mutex
	requests int
}

// NewTokenServer generates a signing key and self-signed certificate.
// Either serve it and pass Auth(its URL) to New as Config.Auth.Token, or
// pass EmbeddedAuth() and let the origin serve it.
func NewTokenServer(cfg TokenServerConfig) (*TokenServer, error) {
	if cfg.Service == "" {
		cfg.Service = defaultService
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "blobswarm-token-server"
	}
	if cfg.ExpiresIn == 0 {
		cfg.ExpiresIn = 5 * time.Minute
	}
	cfg.ExpiresIn = max(cfg.ExpiresIn, time.Second)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("origin: generate token key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cfg.Issuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("origin: create token certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("origin: parse token certificate: %w", err)
	}
	return &TokenServer{cfg: cfg, key: key, cert: cert}, nil
}

// Auth is the origin configuration that trusts this server's tokens when
// the server listens on its own, at realm.
func (ts *TokenServer) Auth(realm string) *TokenAuth {
	return &TokenAuth{
		Realm:       realm,
		Service:     ts.cfg.Service,
		Issuer:      ts.cfg.Issuer,
		RootCertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.cert.Raw}),
	}
}

// EmbeddedAuth is the origin configuration that serves this server on the
// origin's own listener at TokenPath.
func (ts *TokenServer) EmbeddedAuth() *TokenAuth {
	a := ts.Auth("")
	a.Server = ts
	return a
}

// TokenRequests is how many requests reached the server, refused or not.
func (ts *TokenServer) TokenRequests() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP answers GET ?service=...&scope=... with a token granting what
// the caller may have: everything asked for with valid credentials, pull
// only for anonymous callers when they are allowed.
func (ts *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	ts.mu.Unlock()

	if r.Method != http.MethodGet {
		serveError(w, errcode.ErrorCodeUnsupported.WithMessage("token requests use GET"))
		return
	}
	if s := r.URL.Query().Get("service"); s != "" && s != ts.cfg.Service {
		serveError(w, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf("unknown service %q", s)))
		return
	}
	subject, ok := ts.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", ts.cfg.Service))
		serveError(w, errcode.ErrorCodeUnauthorized.WithMessage("incorrect username or password"))
		return
	}
	access := grant(parseScopes(r.URL.Query()["scope"]), subject != "")

	now := time.Now()
	raw, err := ts.sign(subject, access, now)
	if err != nil {
		slog.Error("origin token server: sign token", "err", err)
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(tokenResponse{
		Token:       raw,
		AccessToken: raw,
		ExpiresIn:   int(ts.cfg.ExpiresIn / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	}); err != nil {
		slog.Debug("origin token server: write response", "err", err)
	}
}

// authenticate returns the caller's user name, "" for an allowed anonymous
// caller, and false for a caller to refuse.
func (ts *TokenServer) authenticate(r *http.Request) (string, bool) {
	user, pass, hasBasic := r.BasicAuth()
	if !hasBasic {
		return "", ts.cfg.AllowAnonymous
	}
	good := ts.cfg.Username != "" &&
		subtle.ConstantTimeCompare([]byte(user), []byte(ts.cfg.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(ts.cfg.Password)) == 1
	return user, good
}

// sign builds the JWT. Its exp sits token.Leeway before the advertised
// expiry because the origin accepts tokens until exp+Leeway: this way the
// origin stops accepting a token when expires_in says it should (rounded
// up to a whole second, never earlier), and a client that fails to refresh
// is caught.
func (ts *TokenServer) sign(subject string, access []*token.ResourceActions, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	claims := token.ClaimSet{
		Issuer:     ts.cfg.Issuer,
		Subject:    subject,
		Audience:   token.AudienceList{ts.cfg.Service},
		Expiration: ceilUnix(now.Add(ts.cfg.ExpiresIn - token.Leeway)),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      base64.RawURLEncoding.EncodeToString(jti),
		Access:     access,
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").
		WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(ts.cert.Raw)})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ts.key}, opts)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

func ceilUnix(t time.Time) int64 {
	if t.Equal(t.Truncate(time.Second)) {
		return t.Unix()
	}
	return t.Unix() + 1
}

// parseScopes reads scope parameters, each a space-separated list of
// type:name:actions. The name may itself contain colons (a registry host
// with a port), so type ends at the first colon and actions start after
// the last.
func parseScopes(params []string) []*token.ResourceActions {
	var scopes []*token.ResourceActions
	for _, param := range params {
		for _, s := range strings.Fields(param) {
			typ, rest, ok := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok || i <= 0 {
				continue
			}
			scopes = append(scopes, &token.ResourceActions{
				Type:    typ,
				Name:    rest[:i],
				Actions: strings.Split(rest[i+1:], ","),
			})
		}
	}
	return scopes
}

// grant narrows requested scopes to what the caller may do: anything when
// authenticated, pulling repositories when anonymous.
func grant(requested []*token.ResourceActions, authenticated bool) []*token.ResourceActions {
	if authenticated {
		return requested
	}
	var granted []*token.ResourceActions
	for _, ra := range requested {
		if ra.Type == "repository" && slices.Contains(ra.Actions, "pull") {
			granted = append(granted, &token.ResourceActions{Type: ra.Type, Name: ra.Name, Actions: []string{"pull"}})
		}
	}
	return granted
}

func serveError(w http.ResponseWriter, err error) {
	if werr := errcode.ServeJSON(w, err); werr != nil {
		slog.Debug("origin token server: write error", "err", werr)
	}
}
