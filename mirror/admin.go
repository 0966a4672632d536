package mirror

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
	"github.com/blobswarm/blobswarm/mirror/route"
)

// admin serves the API `mirrorctl` talks to; see package adminapi for the
// endpoints.
type admin struct {
	m     *Mirror
	rates rateSampler
	// health checks trackers; short, so a down tracker does not make
	// `mirrorctl status` hang.
	health *http.Client
}

func (m *Mirror) adminHandler() http.Handler {
	a := &admin{m: m, health: &http.Client{Timeout: 2 * time.Second}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adminapi.StatusPath, a.status)
	mux.HandleFunc("POST "+adminapi.PrefetchPath, a.prefetch)
	mux.HandleFunc(adminapi.Prefix, func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, adminapi.CodeNotFound, "no admin endpoint "+r.Method+" "+r.URL.Path)
	})
	return a.requireToken(mux)
}

// requireToken lets a request through only with the configured bearer
// token; without one configured the API is open to whoever can reach the
// listener (by default loopback only).
func (a *admin) requireToken(next http.Handler) http.Handler {
	want := a.m.cfg.AdminToken
	if want == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="blobswarm-admin"`)
			adminError(w, http.StatusUnauthorized, adminapi.CodeUnauthorized, "the admin API needs the mirror's admin token (mirrorctl --token or MIRRORCTL_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func adminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(adminapi.ErrorBody{Errors: []adminapi.ErrorEntry{{Code: code, Message: msg}}})
}

// registries lists what the mirror has an upstream for: the default
// upstream, and every host given an URL or credentials. Any other host
// would be reached at https://HOST, which is a guess an operator should
// confirm by configuring it, not something to prefetch from.
func (m *Mirror) registries() []adminapi.Registry {
	hosts := []string{m.cfg.DefaultUpstream}
	eps, _ := m.cfg.Endpoints() // validated in New
	for h := range eps {
		if h != m.cfg.DefaultUpstream {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts[1:])
	out := make([]adminapi.Registry, len(hosts))
	for i, h := range hosts {
		out[i] = adminapi.Registry{Host: h, URL: m.upstream.Endpoint(h).URL.String()}
	}
	return out
}

func (a *admin) status(w http.ResponseWriter, r *http.Request) {
	m := a.m
	var st adminapi.Status
	cs := m.cache.Stats()
	st.Cache = adminapi.Cache{Bytes: cs.Bytes, Blobs: cs.Blobs, QuotaBytes: cs.Quota, Evictions: cs.Evictions, EvictedBytes: cs.EvictedBytes}
	st.Registries = m.registries()
	st.DefaultRegistry = m.cfg.DefaultUpstream
	m.mu.Lock()
	st.InflightFetches = len(m.flights)
	m.mu.Unlock()
	s := m.Stats()
	st.Bytes = adminapi.Bytes{Served: s.BytesServed, FromOrigin: s.BytesFromOrigin, FromPeers: s.BytesFromPeers,
		FromSeeder: s.BytesFromSeeder, Uploaded: s.BytesUploaded}
	if m.swarm != nil {
		sw, err := a.rates.swarm(r.Context(), m)
		if err != nil {
			return
		}
		st.Swarm = sw
	}
	st.Trackers = a.trackers(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// trackers checks every configured tracker's health endpoint at once.
func (a *admin) trackers(ctx context.Context) []adminapi.Tracker {
	out := make([]adminapi.Tracker, len(a.m.cfg.Tracker))
	var wg sync.WaitGroup
	for i, u := range a.m.cfg.Tracker {
		out[i].URL = u
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/healthz", nil)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp, err := a.health.Do(req)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				out[i].Error = fmt.Sprintf("health check answered HTTP %d", resp.StatusCode)
				return
			}
			out[i].Reachable = true
		})
	}
	wg.Wait()
	return out
}

// rateSampler turns the swarm's cumulative counters into rates: against
// the previous status request when it is recent, else over a short wait.
type rateSampler struct {
	mu   sync.Mutex
	prev *swarmSample
}

type swarmSample struct {
	at                   time.Time
	downloaded, uploaded int64
	completed            map[digest.Digest]int64
}

const (
	rateWindow    = 300 * time.Millisecond
	rateMaxWindow = 30 * time.Second
)

func (rs *rateSampler) swarm(ctx context.Context, m *Mirror) (*adminapi.Swarm, error) {
	sample := func() (*swarmSample, []adminapiTorrent) {
		st := m.swarm.Stats()
		s := &swarmSample{at: time.Now(), downloaded: st.Downloaded, uploaded: st.Uploaded, completed: map[digest.Digest]int64{}}
		ts := make([]adminapiTorrent, len(st.Torrents))
		for i, t := range st.Torrents {
			s.completed[t.Digest] = t.Completed
			ts[i] = adminapiTorrent{d: t.Digest, t: adminapi.Torrent{Digest: t.Digest.String(), Size: t.Length,
				Completed: t.Completed, Complete: t.Complete, Peers: t.Peers}}
		}
		return s, ts
	}
	rs.mu.Lock()
	prev := rs.prev
	rs.mu.Unlock()
	if prev == nil || time.Since(prev.at) > rateMaxWindow || time.Since(prev.at) < rateWindow/3 {
		prev, _ = sample()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(rateWindow):
		}
	}
	cur, torrents := sample()
	rs.mu.Lock()
	rs.prev = cur
	rs.mu.Unlock()
	dt := cur.at.Sub(prev.at).Seconds()
	out := &adminapi.Swarm{
		DownloadRate: float64(cur.downloaded-prev.downloaded) / dt,
		UploadRate:   float64(cur.uploaded-prev.uploaded) / dt,
		Active:       []adminapi.Torrent{},
	}
	for _, t := range torrents {
		if t.t.Complete && t.t.Peers == 0 {
			out.Seeding++
			continue
		}
		if before, ok := prev.completed[t.d]; ok {
			t.t.Rate = float64(t.t.Completed-before) / dt
		}
		out.Active = append(out.Active, t.t)
	}
	return out, nil
}

type adminapiTorrent struct {
	d digest.Digest
	t adminapi.Torrent
}

// prefetchPlan is everything one prefetch will fetch, worked out before
// the answer starts so that a bad reference gets a proper error status.
type prefetchPlan struct {
	registry, repo string
	top            oci.Manifest
	manifests      []planManifest
	blobs          []planBlob
}

type planManifest struct {
	digest   digest.Digest
	platform string
}

type planBlob struct {
	desc ocispec.Descriptor
	kind string
}

// errPrefetch carries the status and code a prefetch failure answers with.
type errPrefetch struct {
	status int
	code   string
	msg    string
}

func (e *errPrefetch) Error() string { return e.msg }

func (a *admin) prefetch(w http.ResponseWriter, r *http.Request) {
	var req adminapi.PrefetchRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		adminError(w, http.StatusBadRequest, adminapi.CodeInvalidRequest, "prefetch request: "+err.Error())
		return
	}
	plan, err := a.plan(r.Context(), req)
	if err != nil {
		var pe *errPrefetch
		if !errors.As(err, &pe) {
			pe = &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, msg: err.Error()}
		}
		a.m.log.Warn("prefetch refused", "image", req.Image, "err", err)
		adminError(w, pe.status, pe.code, pe.msg)
		return
	}
	a.m.log.Info("prefetch", "image", req.Image, "fleet", req.Fleet, "manifests", len(plan.manifests), "blobs", len(plan.blobs))
	w.Header().Set("Content-Type", adminapi.NDJSON)
	w.WriteHeader(http.StatusOK)
	out := &eventWriter{w: w, enc: json.NewEncoder(w)}
	out.send(adminapi.Event{Type: adminapi.EventResolved, Image: req.Image, Digest: plan.top.Digest.String()})
	for _, pm := range plan.manifests {
		out.send(adminapi.Event{Type: adminapi.EventManifest, Digest: pm.digest.String(), Platform: pm.platform})
	}
	a.fetchAll(r.Context(), plan, req.Fleet, out)
}

// plan resolves the reference and the manifests of the platforms asked for.
func (a *admin) plan(ctx context.Context, req adminapi.PrefetchRequest) (*prefetchPlan, error) {
	m := a.m
	bad := func(code, format string, args ...any) error {
		return &errPrefetch{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
	}
	named, err := reference.ParseNormalizedNamed(req.Image)
	if err != nil {
		return nil, bad(adminapi.CodeInvalidRequest, "image %q: %v", req.Image, err)
	}
	named = reference.TagNameOnly(named)
	plan := &prefetchPlan{registry: reference.Domain(named), repo: reference.Path(named)}
	regs := m.registries()
	if !slices.ContainsFunc(regs, func(r adminapi.Registry) bool { return r.Host == plan.registry }) {
		hosts := make([]string, len(regs))
		for i, r := range regs {
			hosts[i] = r.Host
		}
		return nil, bad(adminapi.CodeUnknownRegistry, "the mirror has no upstream for registry %s (it mirrors %s); start it with --upstream %s=URL",
			plan.registry, strings.Join(hosts, ", "), plan.registry)
	}
	if req.Fleet && m.trackers == nil {
		return nil, bad(adminapi.CodeNoTracker, "fleet prefetch goes through the tracker's seeder, and this mirror has no --tracker")
	}
	var match platforms.MatchComparer
	if !req.AllPlatforms {
		p := req.Platform
		if p == "" {
			p = m.cfg.Platform
		}
		spec, err := platforms.Parse(p)
		if err != nil {
			return nil, bad(adminapi.CodeInvalidRequest, "platform %q: %v", p, err)
		}
		match = platforms.Only(spec)
	}
	rt := request{Route: route.Route{Kind: route.Manifest, Name: plan.repo}, registry: plan.registry}
	if c, ok := named.(reference.Canonical); ok {
		rt.Digest = c.Digest()
	} else {
		rt.Tag = named.(reference.Tagged).Tag()
	}
	if plan.top, err = a.manifest(ctx, rt); err != nil {
		return nil, err
	}
	doc, err := parseManifest(plan.top)
	if err != nil {
		return nil, err
	}
	if len(doc.Manifests) == 0 {
		plan.manifests = []planManifest{{digest: plan.top.Digest, platform: "(single image)"}}
		plan.addBlobs(doc)
		return plan, nil
	}
	children, err := pickPlatforms(doc.Manifests, match, req)
	if err != nil {
		return nil, err
	}
	for _, d := range children {
		rt.Tag, rt.Digest = "", d.Digest
		child, err := a.manifest(ctx, rt)
		if err != nil {
			return nil, err
		}
		cdoc, err := parseManifest(child)
		if err != nil {
			return nil, err
		}
		plan.manifests = append(plan.manifests, planManifest{digest: d.Digest, platform: platforms.Format(*d.Platform)})
		plan.addBlobs(cdoc)
	}
	return plan, nil
}

// pickPlatforms returns the index entries to prefetch: every image entry,
// or the best match for the platform.
func pickPlatforms(entries []ocispec.Descriptor, match platforms.MatchComparer, req adminapi.PrefetchRequest) ([]ocispec.Descriptor, error) {
	var out, all []ocispec.Descriptor
	var names []string
	for _, d := range entries {
		// Attestations and other artifacts have no real platform.
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		all = append(all, d)
		names = append(names, platforms.Format(*d.Platform))
		if match != nil && match.Match(*d.Platform) && (len(out) == 0 || match.Less(*d.Platform, *out[0].Platform)) {
			out = []ocispec.Descriptor{d}
		}
	}
	if match == nil {
		out = all
	}
	if len(out) == 0 {
		return nil, &errPrefetch{status: http.StatusNotFound, code: adminapi.CodeNoPlatform,
			msg: fmt.Sprintf("%s has no image for platform %s (it has %s)", req.Image, cmp.Or(req.Platform, "of the mirror host"), strings.Join(names, ", "))}
	}
	return out, nil
}

// manifest gets a manifest the way a client's request would, so the
// manifest cache, the tracker's tag coalescing and stale answers all apply.
func (a *admin) manifest(ctx context.Context, rt request) (oci.Manifest, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return oci.Manifest{}, err
	}
	var man oci.Manifest
	if rt.Digest != "" {
		man, err = a.m.manifestByDigest(r, rt)
	} else {
		man, err = a.m.manifestByTag(r, rt)
	}
	if err == nil {
		return man, nil
	}
	what := rt.registry + "/" + rt.Name + ":" + rt.Tag
	if rt.Digest != "" {
		what = rt.registry + "/" + rt.Name + "@" + rt.Digest.String()
	}
	var oci errcode.Error
	if errors.Is(err, upstream.ErrNotFound) || (errors.As(err, &oci) && (oci.Code == errcode.ErrorCodeManifestUnknown || oci.Code == errcode.ErrorCodeNameUnknown)) {
		return man, &errPrefetch{status: http.StatusNotFound, code: adminapi.CodeNotFound, msg: fmt.Sprintf("manifest %s not found upstream: %v", what, err)}
	}
	return man, &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, msg: fmt.Sprintf("manifest %s: %v", what, err)}
}

type manifestDoc struct {
	Manifests []ocispec.Descriptor `json:"manifests"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
}

func parseManifest(man oci.Manifest) (manifestDoc, error) {
	var doc manifestDoc
	if err := json.Unmarshal(man.Data, &doc); err != nil {
		return doc, &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, msg: fmt.Sprintf("manifest %s is not JSON: %v", man.Digest, err)}
	}
	if len(doc.Manifests) == 0 && doc.Config == nil {
		return doc, &errPrefetch{status: http.StatusBadRequest, code: adminapi.CodeInvalidRequest, msg: fmt.Sprintf("manifest %s (%s) is neither an image nor an index", man.Digest, man.MediaType)}
	}
	return doc, nil
}

// addBlobs adds an image's config and layers, each digest once.
func (p *prefetchPlan) addBlobs(doc manifestDoc) {
	add := func(d ocispec.Descriptor, kind string) {
		if d.Digest.Validate() != nil || slices.ContainsFunc(p.blobs, func(b planBlob) bool { return b.desc.Digest == d.Digest }) {
			return
		}
		p.blobs = append(p.blobs, planBlob{desc: d, kind: kind})
	}
	if doc.Config != nil {
		add(*doc.Config, "config")
	}
	for _, l := range doc.Layers {
		add(l, "layer")
	}
}

// eventWriter writes NDJSON events and flushes each, so bars move live.
type eventWriter struct {
	w   http.ResponseWriter
	enc *json.Encoder
}

func (e *eventWriter) send(ev adminapi.Event) {
	e.enc.Encode(ev)
	http.NewResponseController(e.w).Flush()
}

// blobTask is one blob's progress, shared between its fetch goroutine and
// the event loop.
type blobTask struct {
	ref  oci.Blob
	kind string
	size int64

	mu     sync.Mutex
	done   int64
	source string
	sent   int64 // done as of the last progress event
}

const progressInterval = 250 * time.Millisecond

// fetchAll fetches every blob of the plan at once (the mirror's fetch
// slots bound the real concurrency) and reports progress until all ended.
func (a *admin) fetchAll(ctx context.Context, plan *prefetchPlan, fleet bool, out *eventWriter) {
	tasks := make([]*blobTask, len(plan.blobs))
	type result struct {
		t   *blobTask
		err error
	}
	results := make(chan result, len(tasks))
	for i, b := range plan.blobs {
		t := &blobTask{ref: oci.Blob{Registry: plan.registry, Repo: plan.repo, Digest: b.desc.Digest}, kind: b.kind, size: b.desc.Size}
		tasks[i] = t
		out.send(adminapi.Event{Type: adminapi.EventBlob, Digest: t.ref.Digest.String(), Kind: t.kind, Size: t.size, State: adminapi.StatePending})
		go func() {
			var err error
			if fleet {
				err = a.preheat(ctx, t)
			} else {
				err = a.fetchBlob(ctx, t)
			}
			results <- result{t, err}
		}()
	}
	summary := adminapi.Event{Type: adminapi.EventSummary, Blobs: len(tasks)}
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for left := len(tasks); left > 0; {
		select {
		case res := <-results:
			left--
			ev := res.t.event()
			if res.err != nil {
				ev.State, ev.Error = adminapi.StateFailed, res.err.Error()
				summary.Failed = append(summary.Failed, res.t.ref.Digest.String())
				a.m.log.Warn("prefetch blob failed", "digest", res.t.ref.Digest, "err", res.err)
			} else {
				ev.State, ev.Done = adminapi.StateDone, res.t.size
				summary.Bytes += res.t.size
			}
			out.send(ev)
		case <-tick.C:
			peers := a.peersByDigest()
			for _, t := range tasks {
				if ev, changed := t.progress(); changed {
					ev.Peers = peers[t.ref.Digest]
					out.send(ev)
				}
			}
		case <-ctx.Done():
			// The client left; the fetches go on and land in the store.
			return
		}
	}
	out.send(summary)
}

func (a *admin) peersByDigest() map[digest.Digest]int {
	if a.m.swarm == nil {
		return nil
	}
	peers := map[digest.Digest]int{}
	for _, t := range a.m.swarm.Stats().Torrents {
		if !t.Complete {
			peers[t.Digest] = t.Peers
		}
	}
	return peers
}

func (t *blobTask) event() adminapi.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return adminapi.Event{Type: adminapi.EventBlob, Digest: t.ref.Digest.String(), Kind: t.kind, Size: t.size, Done: t.done, Source: t.source}
}

// progress returns a running event when bytes arrived since the last one.
func (t *blobTask) progress() (adminapi.Event, bool) {
	t.mu.Lock()
	changed := t.done != t.sent
	t.sent = t.done
	t.mu.Unlock()
	ev := t.event()
	ev.State = adminapi.StateRunning
	return ev, changed
}

func (t *blobTask) set(done int64, source string) {
	t.mu.Lock()
	t.done = done
	if source != "" {
		t.source = source
	}
	t.mu.Unlock()
}

func (t *blobTask) Write(b []byte) (int, error) {
	t.mu.Lock()
	t.done += int64(len(b))
	t.mu.Unlock()
	return len(b), nil
}

// fetchBlob pulls one blob into the store through the same flight a
// client's request would start or join: the swarm when there is a
// tracker, else the origin. It follows the verified prefix for progress
// and returns once the blob is committed (its digest checked).
func (a *admin) fetchBlob(ctx context.Context, t *blobTask) error {
	m := a.m
	if size, err := m.store.Stat(t.ref.Digest); err == nil {
		// Asked for ahead of a rollout: the most recently used, not the
		// first to go.
		m.cache.Use(t.ref.Digest)()
		t.set(size, adminapi.SourceCache)
		return nil
	}
	fl, _, err := m.flight(t.ref)
	if err != nil {
		return err
	}
	if fl == nil {
		t.set(t.size, adminapi.SourceCache)
		return nil
	}
	defer fl.Release()
	t.set(0, a.sourceWhileFetching())
	size, err := fl.Size(ctx)
	if err != nil {
		return err
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(t, fl.NewReader(ctx, 0, size), *buf); err != nil {
		return err
	}
	if err := fl.Wait(ctx); err != nil {
		return err
	}
	t.set(size, a.sourceAfterFetch(t.ref.Digest))
	return nil
}

func (a *admin) sourceWhileFetching() string {
	if a.m.swarm != nil {
		return adminapi.SourceSwarm
	}
	return adminapi.SourceOrigin
}

// sourceAfterFetch tells swarm from origin: only a blob the swarm
// delivered is seeded under its torrent at commit.
func (a *admin) sourceAfterFetch(d digest.Digest) string {
	if a.m.swarm == nil {
		return adminapi.SourceOrigin
	}
	for _, t := range a.m.swarm.Stats().Torrents {
		if t.Digest == d {
			return adminapi.SourceSwarm
		}
	}
	return adminapi.SourceOrigin
}

// preheat has the tracker's seeder fetch a blob from the origin: asking
// for the blob's torrent does that, answering 202 until the seeder holds
// it.
func (a *admin) preheat(ctx context.Context, t *blobTask) error {
	ctx, cancel := context.WithTimeout(ctx, a.m.cfg.MetainfoTimeout)
	defer cancel()
	t.set(0, adminapi.SourceSeeder)
	if _, err := a.m.trackers.Metainfo(ctx, t.ref); err != nil {
		return fmt.Errorf("tracker's seeder: %w", err)
	}
	t.set(t.size, "")
	return nil
}
