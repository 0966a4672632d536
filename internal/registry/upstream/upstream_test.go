package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker/auth"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// tokenOrigin serves a registry that demands bearer tokens from its own
// token service, as Docker Hub does.
func tokenOrigin(t *testing.T) (*origin.TokenServer, upstream.Endpoint) {
	t.Helper()
	ts, err := origin.NewTokenServer(origin.TokenServerConfig{Username: "ci", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := origin.New(context.Background(), origin.Config{Dir: t.TempDir(), Auth: origin.AuthConfig{Token: ts.EmbeddedAuth()}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	t.Cleanup(func() { srv.Close(); o.Close() })
	u, _ := url.Parse(srv.URL)
	return ts, upstream.Endpoint{Host: u.Host, URL: u}
}

func TestBearerTokenFlowCachesPerRepository(t *testing.T) {
	ts, ep := tokenOrigin(t)
	ep.Creds = upstream.Credentials{Username: "ci", Password: "s3cret"}
	c := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{ep.Host: ep}})
	ctx := context.Background()
	missing := digest.FromString("not pushed")

	// Three requests in one repository: one challenge, one token.
	for range 3 {
		_, _, err := c.GetBlob(ctx, ep.Host, "team/app", missing)
		if !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("GetBlob = %v, want an authenticated 404", err)
		}
	}
	if n := ts.TokenRequests(); n != 1 {
		t.Errorf("token requests for one repository = %d, want 1 (cached)", n)
	}
	// Another repository needs its own scope.
	c.GetBlob(ctx, ep.Host, "team/other", missing)
	if n := ts.TokenRequests(); n != 2 {
		t.Errorf("token requests after a second repository = %d, want 2", n)
	}
}

func TestWrongCredentialsAreUnauthorized(t *testing.T) {
	_, ep := tokenOrigin(t)
	ep.Creds = upstream.Credentials{Username: "ci", Password: "wrong"}
	c := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{ep.Host: ep}})
	_, _, err := c.GetManifest(context.Background(), ep.Host, "team/app", "latest", nil)
	e, internal := upstream.ClientError(err, errcode.ErrorCodeManifestUnknown)
	if internal || e.Code != errcode.ErrorCodeUnauthorized {
		t.Fatalf("error = %v (code %v), want UNAUTHORIZED from the upstream", err, e.Code)
	}
}

func TestUnreachableNamesTheUpstream(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	c := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{"reg.example": {Host: "reg.example", URL: u}}})
	_, _, err := c.GetBlob(context.Background(), "reg.example", "a/b", digest.FromString("x"))
	if !upstream.Unreachable(err) {
		t.Fatalf("error = %v, want unreachable", err)
	}
	e, _ := upstream.ClientError(err, errcode.ErrorCodeBlobUnknown)
	if e.Code != errcode.ErrorCodeUnavailable || !strings.Contains(e.Message, "reg.example") {
		t.Fatalf("client would see %v %q, want UNAVAILABLE naming reg.example", e.Code, e.Message)
	}
}

func TestParseEndpoints(t *testing.T) {
	eps, err := upstream.ParseEndpoints([]string{"docker.io=http://127.0.0.1:5001/prefix"}, nil)
	if err != nil || eps["docker.io"].URL.String() != "http://127.0.0.1:5001/prefix" {
		t.Fatalf("ParseEndpoints = %v, %v", eps, err)
	}
	for _, bad := range []string{"docker.io", "=http://x", "x=ftp://y", "x=http://"} {
		if _, err := upstream.ParseEndpoints([]string{bad}, nil); err == nil {
			t.Errorf("ParseEndpoints accepted %q", bad)
		}
	}
	// A password in the URL would show wherever the URL does.
	_, err = upstream.ParseEndpoints([]string{"reg.test=https://ci:hunter2@reg.test"}, nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("an upstream URL with a password: %v, want it refused without the password, pointing at credentials", err)
	}
	if _, err := upstream.ParseEndpoints(nil, map[string]upstream.CredentialFiles{"x": {Username: "u", PasswordFile: "/nonexistent"}}); err == nil {
		t.Error("a missing password file was accepted")
	}
	if got := upstream.DefaultEndpoint("docker.io").URL.String(); got != "https://registry-1.docker.io" {
		t.Errorf("docker.io is reached at %s", got)
	}
}

// vaultAuthorizer stands for a credential kind the default authorizer does
// not know: it learns a token only when a registry challenges it.
type vaultAuthorizer struct {
	mu      sync.Mutex
	token   string
	answers int
}

func (v *vaultAuthorizer) Authorize(req *http.Request, _ upstream.Endpoint, _ string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
}

func (v *vaultAuthorizer) Answer(_ context.Context, _ upstream.Endpoint, scope string, challenges []auth.Challenge) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.answers++
	if len(challenges) != 1 || challenges[0].Scheme != auth.BearerAuth {
		return fmt.Errorf("unexpected challenges %v", challenges)
	}
	v.token = "from-vault-for-" + scope
	return nil
}

// The client's auth is a seam: another Authorizer answers the challenge,
// and the retry carries what it decided.
func TestClientUsesTheConfiguredAuthorizer(t *testing.T) {
	want := "Bearer from-vault-for-repository:team/app:pull"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://auth.example/token",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	v := &vaultAuthorizer{}
	c := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{"reg": {Host: "reg", URL: u}}, Auth: v})
	for range 2 {
		if _, _, err := c.GetManifest(t.Context(), "reg", "team/app", "latest", nil); err != nil {
			t.Fatal(err)
		}
	}
	if v.answers != 1 {
		t.Fatalf("authorizer answered %d challenges, want 1 (the second request carries the token)", v.answers)
	}
}

// A closed port and a reset connection look the same to a client: the
// upstream is unreachable; the difference is for the log.
func TestUnreachableTellsClientsNothingAboutThePort(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	reset := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
	var msgs []string
	for _, srv := range []*httptest.Server{closed, reset.Server} {
		_, _, err := client(t, srv, upstream.Config{}).GetBlob(context.Background(), "reg.test", "app", digest.FromBytes(blob))
		e, _ := upstream.ClientError(err, errcode.ErrorCodeBlobUnknown)
		if e.Code != errcode.ErrorCodeUnavailable || !strings.Contains(err.Error(), "reg.test") {
			t.Fatalf("error %v, client sees %v; want UNAVAILABLE", err, e)
		}
		msgs = append(msgs, e.Message)
	}
	if msgs[0] != msgs[1] || msgs[0] != "upstream reg.test unreachable" {
		t.Fatalf("clients see %q for a closed port and %q for a reset, want both %q", msgs[0], msgs[1], "upstream reg.test unreachable")
	}
}
