package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker/auth"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// FuzzTokenResponse answers the client's request with a 401 carrying the
// fuzzed challenge ({realm} stands for the token service's URL) and the
// token service with the fuzzed status and body. Whatever the upstream
// says, the request either reaches the registry with exactly the token
// the service issued, or fails as an upstream error naming the host.
func FuzzTokenResponse(f *testing.F) {
	const realm = `Bearer realm="{realm}",service="registry.test",scope="repository:app:pull"`
	f.Add(realm, 200, []byte(`{"token":"abc","expires_in":300}`))
	f.Add(realm, 200, []byte(`{"access_token":"abc","token":"old","issued_at":"2020-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, challenge string, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		var mu sync.Mutex
		var sent []string
		tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(body)
		}))
		defer tokens.Close()
		registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := r.Header.Get("Authorization")
			if !strings.HasPrefix(a, "Bearer ") {
				w.Header()["Www-Authenticate"] = []string{strings.ReplaceAll(challenge, "{realm}", tokens.URL)}
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			mu.Lock()
			sent = append(sent, strings.TrimPrefix(a, "Bearer "))
			mu.Unlock()
		}))
		defer registry.Close()
		u, _ := url.Parse(registry.URL)
		c := upstream.New(upstream.Config{
			Endpoints: map[string]upstream.Endpoint{u.Host: {Host: u.Host, URL: u}},
			HTTP:      &http.Client{Transport: onlyTo(tokens.URL, registry.URL)},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Do(ctx, http.MethodGet, u.Host, "app", "/v2/app/blobs/sha256:"+strings.Repeat("0", 64), nil)
		if err != nil {
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Host != u.Host {
				t.Fatalf("Do: %v, want an upstream error naming %s", err, u.Host)
			}
			if ctx.Err() != nil {
				t.Fatalf("Do hung until the deadline: %v", err)
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			return
		}
		var tr auth.FetchTokenResponse
		if jsonErr := json.NewDecoder(bytes.NewReader(body)).Decode(&tr); jsonErr != nil || status >= 400 {
			t.Fatalf("HTTP %d from the registry although the token service answered %d %q", resp.StatusCode, status, body)
		}
		want := tr.Token
		if tr.AccessToken != "" {
			want = tr.AccessToken
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sent) != 1 || sent[0] != want {
			t.Fatalf("registry saw tokens %q, want exactly [%q] from %q", sent, want, body)
		}
	})
}

// onlyTo is a transport that reaches the test servers and nothing else, so
// a fuzzed realm cannot send the client anywhere.
func onlyTo(allowed ...string) http.RoundTripper {
	hosts := map[string]bool{}
	for _, a := range allowed {
		u, _ := url.Parse(a)
		hosts[u.Host] = true
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if !hosts[r.URL.Host] {
			return nil, fmt.Errorf("test transport: %s is not a test server", r.URL.Host)
		}
		return base.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
