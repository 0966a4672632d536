package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker/auth"
)

// Authorizer is how requests to a registry get their credentials, in the
// shape of containerd's docker.Authorizer: Authorize decorates each
// request with what is known for its scope, and Answer learns from a 401's
// challenges before the one retry.
type Authorizer interface {
	Authorize(req *http.Request, ep Endpoint, scope string)
	Answer(ctx context.Context, ep Endpoint, scope string, challenges []auth.Challenge) error
}

// NewAuthorizer answers the flows registries use: a static bearer token
// from the configuration, bearer tokens fetched per repository scope from
// the challenge's realm (with username and password when configured, else
// anonymously), and basic auth. Token requests go through hc's transport,
// follow no redirect to another origin, and read at most
// MaxTokenResponse bytes of answer.
func NewAuthorizer(hc *http.Client) Authorizer {
	tc := *hc
	base := tc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tc.Transport = limitBodies{base: base, limit: MaxTokenResponse}
	tc.CheckRedirect = checkTokenRedirect
	return &tokenAuthorizer{http: &tc, tokens: map[tokenKey]token{}, basic: map[string]bool{}}
}

// MaxTokenResponse bounds a token service's answer: a token is a few
// KiB, and the whole answer is decoded in memory.
const MaxTokenResponse = 1 << 20

// ErrTokenResponseTooLarge is a token answer past MaxTokenResponse.
var ErrTokenResponseTooLarge = fmt.Errorf("token response larger than %d bytes", MaxTokenResponse)

// limitBodies cuts every response body off with an error past limit
// bytes: containerd's auth.FetchToken decodes the body it is given.
type limitBodies struct {
	base  http.RoundTripper
	limit int64
}

func (l limitBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: l.limit}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

// Read reads one byte past the limit, so that a body of exactly the
// limit still ends with io.EOF and a longer one with the error.
func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.left = 0
		return n, ErrTokenResponseTooLarge
	}
	b.left -= int64(n)
	return n, err
}

// tokenAuthorizer keeps what registries accepted: one lock for its state.
type tokenAuthorizer struct {
	http *http.Client

	mu     sync.Mutex
	tokens map[tokenKey]token
	// basic remembers registries that answered with a Basic challenge so
	// later requests send credentials up front.
	basic map[string]bool
}

type tokenKey struct{ host, scope string }

type token struct {
	value   string
	expires time.Time
}

// Authorize adds what the registry accepted last time for scope: a
// configured token, a bearer token still valid, or basic credentials for
// a registry that asked for them.
func (a *tokenAuthorizer) Authorize(req *http.Request, ep Endpoint, scope string) {
	if ep.Creds.Token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.Creds.Token)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[tokenKey{ep.Host, scope}]; ok && time.Now().Before(t.expires) {
		req.Header.Set("Authorization", "Bearer "+t.value)
		return
	}
	if a.basic[ep.Host] && ep.Creds.Username != "" {
		req.SetBasicAuth(ep.Creds.Username, ep.Creds.Password)
	}
}

// Answer meets a 401's challenges: it fetches a bearer token for scope, or
// turns on basic auth for the registry.
func (a *tokenAuthorizer) Answer(ctx context.Context, ep Endpoint, scope string, challenges []auth.Challenge) error {
	a.mu.Lock()
	delete(a.tokens, tokenKey{ep.Host, scope})
	a.mu.Unlock()
	for _, ch := range challenges {
		switch ch.Scheme {
		case auth.BearerAuth:
			if ep.Creds.Token != "" {
				return errors.New("configured token was refused")
			}
			return a.fetchToken(ctx, ep, scope, ch)
		case auth.BasicAuth:
			if ep.Creds.Username == "" {
				return errors.New("registry requires credentials and none are configured")
			}
			a.mu.Lock()
			already := a.basic[ep.Host]
			a.basic[ep.Host] = true
			a.mu.Unlock()
			if already {
				return errors.New("configured credentials were refused")
			}
			return nil
		}
	}
	return errors.New("registry answered 401 without a supported challenge")
}

// defaultTokenLife is what the distribution spec says to assume when a
// token response carries no expires_in.
const defaultTokenLife = 60 * time.Second

func (a *tokenAuthorizer) fetchToken(ctx context.Context, ep Endpoint, scope string, ch auth.Challenge) error {
	opts, err := auth.GenerateTokenOptions(ctx, ep.Host, ep.Creds.Username, ep.Creds.Password, ch)
	if err != nil {
		return fmt.Errorf("token challenge: %w", err)
	}
	// The realm is wherever the registry says: a password must not travel
	// there in clear unless the registry itself is reached in clear.
	realm, err := url.Parse(opts.Realm)
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && (realm.Scheme != "http" || ep.URL.Scheme != "http")) {
		return fmt.Errorf("token realm %q: must be an https URL (http only for a registry configured at an http:// URL)", opts.Realm)
	}
	// The challenge names the scope of the request that failed; ask for the
	// repository's pull scope so one token serves all of its requests.
	opts.Scopes = []string{scope}
	// A token's life counts from before we asked, on our clock. The
	// response's issued_at has whole seconds from another clock: with a
	// short expires_in it can date a fresh token's expiry before now, and
	// the retry would go out without it.
	requested := time.Now()
	tr, err := auth.FetchToken(ctx, a.http, nil, opts)
	if err != nil {
		return fmt.Errorf("fetch token from %s: %w", opts.Realm, err)
	}
	life := time.Duration(tr.ExpiresInSeconds) * time.Second
	if life <= 0 {
		life = defaultTokenLife
	}
	// Renew a little early so a request never leaves with a token that
	// expires on the way.
	expires := requested.Add(life - life/10)
	a.mu.Lock()
	a.tokens[tokenKey{ep.Host, scope}] = token{value: tr.Token, expires: expires}
	a.mu.Unlock()
	slog.Debug("upstream token obtained", "upstream", ep.Host, "scope", scope, "expires", expires)
	return nil
}
