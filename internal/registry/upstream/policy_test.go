package upstream_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// With any-registry, a registry nobody named is fetched from, but not on
// a loopback, link-local or private address: asking for one does not
// make the server a port scanner of its own networks.
func TestAnyRegistryStillKeepsOffPrivateAddresses(t *testing.T) {
	host, accepts := countingListener(t, "127.0.0.1:0")
	named := newRecorder(t, false, serveBlob)
	allow, err := upstream.NewAllowList("mirror", []string{"reg.test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, named.Server, upstream.Config{Allow: allow})
	_, _, err = c.GetBlob(t.Context(), host, "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrAddressRefused) {
		t.Fatalf("blob from %s: %v, want the address refused", host, err)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("%s saw %d connections, want none", host, n)
	}
	c = client(t, named.Server, upstream.Config{Allow: allow, AllowPrivateNetworks: true})
	c.GetBlob(t.Context(), host, "app", digest.FromBytes(blob))
	if n := accepts.Load(); n == 0 {
		t.Fatal("with allow-private-networks, the registry was not connected to")
	}
}

// Registries send blob GETs to object storage: followed, but the
// registry's credentials stay with the registry, even on the same host
// name at another port.
func TestBlobRedirectIsFollowedWithoutCredentials(t *testing.T) {
	storage := newRecorder(t, false, serveBlob)
	reg := newRecorder(t, false, redirectTo(storage.URL))
	c := client(t, reg.Server, upstream.Config{})
	body, size, err := c.GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if string(got) != string(blob) || size != int64(len(blob)) {
		t.Fatalf("got %q (%d), want %q", got, size, blob)
	}
	if a := reg.seen(); len(a) != 1 || a[0] != "Bearer s3cret" {
		t.Errorf("registry saw Authorization %q, want the token", a)
	}
	if a := storage.seen(); len(a) != 1 || a[0] != "" {
		t.Errorf("storage on another port saw Authorization %q, want none", a)
	}
}

// Manifests come from the registry itself: a redirect to another port is
// not followed, and the client learns the upstream misbehaved.
func TestManifestRedirectToAnotherHostIsRefused(t *testing.T) {
	elsewhere := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte("{}"))
	})
	reg := newRecorder(t, false, redirectTo(elsewhere.URL))
	c := client(t, reg.Server, upstream.Config{})
	_, _, err := c.GetManifest(t.Context(), "reg.test", "app", "v1", nil)
	if !errors.Is(err, upstream.ErrRedirectRefused) {
		t.Fatalf("GetManifest = %v, want the redirect refused", err)
	}
	if e, _ := upstream.ClientError(err, errcode.ErrorCodeManifestUnknown); e.Code != errcode.ErrorCodeUnavailable || !strings.Contains(e.Message, "reg.test") {
		t.Errorf("client sees %v, want UNAVAILABLE naming reg.test", e)
	}
	if n := len(elsewhere.seen()); n != 0 {
		t.Fatalf("the redirect target got %d requests, want none", n)
	}
}

// No redirect leaves https: the blob request does not go out in clear.
func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	plain := newRecorder(t, false, serveBlob)
	reg := newRecorder(t, true, redirectTo(plain.URL))
	c := client(t, reg.Server, upstream.Config{})
	_, _, err := c.GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrRedirectRefused) {
		t.Fatalf("GetBlob = %v, want the redirect refused", err)
	}
	if n := len(plain.seen()); n != 0 {
		t.Fatalf("the http target got %d requests, want none", n)
	}
}

// privateAddr is a private address of this host that can be listened
// on: a stand-in for the internal network.
func privateAddr(t *testing.T) netip.Addr {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().IsPrivate() {
			continue
		}
		if ln, err := net.Listen("tcp", netip.AddrPortFrom(p.Addr(), 0).String()); err == nil {
			ln.Close()
			return p.Addr()
		}
	}
	t.Skip("this host has no private address to listen on")
	return netip.Addr{}
}

// A redirect from a registry on loopback to a private address of this
// host is refused when the connection is made: the configuration named a
// loopback registry, not the private network.
func TestRedirectToAnotherKindOfAddressIsRefused(t *testing.T) {
	target, accepts := countingListener(t, netip.AddrPortFrom(privateAddr(t), 0).String())
	reg := newRecorder(t, false, redirectTo("http://"+target))
	c := client(t, reg.Server, upstream.Config{})
	_, _, err := c.GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrAddressRefused) {
		t.Fatalf("GetBlob = %v, want the private address refused", err)
	}
	if e, _ := upstream.ClientError(err, errcode.ErrorCodeBlobUnknown); strings.Contains(e.Message, target) {
		t.Errorf("client sees %q, which names the address", e.Message)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("%s saw %d connections, want none", target, n)
	}
}

// A registry on the private network may not send the server to its own
// loopback (another local service, an admin port); with
// allow-private-networks it may.
func TestRedirectFromAPrivateRegistryToLoopbackIsRefused(t *testing.T) {
	local, accepts := countingListener(t, "127.0.0.1:0")
	ln, err := net.Listen("tcp", netip.AddrPortFrom(privateAddr(t), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	reg := &httptest.Server{Listener: ln, Config: &http.Server{Handler: redirectTo("http://" + local)}}
	reg.Start()
	defer reg.Close()
	_, _, err = client(t, reg, upstream.Config{}).GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrAddressRefused) {
		t.Fatalf("GetBlob = %v, want the loopback address refused", err)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("%s saw %d connections, want none", local, n)
	}
	client(t, reg, upstream.Config{AllowPrivateNetworks: true}).GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if accepts.Load() == 0 {
		t.Fatal("with allow-private-networks, the redirect was not followed")
	}
}

// tokenChallenge answers with a bearer challenge pointing at realm until
// the request carries a token.
func tokenChallenge(realm string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		serveBlob(w, r)
	}
}

func anonymousClient(t *testing.T, srv *httptest.Server) *upstream.Client {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	roots := x509.NewCertPool()
	if srv.Certificate() != nil {
		roots.AddCert(srv.Certificate())
	}
	return upstream.New(upstream.Config{
		Endpoints: map[string]upstream.Endpoint{"reg.test": {Host: "reg.test", URL: u, Creds: upstream.Credentials{Username: "ci", Password: "pw"}}},
		HTTP:      upstream.HTTPClient(5*time.Second, roots),
	})
}

// An https registry's password never goes to an http token realm.
func TestHTTPTokenRealmOfAnHTTPSRegistryIsRefused(t *testing.T) {
	tokens := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"token": "t"})
	})
	reg := newRecorder(t, true, tokenChallenge(tokens.URL+"/token"))
	_, _, err := anonymousClient(t, reg.Server).GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if err == nil || !strings.Contains(err.Error(), "token realm") {
		t.Fatalf("GetBlob = %v, want the http realm refused", err)
	}
	if n := len(tokens.seen()); n != 0 {
		t.Fatalf("the http realm got %d requests, want none", n)
	}
}

// A token service that answers without end is cut off: the answer is
// read whole into memory.
func TestOversizedTokenResponseIsRefused(t *testing.T) {
	tokens := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"token":"%s"}`, strings.Repeat("a", upstream.MaxTokenResponse))
	})
	reg := newRecorder(t, false, tokenChallenge(tokens.URL+"/token"))
	_, _, err := anonymousClient(t, reg.Server).GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrTokenResponseTooLarge) {
		t.Fatalf("GetBlob = %v, want the token response refused as too large", err)
	}
	if a := reg.seen(); len(a) != 1 {
		t.Fatalf("registry saw %d requests (%q), want only the first, without a token", len(a), a)
	}
}

// A token request follows no redirect to another host.
func TestTokenRedirectToAnotherHostIsRefused(t *testing.T) {
	elsewhere := newRecorder(t, false, func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"token": "t"})
	})
	tokens := newRecorder(t, false, redirectTo(elsewhere.URL))
	reg := newRecorder(t, false, tokenChallenge(tokens.URL+"/token"))
	_, _, err := anonymousClient(t, reg.Server).GetBlob(t.Context(), "reg.test", "app", digest.FromBytes(blob))
	if !errors.Is(err, upstream.ErrRedirectRefused) {
		t.Fatalf("GetBlob = %v, want the token redirect refused", err)
	}
	if n := len(elsewhere.seen()); n != 0 {
		t.Fatalf("the redirect target got %d requests, want none", n)
	}
}
