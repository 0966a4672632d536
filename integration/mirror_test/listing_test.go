package mirror_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

// queryLog records the queries of the requests whose path ends in suffix.
type queryLog struct {
	suffix string
	mu     sync.Mutex
	seen   []string
}

func (l *queryLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.record(r)
		next.ServeHTTP(w, r)
	})
}

func (l *queryLog) record(r *http.Request) {
	if strings.HasSuffix(r.URL.Path, l.suffix) {
		l.mu.Lock()
		l.seen = append(l.seen, r.URL.RawQuery)
		l.mu.Unlock()
	}
}

func (l *queryLog) queries() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// linkTarget is where a Link header's rel="next" points.
func linkTarget(t *testing.T, link string) *url.URL {
	t.Helper()
	m := nextLink.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("Link %q is not one rel=\"next\" link", link)
	}
	u, err := url.Parse(m[1])
	if err != nil || u.Host != "" {
		t.Fatalf("Link %q: %v, want a path on the mirror", link, err)
	}
	return u
}

// TestTagListThroughTheMirror lists a repository's tags through the mirror
// as skopeo list-tags and crane ls do: whole, and page by page following
// the Link header, which must lead back to the mirror and the same
// upstream. The origin sees the mirror's requests with the client's n and
// last, and never the mirror's ns.
func TestTagListThroughTheMirror(t *testing.T) {
	t.Parallel()
	tagsAsked := &queryLog{suffix: "/tags/list"}
	o := harness.NewOriginWith(t, origin.Config{}, tagsAsked.wrap)
	tags := []string{"1.0", "1.1", "2.0", "latest", "nightly"}
	for _, tag := range tags {
		if _, err := testimage.PushImage(t.Context(), o.Host()+"/team/app:"+tag, 1, 1<<10); err != nil {
			t.Fatal(err)
		}
	}
	m := startMirror(t, t.TempDir(), upstreamFlag(o))
	ns := "ns=" + o.Host()

	type tagList struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	list := func(path string) (tagList, string) {
		t.Helper()
		resp, body := send(t, http.MethodGet, m.URL()+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		var l tagList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
		return l, resp.Header.Get("Link")
	}

	whole, link := list("/v2/team/app/tags/list?" + ns)
	if whole.Name != "team/app" || !slices.Equal(whole.Tags, tags) || link != "" {
		t.Errorf("whole list: %+v, Link %q; want team/app %v and no Link", whole, link, tags)
	}

	var paged []string
	path, pages := "/v2/team/app/tags/list?n=2&"+ns, 0
	for path != "" {
		if pages++; pages > len(tags) {
			t.Fatalf("still paging after %d pages", pages)
		}
		page, link := list(path)
		if len(page.Tags) > 2 {
			t.Errorf("page %d: %v, more than n=2", pages, page.Tags)
		}
		paged = append(paged, page.Tags...)
		path = ""
		if link != "" {
			next := linkTarget(t, link)
			if next.Path != "/v2/team/app/tags/list" || next.Query().Get("ns") != o.Host() {
				t.Fatalf("page %d: Link %q, want the next page on the mirror with %s", pages, link, ns)
			}
			path = next.String()
		}
	}
	if !slices.Equal(paged, tags) || pages != 3 {
		t.Errorf("paged: %v in %d pages, want %v in 3", paged, pages, tags)
	}
	asked := tagsAsked.queries()
	if len(asked) != 4 {
		t.Errorf("origin saw %d tag-list requests (%q), want 4: every client request went through", len(asked), asked)
	}
	for _, q := range asked {
		if strings.Contains(q, "ns=") {
			t.Errorf("origin was asked %q: the mirror's ns leaked upstream", q)
		}
	}
	if len(asked) == 4 && (asked[1] != "n=2" || !strings.Contains(asked[2], "last=1.1")) {
		t.Errorf("origin queries %q: want the client's n, then the last tag of the page before", asked)
	}

	resp, body := send(t, http.MethodHead, m.URL()+"/v2/team/app/tags/list?"+ns)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD tag list: %s with %d body bytes, want 200 and none", resp.Status, len(body))
	}
	resp, body = send(t, http.MethodGet, m.URL()+"/v2/team/nobody/tags/list?"+ns)
	wantError(t, "tags of an unknown repository", resp, body, http.StatusNotFound, "NAME_UNKNOWN")
	resp, body = send(t, http.MethodGet, m.URL()+"/v2/team/app/tags/list?ns=elsewhere.test")
	wantError(t, "tags of a registry not configured", resp, body, http.StatusForbidden, "DENIED")
	if n := m.Metric(requestsMetric, "kind", "tags", "code", "200"); n != 5 {
		t.Errorf("%s{kind=tags,code=200} = %v, want 5: the whole list, three pages and a HEAD", requestsMetric, n)
	}
}

// TestReferrersFallBackToTheTagScheme: an upstream without the referrers
// API (distribution v3) answers 404, so the mirror does too, never a 405,
// and with UNSUPPORTED, not NAME_UNKNOWN (oras-go reads that as no such
// repository and does not fall back),
// and the client's fallback, the sha256-<hex> tag holding an index of the
// referrers, is served through the mirror.
func TestReferrersFallBackToTheTagScheme(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/team/app:1", 1, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	subject := pushed.Top.Digest
	// The referrer: any manifest the repository holds will do for the
	// registry, which checks that an index names only those.
	sbom, err := testimage.PushImage(t.Context(), o.Host()+"/team/app:sbom", 1, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	referrer := sbom.Top
	referrer.ArtifactType = sbomType
	fallback, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{referrer},
	})
	if err != nil {
		t.Fatal(err)
	}
	fallbackTag := subject.Algorithm().String() + "-" + subject.Encoded()
	fd, err := harness.PushManifest(t.Context(), o.Server.URL, "team/app", fallbackTag, ocispec.MediaTypeImageIndex, fallback)
	if err != nil {
		t.Fatal(err)
	}
	m := startMirror(t, t.TempDir(), upstreamFlag(o))
	ns := "?ns=" + o.Host()

	resp, body := send(t, http.MethodGet, m.URL()+"/v2/team/app/referrers/"+subject.String()+ns)
	wantError(t, "referrers from a registry without the API", resp, body, http.StatusNotFound, "UNSUPPORTED")
	resp, body = send(t, http.MethodGet, m.URL()+"/v2/team/app/manifests/"+fallbackTag+ns, "Accept", ocispec.MediaTypeImageIndex)
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != fd {
		t.Errorf("fallback tag %s: %s, digest %s; want 200 and %s", fallbackTag, resp.Status, digest.FromBytes(body), fd)
	}
}

// referrersRegistry stands in for a registry with the referrers API (OCI
// 1.1) that does not apply the artifactType filter and pages its answer:
// two referrers on the first page, one on the second.
type referrersRegistry struct {
	subject digest.Digest
	asked   queryLog
}

const (
	sbomType = "application/vnd.example.sbom"
	sigType  = "application/vnd.dev.cosign.artifact.sig.v1+json"
)

func (s *referrersRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ref := func(at, what string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: at, Digest: digest.FromString(what), Size: int64(len(what))}
	}
	path := "/v2/team/app/referrers/" + s.subject.String()
	switch r.URL.Path {
	case "/v2/":
		w.Write([]byte("{}"))
		return
	case "/v2/team/app/referrers/" + digest.FromString("a web page").String():
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<script>alert(1)</script>"))
		return
	case path:
	default:
		http.NotFound(w, r)
		return
	}
	s.asked.record(r)
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if r.URL.Query().Get("page") == "2" {
		idx.Manifests = []ocispec.Descriptor{ref(sbomType, "sbom 2")}
	} else {
		idx.Manifests = []ocispec.Descriptor{ref(sbomType, "sbom 1"), ref(sigType, "signature")}
		w.Header().Set("Link", fmt.Sprintf(`<%s?page=2>; rel="next"`, path))
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	json.NewEncoder(w).Encode(idx)
}

// TestReferrersThroughTheMirror lists referrers through the mirror as oras
// discover and cosign do, from a registry with the referrers API: filtered
// by artifactType (by the mirror, since this registry does not), paged
// with a Link back to the mirror that keeps the filter, and what is not an
// image index is refused rather than passed on.
func TestReferrersThroughTheMirror(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("the subject manifest")
	reg := &referrersRegistry{subject: subject, asked: queryLog{suffix: subject.String()}}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	m := startMirror(t, t.TempDir(), "--upstream="+host+"="+srv.URL)
	ns := "ns=" + host

	get := func(path string) (ocispec.Index, *http.Response) {
		t.Helper()
		resp, body := send(t, http.MethodGet, m.URL()+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return idx, resp
	}
	types := func(idx ocispec.Index) []string {
		var out []string
		for _, d := range idx.Manifests {
			out = append(out, d.ArtifactType)
		}
		return out
	}

	all, resp := get("/v2/team/app/referrers/" + subject.String() + "?" + ns)
	if got := types(all); !slices.Equal(got, []string{sbomType, sigType}) {
		t.Errorf("unfiltered first page: %v", got)
	}
	if f := resp.Header.Get("OCI-Filters-Applied"); f != "" {
		t.Errorf("unfiltered answer says OCI-Filters-Applied %q", f)
	}

	first, resp := get("/v2/team/app/referrers/" + subject.String() + "?artifactType=" + sbomType + "&" + ns)
	if got := types(first); !slices.Equal(got, []string{sbomType}) {
		t.Errorf("filtered first page: %v, want only %s", got, sbomType)
	}
	if f := resp.Header.Get("OCI-Filters-Applied"); f != "artifactType" {
		t.Errorf("OCI-Filters-Applied %q, want artifactType", f)
	}
	next := linkTarget(t, resp.Header.Get("Link"))
	if q := next.Query(); next.Path != "/v2/team/app/referrers/"+subject.String() ||
		q.Get("page") != "2" || q.Get("ns") != host || q.Get("artifactType") != sbomType {
		t.Fatalf("Link %q: want the next page on the mirror with the registry's page, the filter and %s", resp.Header.Get("Link"), ns)
	}
	second, _ := get(next.String())
	if got := types(second); !slices.Equal(got, []string{sbomType}) {
		t.Errorf("second page: %v, want %s only", got, sbomType)
	}
	if asked := reg.asked.queries(); len(asked) != 3 || slices.ContainsFunc(asked, func(q string) bool { return strings.Contains(q, "ns=") }) {
		t.Errorf("registry asked %q: want 3 requests without the mirror's ns", asked)
	}

	resp, body := send(t, http.MethodGet, m.URL()+"/v2/team/app/referrers/"+digest.FromString("a web page").String()+"?"+ns)
	if resp.StatusCode < 500 || strings.Contains(string(body), "<script>") {
		t.Errorf("a web page as referrers: %s %s, want a 5xx and not the page", resp.Status, body)
	}
	resp, body = send(t, http.MethodGet, m.URL()+"/v2/team/app/referrers/"+digest.FromString("unknown").String()+"?"+ns)
	wantError(t, "referrers the registry does not know", resp, body, http.StatusNotFound, "UNSUPPORTED")
}
