package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

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
	if _, err := upstream.ParseEndpoints(nil, map[string]upstream.CredentialFiles{"x": {Username: "u", PasswordFile: "/nonexistent"}}); err == nil {
		t.Error("a missing password file was accepted")
	}
	if got := upstream.DefaultEndpoint("docker.io").URL.String(); got != "https://registry-1.docker.io" {
		t.Errorf("docker.io is reached at %s", got)
	}
}
