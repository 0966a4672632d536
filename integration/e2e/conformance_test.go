//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

const (
	conformanceModule = "github.com/opencontainers/distribution-spec/conformance"
	// The suite has no tagged releases and its checks change from commit
	// to commit, so a run is only repeatable with a pinned pseudo-version.
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"

	conformanceRepo = "conformance/repo1"
)

// TestConformancePull runs the OCI distribution-spec conformance suite's
// pull tests against a `blobswarm mirror` process whose default upstream is
// an origin preloaded with a variety of OCI content. The suite sends no
// ?ns=, as Docker would not. It runs twice: cold, where every answer comes
// through the mirror from the origin, and warm, where blobs come from the
// mirror's store.
func TestConformancePull(t *testing.T) {
	bin := conformanceBinary(t)
	o := harness.NewOrigin(t, origin.Config{})
	data := preload(t, o.Server.URL, conformanceRepo)
	o.Reset()
	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--upstream", "docker.io="+o.Server.URL)

	t.Run("cold", func(t *testing.T) {
		runConformance(t, bin, m.Host(), data)
		checkContent(t, m.URL(), data)
		for _, d := range data.blobs {
			if n := o.BlobGETs(d); n != 1 {
				t.Errorf("origin served blob %s %d times, want once", d, n)
			}
		}
	})
	o.Reset()
	t.Run("warm", func(t *testing.T) {
		runConformance(t, bin, m.Host(), data)
		checkContent(t, m.URL(), data)
		if n := o.TotalBlobGETs(); n != 0 {
			t.Errorf("origin served %d blobs although the mirror had them all", n)
		}
	})
}

// conformanceBinary builds the pinned suite in a scratch module, outside
// this module's go.mod, and caches the binary per version.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if cache, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(cache, "blobswarm", "conformance", conformanceVersion)
	}
	bin := filepath.Join(dir, "conformance")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	scratch := t.TempDir()
	goMod := "module conformancebuild\n\ngo 1.24\n"
	if err := os.WriteFile(filepath.Join(scratch, "go.mod"), []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Build next to the final name so the rename is atomic: a concurrent
	// run never finds half a binary.
	tmp := bin + fmt.Sprintf(".%d.tmp", os.Getpid())
	defer os.Remove(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", conformanceModule + "@" + conformanceVersion},
		{"build", "-o", tmp, conformanceModule},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = scratch
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			harness.Missing(t, "cannot build the OCI conformance suite %s@%s (it needs the Go module proxy or a module cache holding it): go %s: %v\n%s",
				conformanceModule, conformanceVersion, strings.Join(args, " "), err, out)
		}
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// roData is what the origin holds: what the suite is told about, plus
// what it cannot know (what each tag names, every byte).
type roData struct {
	tags      []string
	manifests []digest.Digest
	blobs     []digest.Digest

	tagged    map[string]digest.Digest
	mediaType map[digest.Digest]string
	content   map[digest.Digest][]byte
}

// checkContent fetches through the mirror what the suite's read-only tests
// cannot check, not knowing the content: that each tag names the pushed
// manifest and that manifests and blobs come back byte for byte, with
// their digest, type and length in the headers.
func checkContent(t *testing.T, mirror string, data roData) {
	t.Helper()
	for _, tag := range data.tags {
		checkGET(t, mirror+"/v2/"+conformanceRepo+"/manifests/"+tag, data, data.tagged[tag])
	}
	for _, d := range data.manifests {
		checkGET(t, mirror+"/v2/"+conformanceRepo+"/manifests/"+d.String(), data, d)
	}
	for _, d := range data.blobs {
		checkGET(t, mirror+"/v2/"+conformanceRepo+"/blobs/"+d.String(), data, d)
	}
}

func checkGET(t *testing.T, url string, data roData, want digest.Digest) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Accept", ocispec.MediaTypeImageIndex)
	req.Header.Add("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
		return
	}
	if !bytes.Equal(body, data.content[want]) {
		t.Errorf("GET %s: body of %d bytes is not the %d pushed as %s", url, len(body), len(data.content[want]), want)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
		t.Errorf("GET %s: Docker-Content-Digest %q, want %s", url, got, want)
	}
	if got, ok := data.mediaType[want]; ok && resp.Header.Get("Content-Type") != got {
		t.Errorf("GET %s: Content-Type %q, want %q", url, resp.Header.Get("Content-Type"), got)
	}
	if resp.ContentLength != int64(len(data.content[want])) {
		t.Errorf("GET %s: Content-Length %d, want %d", url, resp.ContentLength, len(data.content[want]))
	}
}

// runConformance runs the suite's read-only pull tests against registry
// and fails t for every test the suite failed.
func runConformance(t *testing.T, bin, registry string, data roData) {
	t.Helper()
	env := []string{
		"OCI_REGISTRY=" + registry,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_REPO1=" + conformanceRepo,
		"OCI_REPO2=" + conformanceRepo,
		"OCI_RESULTS_DIR=" + t.TempDir(),
		"OCI_LOG=warn",
		// The mirror promises Docker-Content-Digest; hold it to that. For
		// manifests this version checks the header only on content it
		// pushed itself, so checkContent does it.
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		// A mirror is read-only: nothing is pushed, mounted or deleted.
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		// Tag listing and referrers are the spec's content-discovery
		// workflow, not pull; the mirror answers them UNSUPPORTED.
		"OCI_API_TAGS_LIST=false",
		"OCI_API_REFERRER=false",
		"OCI_RO_DATA_TAGS=" + strings.Join(data.tags, " "),
		"OCI_RO_DATA_MANIFESTS=" + joinDigests(data.manifests),
		"OCI_RO_DATA_BLOBS=" + joinDigests(data.blobs),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	// The suite reads ./oci-conformance.yaml if present; start it where
	// there is none, and without OCI_* settings from our environment.
	cmd.Dir = t.TempDir()
	cmd.Env = append(withoutOCIEnv(os.Environ()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// With push disabled this version cannot write its reports: encoding
	// results.yaml fails on the APIs it never exercised (or panics on a
	// nil entry) before junit.xml is written, and the exit status then
	// says nothing about the tests. What is left is the result tree it
	// prints first.
	runErr := cmd.Run()
	tests, overall := parseConformance(stdout.String())
	if overall == "" {
		t.Fatalf("conformance suite printed no result (%v):\n%s\n%s", runErr, stdout.String(), stderr.String())
	}
	counts := map[string]int{}
	for _, c := range tests {
		counts[c.status]++
		switch c.status {
		case "Pass", "Skip":
			t.Logf("%-4s %s", c.status, c.name)
		case "Disabled":
		default:
			t.Errorf("conformance test %s: %s\n%s", c.status, c.name, strings.Join(c.errs, "\n"))
		}
	}
	t.Logf("conformance %s: %s; %d passed, %d skipped, %d disabled, %d failed, %d errors",
		conformanceVersion, overall, counts["Pass"], counts["Skip"], counts["Disabled"], counts["FAIL"], counts["Error"])
	if overall != "Pass" {
		t.Errorf("conformance result %s:\n%s", overall, stderr.String())
	}
	// HEAD and GET of every tag, manifest and blob, plus the ping, the
	// missing manifests and the malformed digest: a run that checked less
	// did not test what it claims to.
	want := 2*(len(data.tags)+len(data.manifests)+len(data.blobs)) + 4
	if counts["Pass"] != want {
		t.Errorf("%d conformance tests passed, want %d", counts["Pass"], want)
	}
}

// conformanceTest is one leaf of the suite's result tree.
type conformanceTest struct {
	name, status string
	errs         []string
}

var (
	resultLine  = regexp.MustCompile(`^( *)(OCI Conformance Test.*): (Pass|Skip|Disabled|FAIL|Error|Unknown)$`)
	overallLine = regexp.MustCompile(`^OCI Conformance Result: (\S+)$`)
)

// parseConformance reads the result tree the suite prints: a line
// "name: status" per test, children indented two spaces deeper, and the
// failure messages of a leaf under it. It returns the leaves and the
// overall result.
func parseConformance(out string) ([]conformanceTest, string) {
	var (
		tests   []conformanceTest
		depths  []int
		overall string
	)
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if m := overallLine.FindStringSubmatch(line); m != nil {
			overall = m[1]
			break
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			tests = append(tests, conformanceTest{name: m[2], status: m[3]})
			depths = append(depths, len(m[1]))
			continue
		}
		if n := len(tests); n > 0 && strings.TrimSpace(line) != "" {
			tests[n-1].errs = append(tests[n-1].errs, strings.TrimSpace(line))
		}
	}
	var leaves []conformanceTest
	for i, c := range tests {
		if i+1 == len(tests) || depths[i+1] <= depths[i] {
			leaves = append(leaves, c)
		}
	}
	return leaves, overall
}

func withoutOCIEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OCI_") {
			out = append(out, kv)
		}
	}
	return out
}

func joinDigests(ds []digest.Digest) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, " ")
}

// preload pushes to the origin the kinds of content the suite itself
// generates when it may push: images, indexes (nested, empty), artifacts
// with a subject, a near-limit manifest, unknown fields and non-canonical
// JSON (the mirror must return the exact bytes), the data field, an image
// without layers, a zero-byte blob and a sha512 blob.
func preload(t *testing.T, base, repo string) roData {
	t.Helper()
	p := &pusher{t: t, base: base, repo: repo, data: roData{
		tagged:    map[string]digest.Digest{},
		mediaType: map[digest.Digest]string{},
		content:   map[digest.Digest][]byte{},
	}}

	layer := p.blob(randomBytes(t, 32<<10), ocispec.MediaTypeImageLayerGzip, digest.SHA256)
	small := p.blob(randomBytes(t, 1<<10), ocispec.MediaTypeImageLayer, digest.SHA256)
	img := p.image("image", "amd64", nil, layer, small)

	large := map[string]string{}
	for i := range 390 {
		large[fmt.Sprintf("large-annotation-%d", i)] = strings.Repeat("A", 10000)
	}
	p.image("large-manifest", "amd64", large, layer)
	p.image("no-layers", "amd64", nil)
	p.image("empty-layer", "amd64", nil, p.blob(nil, ocispec.MediaTypeImageLayer, digest.SHA256))
	p.image("sha512-layer", "amd64", nil, p.blob(randomBytes(t, 2<<10), ocispec.MediaTypeImageLayer, digest.SHA512))

	withData := p.blob(randomBytes(t, 64), ocispec.MediaTypeImageLayer, digest.SHA256)
	withData.Data = p.data.content[withData.Digest]
	p.image("data-field", "amd64", nil, withData)

	// Unknown fields, indented JSON: only a byte-exact copy keeps the digest.
	custom := map[string]any{
		"schemaVersion":             2,
		"mediaType":                 ocispec.MediaTypeImageManifest,
		"config":                    p.config("arm64", layer),
		"layers":                    []ocispec.Descriptor{layer},
		"org.example.unknown-field": map[string]any{"nested": []int{1, 2, 3}},
	}
	raw, err := json.MarshalIndent(custom, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	p.manifest(raw, ocispec.MediaTypeImageManifest, "custom-fields")

	amd := p.image("", "amd64", nil, p.blob(randomBytes(t, 4<<10), ocispec.MediaTypeImageLayerGzip, digest.SHA256))
	arm := p.image("", "arm64", nil, p.blob(randomBytes(t, 4<<10), ocispec.MediaTypeImageLayerGzip, digest.SHA256))
	amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	idx := p.index("index", amd, arm)
	p.index("index-of-index", idx)
	p.index("empty-index")

	artifact := ocispec.Manifest{
		Versioned:    ocispecs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.conformance.v1+json",
		Config:       p.blob([]byte("{}"), ocispec.MediaTypeEmptyJSON, digest.SHA256),
		Layers:       []ocispec.Descriptor{p.blob(randomBytes(t, 512), "application/vnd.example.conformance.v1+json", digest.SHA256)},
		Subject:      &img,
		Annotations:  map[string]string{"org.opencontainers.conformance": "hello conformance test"},
	}
	p.manifest(marshal(t, artifact), ocispec.MediaTypeImageManifest, "artifact")
	return p.data
}

// pusher uploads content to one repository of a registry and records it.
type pusher struct {
	t          *testing.T
	base, repo string
	data       roData
}

func (p *pusher) blob(b []byte, mediaType string, alg digest.Algorithm) ocispec.Descriptor {
	p.t.Helper()
	d, n, err := harness.PushBlob(context.Background(), p.base, p.repo, bytes.NewReader(b), alg)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, seen := p.data.content[d]; !seen {
		p.data.blobs = append(p.data.blobs, d)
	}
	p.data.content[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: n}
}

// config pushes an image config for linux/arch whose rootfs lists layers.
func (p *pusher) config(arch string, layers ...ocispec.Descriptor) ocispec.Descriptor {
	p.t.Helper()
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	return p.blob(marshal(p.t, cfg), ocispec.MediaTypeImageConfig, digest.SHA256)
}

// image pushes an image manifest, tagged unless tag is empty.
func (p *pusher) image(tag, arch string, annotations map[string]string, layers ...ocispec.Descriptor) ocispec.Descriptor {
	p.t.Helper()
	m := ocispec.Manifest{
		Versioned:   ocispecs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      p.config(arch, layers...),
		Layers:      append([]ocispec.Descriptor{}, layers...),
		Annotations: annotations,
	}
	return p.manifest(marshal(p.t, m), m.MediaType, tag)
}

func (p *pusher) index(tag string, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	p.t.Helper()
	idx := ocispec.Index{
		Versioned: ocispecs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: append([]ocispec.Descriptor{}, manifests...),
	}
	return p.manifest(marshal(p.t, idx), idx.MediaType, tag)
}

// manifest pushes raw by digest and, unless tag is empty, by tag.
func (p *pusher) manifest(raw []byte, mediaType, tag string) ocispec.Descriptor {
	p.t.Helper()
	d := digest.FromBytes(raw)
	for _, ref := range []string{d.String(), tag} {
		if ref == "" {
			continue
		}
		got, err := harness.PushManifest(context.Background(), p.base, p.repo, ref, mediaType, raw)
		if err != nil {
			p.t.Fatal(err)
		}
		if got != d {
			p.t.Fatalf("origin stored manifest %s as %s", d, got)
		}
	}
	p.data.manifests = append(p.data.manifests, d)
	p.data.content[d] = raw
	p.data.mediaType[d] = mediaType
	if tag != "" {
		p.data.tags = append(p.data.tags, tag)
		p.data.tagged[tag] = d
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(raw))}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
