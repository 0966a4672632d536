package tags

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// newResolver returns a resolver in front of a fresh origin whose handler
// wrap may hold back.
func newResolver(t *testing.T, ttl time.Duration, wrap func(http.Handler) http.Handler) (*Resolver, *harness.Origin) {
	t.Helper()
	o := harness.NewOriginWith(t, origin.Config{}, wrap)
	u, err := url.Parse(o.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	up := upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{o.Host(): {Host: o.Host(), URL: u}}})
	return New(up, ttl), o
}

func pushImage(t *testing.T, o *harness.Origin, ref string) testimage.Pushed {
	t.Helper()
	p, err := testimage.PushImage(t.Context(), o.Host()+"/"+ref, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()
	return p
}

// fakeClock is the resolver's time, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// manifestGate holds manifest GETs at the origin, once armed, until
// opened, and says when the first one arrived and when a held one was
// given up by its client.
type manifestGate struct {
	armed     atomic.Bool
	arrived   chan struct{}
	abandoned chan struct{}
	open      chan struct{}
	once      sync.Once
	leftOnce  sync.Once
	openOnce  sync.Once
}

func newManifestGate() *manifestGate {
	return &manifestGate{arrived: make(chan struct{}), abandoned: make(chan struct{}), open: make(chan struct{})}
}

func (g *manifestGate) Open() { g.openOnce.Do(func() { close(g.open) }) }

func (g *manifestGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.armed.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			g.once.Do(func() { close(g.arrived) })
			select {
			case <-g.open:
			case <-r.Context().Done():
				g.leftOnce.Do(func() { close(g.abandoned) })
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func TestBurstOfResolutionsCostsOneOriginRequest(t *testing.T) {
	gate := newManifestGate()
	t.Cleanup(gate.Open)
	r, o := newResolver(t, time.Minute, gate.wrap)
	p := pushImage(t, o, "app:v1")
	gate.armed.Store(true)

	const resolvers = 50
	var started, done sync.WaitGroup
	got := make([]oci.Manifest, resolvers)
	errs := make([]error, resolvers)
	started.Add(resolvers)
	done.Add(resolvers)
	for i := range resolvers {
		go func() {
			defer done.Done()
			started.Done()
			got[i], errs[i] = r.Resolve(t.Context(), o.Host(), "app", "v1", []string{dockerManifest})
		}()
	}
	started.Wait()
	<-gate.arrived
	// Give the other resolvers time to reach the origin too, were they
	// going to; coalesced, they wait on the first request instead.
	time.Sleep(100 * time.Millisecond)
	gate.Open()
	done.Wait()

	for i := range resolvers {
		if errs[i] != nil {
			t.Fatalf("resolver %d: %v", i, errs[i])
		}
		if got[i].Digest != p.Top.Digest || digest.FromBytes(got[i].Data) != p.Top.Digest || got[i].MediaType != dockerManifest {
			t.Fatalf("resolver %d got %s (%s), want %s (%s)", i, got[i].Digest, got[i].MediaType, p.Top.Digest, dockerManifest)
		}
	}
	if n := o.ManifestRequests(); n != 1 {
		t.Fatalf("origin answered %d manifest requests for %d resolutions, want 1", n, resolvers)
	}
}

func TestAnswerIsReusedForTTLThenAskedAgain(t *testing.T) {
	const ttl = 5 * time.Second
	r, o := newResolver(t, ttl, nil)
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r.now = clock.Now
	old := pushImage(t, o, "app:latest")
	accept := []string{dockerManifest}

	resolve := func() oci.Manifest {
		t.Helper()
		m, err := r.Resolve(t.Context(), o.Host(), "app", "latest", accept)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := resolve(); m.Digest != old.Top.Digest {
		t.Fatalf("resolved %s, want %s", m.Digest, old.Top.Digest)
	}
	// The tag moves at the origin; within the ttl the fleet keeps the
	// answer it has.
	moved := pushImage(t, o, "app:latest")
	clock.Advance(ttl - time.Millisecond)
	if m := resolve(); m.Digest != old.Top.Digest {
		t.Fatalf("within the ttl resolved %s, want the cached %s", m.Digest, old.Top.Digest)
	}
	if n := o.ManifestRequests(); n != 0 {
		t.Fatalf("origin asked %d times within the ttl, want 0", n)
	}
	clock.Advance(2 * time.Millisecond)
	if m := resolve(); m.Digest != moved.Top.Digest {
		t.Fatalf("after the ttl resolved %s, want the moved tag's %s", m.Digest, moved.Top.Digest)
	}
	if n := o.ManifestRequests(); n != 1 {
		t.Fatalf("origin asked %d times after the ttl, want 1", n)
	}
}

func TestDifferentAcceptAreSeparateEntries(t *testing.T) {
	r, o := newResolver(t, time.Minute, nil)
	img := pushImage(t, o, "app:amd64")
	// A Docker manifest list: the origin answers a client that accepts
	// lists with the list and any other with the amd64 image itself.
	list, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     dockerList,
		"manifests": []map[string]any{{
			"mediaType": dockerManifest,
			"size":      img.Top.Size,
			"digest":    img.Top.Digest,
			"platform":  map[string]string{"architecture": "amd64", "os": "linux"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	listDigest, err := harness.PushManifest(t.Context(), o.Server.URL, "app", "multi", dockerList, list)
	if err != nil {
		t.Fatal(err)
	}
	o.Reset()

	cases := []struct {
		accept     []string
		wantDigest digest.Digest
		wantType   string
	}{
		{[]string{dockerList, dockerManifest}, listDigest, dockerList},
		{[]string{dockerManifest}, img.Top.Digest, dockerManifest},
	}
	for round := range 2 {
		for _, c := range cases {
			m, err := r.Resolve(t.Context(), o.Host(), "app", "multi", c.accept)
			if err != nil {
				t.Fatal(err)
			}
			if m.Digest != c.wantDigest || m.MediaType != c.wantType || digest.FromBytes(m.Data) != c.wantDigest {
				t.Fatalf("round %d, Accept %v: got %s (%s), want %s (%s)", round, c.accept, m.Digest, m.MediaType, c.wantDigest, c.wantType)
			}
		}
	}
	if n := o.ManifestRequests(); n != len(cases) {
		t.Fatalf("origin answered %d manifest requests, want one per Accept (%d)", n, len(cases))
	}
}

func TestMissIsNotCached(t *testing.T) {
	r, o := newResolver(t, time.Minute, nil)
	pushImage(t, o, "app:v1")
	_, err := r.Resolve(t.Context(), o.Host(), "app", "v2", []string{dockerManifest})
	if e, internal := upstream.ClientError(err, errcode.ErrorCodeManifestUnknown); internal || e.Code != errcode.ErrorCodeManifestUnknown {
		t.Fatalf("resolving a tag the origin lacks: %v, want MANIFEST_UNKNOWN from the upstream", err)
	}
	p := pushImage(t, o, "app:v2")
	m, err := r.Resolve(t.Context(), o.Host(), "app", "v2", []string{dockerManifest})
	if err != nil {
		t.Fatalf("tag pushed after a miss: %v", err)
	}
	if m.Digest != p.Top.Digest {
		t.Fatalf("resolved %s, want %s", m.Digest, p.Top.Digest)
	}
}

func TestResolverGivesUpWhenItsCallerDoes(t *testing.T) {
	gate := newManifestGate()
	t.Cleanup(gate.Open)
	r, o := newResolver(t, time.Minute, gate.wrap)
	p := pushImage(t, o, "app:v1")
	gate.armed.Store(true)

	first := make(chan error, 1)
	go func() {
		_, err := r.Resolve(t.Context(), o.Host(), "app", "v1", []string{dockerManifest})
		first <- err
	}()
	<-gate.arrived
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Resolve(ctx, o.Host(), "app", "v1", []string{dockerManifest}); !errors.Is(err, context.Canceled) {
		t.Fatalf("resolution whose caller left: %v, want context.Canceled", err)
	}
	gate.Open()
	if err := <-first; err != nil {
		t.Fatalf("the request the caller left behind: %v", err)
	}
	m, err := r.Resolve(t.Context(), o.Host(), "app", "v1", []string{dockerManifest})
	if err != nil || m.Digest != p.Top.Digest {
		t.Fatalf("resolved %s, %v; want %s", m.Digest, err, p.Top.Digest)
	}
	if n := o.ManifestRequests(); n != 1 {
		t.Fatalf("origin answered %d manifest requests, want 1", n)
	}
}

func TestStalledOriginIsAbandonedAtTheFirstAskersDeadline(t *testing.T) {
	gate := newManifestGate()
	t.Cleanup(gate.Open)
	r, o := newResolver(t, time.Minute, gate.wrap)
	pushImage(t, o, "app:v1")
	gate.armed.Store(true)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Resolve(ctx, o.Host(), "app", "v1", []string{dockerManifest}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("resolution against a stalled origin: %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-gate.abandoned:
	case <-time.After(10 * time.Second):
		t.Fatal("the shared request to the stalled origin outlived its asker's deadline")
	}
}
