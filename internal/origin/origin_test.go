package origin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

const layerSize = 4 << 10

// serve starts an origin on loopback and returns it with its host:port.
func serve(t *testing.T, auth origin.AuthConfig) (*origin.Origin, string) {
	t.Helper()
	o, err := origin.New(context.Background(), origin.Config{Dir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatalf("new origin: %v", err)
	}
	srv := httptest.NewServer(o)
	t.Cleanup(func() {
		srv.Close()
		if err := o.Close(); err != nil {
			t.Errorf("close origin: %v", err)
		}
	})
	return o, strings.TrimPrefix(srv.URL, "http://")
}

// pullImage fetches ref's manifest, config and every layer, checking each
// against what was pushed.
func pullImage(t *testing.T, ref name.Reference, want testimage.Image, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if got, _ := img.Digest(); got.String() != want.Manifest.Digest.String() {
		t.Errorf("manifest digest = %s, want %s", got, want.Manifest.Digest)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if got := digest.FromBytes(cfg); got != want.Config.Digest {
		t.Errorf("config digest = %s, want %s", got, want.Config.Digest)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("layers: %v", err)
	}
	if len(layers) != len(want.Layers) {
		t.Fatalf("got %d layers, want %d", len(layers), len(want.Layers))
	}
	for i, l := range layers {
		if got := readLayer(t, l); got != want.Layers[i].Digest {
			t.Errorf("layer %d digest = %s, want %s", i, got, want.Layers[i].Digest)
		}
	}
	return img
}

func readLayer(t *testing.T, l v1.Layer) digest.Digest {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatalf("open layer: %v", err)
	}
	defer rc.Close()
	d, err := digest.FromReader(rc)
	if err != nil {
		t.Fatalf("read layer: %v", err)
	}
	return d
}

func TestImageRoundTripCountsEachBlobOnce(t *testing.T) {
	o, host := serve(t, origin.AuthConfig{})
	ctx := context.Background()
	pushed, err := testimage.PushImage(ctx, host+"/team/app:v1", 3, layerSize)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	o.Reset()

	ref, err := name.ParseReference(pushed.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pullImage(t, ref, pushed.Images[0])

	var wantBytes int64
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("BlobGETs(%s) = %d, want 1", b.Digest, n)
		}
		wantBytes += b.Size
	}
	if n := o.TotalBlobGETs(); n != 4 {
		t.Errorf("TotalBlobGETs = %d, want 4 (config + 3 layers)", n)
	}
	if n := o.BlobBytesSent(); n != wantBytes {
		t.Errorf("BlobBytesSent = %d, want %d", n, wantBytes)
	}
	if n := o.ManifestRequests(); n != 1 {
		t.Errorf("ManifestRequests = %d, want 1", n)
	}

	// A second fetch counts again; a miss does not count at all.
	layer := pushed.Images[0].Layers[0]
	if got := readLayer(t, mustLayer(t, ref, layer)); got != layer.Digest {
		t.Errorf("refetched layer digest = %s, want %s", got, layer.Digest)
	}
	if n := o.BlobGETs(layer.Digest); n != 2 {
		t.Errorf("BlobGETs after refetch = %d, want 2", n)
	}
	missing := digest.FromString("not pushed")
	resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, pushed.Repository, missing))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET missing blob: status %d, want 404", resp.StatusCode)
	}
	if n := o.BlobGETs(missing); n != 0 {
		t.Errorf("BlobGETs(missing) = %d, want 0", n)
	}
	if n := o.TotalBlobGETs(); n != 5 {
		t.Errorf("TotalBlobGETs = %d, want 5", n)
	}

	o.Reset()
	if o.TotalBlobGETs() != 0 || o.BlobBytesSent() != 0 || o.ManifestRequests() != 0 {
		t.Errorf("counters not zero after Reset")
	}
}

func mustLayer(t *testing.T, ref name.Reference, d ocispec.Descriptor) v1.Layer {
	t.Helper()
	l, err := remote.Layer(ref.Context().Digest(d.Digest.String()))
	if err != nil {
		t.Fatalf("layer %s: %v", d.Digest, err)
	}
	return l
}

func TestIndexRoundTrip(t *testing.T) {
	o, host := serve(t, origin.AuthConfig{})
	ctx := context.Background()
	pushed, err := testimage.PushIndex(ctx, host+"/multi:latest", []string{"linux/amd64", "linux/arm64/v8"}, 2, layerSize)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if pushed.Top.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("top media type = %s, want OCI index", pushed.Top.MediaType)
	}
	o.Reset()

	ref, err := name.ParseReference(pushed.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if got, _ := idx.Digest(); got.String() != pushed.Top.Digest.String() {
		t.Errorf("index digest = %s, want %s", got, pushed.Top.Digest)
	}
	if len(pushed.Images) != 2 {
		t.Fatalf("pushed %d images, want 2", len(pushed.Images))
	}
	for _, want := range pushed.Images {
		p := want.Manifest.Platform
		platform := v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
		img := pullImage(t, ref, want, remote.WithPlatform(platform))
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != p.OS || cfg.Architecture != p.Architecture || cfg.Variant != p.Variant {
			t.Errorf("config platform = %s/%s/%s, want %s/%s/%s", cfg.OS, cfg.Architecture, cfg.Variant, p.OS, p.Architecture, p.Variant)
		}
	}
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("BlobGETs(%s) = %d, want 1", b.Digest, n)
		}
	}
}

func TestHtpasswd(t *testing.T) {
	_, host := serve(t, origin.AuthConfig{Htpasswd: &origin.Htpasswd{Username: "alice", Password: "s3cret"}})

	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous /v2/: status %d challenge %q, want 401 Basic", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	good := remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"})
	bad := remote.WithAuth(&authn.Basic{Username: "alice", Password: "wrong"})
	if _, err := testimage.PushImage(context.Background(), host+"/private:v1", 1, layerSize, bad); err == nil {
		t.Errorf("push with a wrong password succeeded")
	}
	pushed, err := testimage.PushImage(context.Background(), host+"/private:v1", 1, layerSize, good)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	ref, err := name.ParseReference(pushed.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pullImage(t, ref, pushed.Images[0], good)
	if _, err := remote.Image(ref); err == nil {
		t.Errorf("anonymous pull succeeded")
	}
}

// serveToken starts an origin that serves its own token service.
func serveToken(t *testing.T, cfg origin.TokenServerConfig) (*origin.TokenServer, *origin.Origin, string) {
	t.Helper()
	ts, err := origin.NewTokenServer(cfg)
	if err != nil {
		t.Fatalf("new token server: %v", err)
	}
	o, host := serve(t, origin.AuthConfig{Token: ts.EmbeddedAuth()})
	return ts, o, host
}

func TestTokenAuth(t *testing.T) {
	ts, o, host := serveToken(t, origin.TokenServerConfig{Username: "bob", Password: "hunter2"})
	realm := "http://" + host + origin.TokenPath

	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") ||
		!strings.Contains(challenge, fmt.Sprintf("realm=%q", realm)) {
		t.Fatalf("anonymous /v2/: status %d challenge %q, want 401 Bearer naming %s", resp.StatusCode, challenge, realm)
	}

	good := remote.WithAuth(&authn.Basic{Username: "bob", Password: "hunter2"})
	pushed, err := testimage.PushImage(context.Background(), host+"/org/private:v1", 2, layerSize, good)
	if err != nil {
		t.Fatalf("push through token flow: %v", err)
	}
	o.Reset()
	before := ts.TokenRequests()

	ref, err := name.ParseReference(pushed.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pullImage(t, ref, pushed.Images[0], good)
	if ts.TokenRequests() == before {
		t.Errorf("pull did not ask the token server")
	}
	for _, b := range pushed.Blobs() {
		if n := o.BlobGETs(b.Digest); n != 1 {
			t.Errorf("BlobGETs(%s) = %d, want 1", b.Digest, n)
		}
	}

	bad := remote.WithAuth(&authn.Basic{Username: "bob", Password: "wrong"})
	if _, err := remote.Image(ref, bad); err == nil {
		t.Errorf("pull with a wrong password succeeded")
	}
	if _, err := remote.Image(ref); err == nil {
		t.Errorf("anonymous pull succeeded without AllowAnonymous")
	}
}

func TestTokenAnonymousPullOnly(t *testing.T) {
	_, _, host := serveToken(t, origin.TokenServerConfig{Username: "bob", Password: "hunter2", AllowAnonymous: true})
	ctx := context.Background()
	if _, err := testimage.PushImage(ctx, host+"/public:v1", 1, layerSize); err == nil {
		t.Errorf("anonymous push succeeded")
	}
	pushed, err := testimage.PushImage(ctx, host+"/public:v1", 1, layerSize,
		remote.WithAuth(&authn.Basic{Username: "bob", Password: "hunter2"}))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	ref, err := name.ParseReference(pushed.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pullImage(t, ref, pushed.Images[0])
}

// TestTokenExpires checks that the origin refuses a token once the
// advertised expires_in has passed, so clients' refresh is observable. The
// token server listens on its own here, as auth.docker.io does.
func TestTokenExpires(t *testing.T) {
	ts, err := origin.NewTokenServer(origin.TokenServerConfig{Username: "bob", Password: "hunter2", ExpiresIn: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tsrv := httptest.NewServer(ts)
	t.Cleanup(tsrv.Close)
	realm := tsrv.URL + "/auth"
	_, host := serve(t, origin.AuthConfig{Token: ts.Auth(realm)})

	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if challenge := resp.Header.Get("WWW-Authenticate"); !strings.Contains(challenge, fmt.Sprintf("realm=%q", realm)) {
		t.Fatalf("challenge %q does not name %s", challenge, realm)
	}

	req, err := http.NewRequest(http.MethodGet, realm+"?service=blobswarm-origin&scope=repository:x:pull", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("bob", "hunter2")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: status %d, %v", resp.StatusCode, err)
	}
	if tok.Token == "" || tok.AccessToken != tok.Token || tok.ExpiresIn != 1 {
		t.Fatalf("token response = %+v", tok)
	}
	if _, err := time.Parse(time.RFC3339, tok.IssuedAt); err != nil {
		t.Errorf("issued_at: %v", err)
	}

	status := func() int {
		req, err := http.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("fresh token: status %d, want 200", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for status() == http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("token still accepted 5s after a 1s expiry")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := origin.New(ctx, origin.Config{}); err == nil {
		t.Errorf("New without Dir succeeded")
	}
	both := origin.AuthConfig{Htpasswd: &origin.Htpasswd{Username: "a"}, Token: &origin.TokenAuth{}}
	if _, err := origin.New(ctx, origin.Config{Dir: t.TempDir(), Auth: both}); err == nil {
		t.Errorf("New with two auth modes succeeded")
	}
	if _, err := origin.New(ctx, origin.Config{Dir: t.TempDir(), Auth: origin.AuthConfig{Token: &origin.TokenAuth{Realm: "http://127.0.0.1:1/token"}}}); err == nil {
		t.Errorf("New with token auth and no root certificate succeeded")
	}
	if _, err := origin.New(ctx, origin.Config{Dir: t.TempDir(), Auth: origin.AuthConfig{Token: &origin.TokenAuth{}}}); err == nil {
		t.Errorf("New with token auth and neither realm nor server succeeded")
	}
}
