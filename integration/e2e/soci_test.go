//go:build e2e

package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
)

// TestSOCILazyPullThroughMirror pulls an image lazily with the SOCI
// snapshotter (v2 index: `soci convert`), whose [resolver] config names the
// blobswarm mirror as the mirror of the origin, into the test's own
// containerd 2. The pull ends before the layer is downloaded; reading a
// file of the mounted snapshot makes the snapshotter ask the mirror for
// ranges of the layer, which the mirror answers from the swarm (the
// tracker seeded the layer from the origin). The files read back as
// written, the origin served the layer once and never to the snapshotter.
// The snapshotter's [resolver] mirrors carry its layer reads only: it
// fetches the SOCI index and zTOC from the image's registry itself.
func TestSOCILazyPullThroughMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		harness.Missing(t, "SOCI end-to-end test needs root (the snapshotter mounts FUSE file systems)")
	}
	tools := map[string]string{}
	for prog, hint := range map[string]string{
		"containerd2":           "containerd 2.x: go build github.com/containerd/containerd/v2/cmd/containerd@v2.2.9 as containerd2 (.ci/run does)",
		"soci":                  "the SOCI CLI v0.16.1 (.ci/run builds it)",
		"soci-snapshotter-grpc": "the SOCI snapshotter v0.16.1 (.ci/run builds it)",
		"oras":                  "go install oras.land/oras/cmd/oras@v1.3.6 (.ci/run does)",
		"fusermount3":           "install the Debian package fuse3",
	} {
		p, err := exec.LookPath(prog)
		if err != nil {
			harness.Missing(t, "%s not found: %s", prog, hint)
		}
		tools[prog] = p
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		harness.Missing(t, "no /dev/fuse: the SOCI snapshotter mounts layers with FUSE")
	}

	agents := &blobAgents{byDigest: map[digest.Digest][]string{}}
	o := harness.NewOriginWith(t, origin.Config{}, agents.wrap)

	// The image: one gzip layer of two 6 MiB random files and a small
	// text file, converted to a SOCI v2 image and pushed to the origin.
	img := buildSOCIImage(t, tools["soci"])
	ref := o.Host() + "/e2e/soci:v1"
	oras := exec.CommandContext(t.Context(), tools["oras"], "cp", "--from-oci-layout", img.layout+"@"+img.index.String(), "--to-plain-http", ref)
	oras.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := oras.CombinedOutput(); err != nil {
		t.Fatalf("oras cp to the origin: %v\n%s", err, out)
	}
	o.Reset()
	agents.reset()

	// A tracker and one mirror of a fleet with a secret: with it the
	// mirror answers ranges of a blob before it has checked all of it.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("fleet-soci-5e2b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	upstream := o.Host() + "=" + o.Server.URL
	tr := harness.Start(t, "tracker", "--data", t.TempDir(), "--peer-listen", "127.0.0.1:0", "--upstream", upstream, "--secret-file", secret)
	// The snapshotter sends no ns query parameter naming the registry it
	// mirrors, so the mirror's default upstream is the origin.
	m := harness.Start(t, "mirror", "--data", t.TempDir(), "--tracker", tr.URL(), "--peer-listen", "127.0.0.1:0",
		"--upstream", upstream, "--default-upstream", o.Host(), "--tracker-secret-file", secret)

	// Unix socket paths are limited to 108 bytes; t.TempDir's can be long.
	dir, err := os.MkdirTemp("", "soci-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the SOCI test's files: %v", err)
		}
	})
	sociRoot := filepath.Join(dir, "soci-root")
	sociSock := filepath.Join(dir, "soci.sock")
	sociConfig := fmt.Sprintf(`[background_fetch]
  disable = true
[pull_modes.soci_v2]
  enable = true
[resolver.host.%[1]q]
  [[resolver.host.%[1]q.mirrors]]
    host = %[2]q
    insecure = true
`, o.Host(), m.URL())
	startDaemon(t, dir, "soci-snapshotter-grpc", sociConfig, func(config string) []string {
		return []string{"--address", sociSock, "--root", sociRoot, "--config", config, "--log-level", "debug"}
	}, socketExists(sociSock), func() { unmountFUSEUnder(t, sociRoot) })

	ctdSock := filepath.Join(dir, "containerd.sock")
	ctdConfig := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[proxy_plugins.soci]
  type = "snapshot"
  address = %q
  [proxy_plugins.soci.exports]
    root = %q
    enable_remote_snapshot_annotations = "true"
`, filepath.Join(dir, "ctd-root"), filepath.Join(dir, "ctd-state"), ctdSock, ctdSock+".ttrpc", sociSock, sociRoot)
	startDaemon(t, dir, "containerd2", ctdConfig, func(config string) []string {
		return []string{"--config", config}
	}, socketExists(ctdSock), nil)

	// The pull, as nerdctl pull --snapshotter soci does it. Manifests and
	// the config come from the origin; the layer is the snapshotter's.
	client, err := containerd.New(ctdSock, containerd.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(t.Context(), "e2e"), 2*time.Minute)
	defer cancel()
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	})
	if _, err := client.Pull(ctx, ref,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter("soci"),
		containerd.WithImageHandlerWrapper(sociLabels(snapshotters.AppendInfoHandlerWrapper(ref))),
	); err != nil {
		t.Fatalf("pull %s with the soci snapshotter: %v", ref, err)
	}
	t.Logf("origin GETs of the layer %s (%d bytes) during the pull: %q", img.layer, img.layerSize, agents.get(img.layer))

	mnt := fuseMountUnder(t, sociRoot)
	if mnt == "" {
		t.Fatalf("no FUSE mount under %s after the pull: the snapshotter did not prepare the layer remotely", sociRoot)
	}
	// Lazy: the pull itself read no more than the layer's head.
	afterPull := m.Metric("blobswarm_mirror_served_bytes_total")
	if afterPull >= float64(img.layerSize) {
		t.Errorf("mirror served %v bytes during the pull, want less than the layer (%d bytes): the pull was not lazy", afterPull, img.layerSize)
	}
	ranges := m.Metric("blobswarm_mirror_requests_total", "kind", "blob", "method", "GET", "code", "206")

	got, err := os.ReadFile(filepath.Join(mnt, "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img.files["hello.txt"]) {
		t.Errorf("hello.txt in the mounted snapshot is %q, want %q", got, img.files["hello.txt"])
	}
	const off, n = 5 << 20, 4096
	f, err := os.Open(filepath.Join(mnt, "data", "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, n)
	_, err = f.ReadAt(chunk, off)
	f.Close()
	if err != nil {
		t.Fatalf("read data/a.bin at %d: %v", off, err)
	}
	if !bytes.Equal(chunk, img.files["data/a.bin"][off:off+n]) {
		t.Errorf("data/a.bin at %d in the mounted snapshot differs from what the image holds", off)
	}

	// The reads were answered by the mirror with ranges of the layer.
	t.Logf("mirror: %v bytes served during the pull, %v after the reads; ranged blob GETs %v before the reads, %v after",
		afterPull, m.Metric("blobswarm_mirror_served_bytes_total"), ranges,
		m.Metric("blobswarm_mirror_requests_total", "kind", "blob", "method", "GET", "code", "206"))
	if after := m.Metric("blobswarm_mirror_requests_total", "kind", "blob", "method", "GET", "code", "206"); after <= ranges {
		t.Errorf("mirror answered %v ranged blob GETs before the reads and %v after: the snapshotter did not read the layer through the mirror", ranges, after)
	}
	// The layer left the origin once, for the fleet (the tracker's seeder),
	// never to the snapshotter.
	uas := agents.get(img.layer)
	agents.mu.Lock()
	for d, got := range agents.byDigest {
		t.Logf("origin GETs of blob %s: %q", d, got)
	}
	agents.mu.Unlock()
	if n := o.BlobGETs(img.layer); n != 1 {
		t.Errorf("origin served the layer %d times, want once (to the fleet)", n)
	}
	for _, ua := range uas {
		if strings.Contains(ua, "soci") || strings.Contains(ua, "containerd") {
			t.Errorf("origin served the layer to the client directly (User-Agent %q)", ua)
		}
	}
}

// sociImage is an OCI layout holding a one-layer image and its SOCI v2
// index (the image index soci convert writes).
type sociImage struct {
	layout    string
	index     digest.Digest
	layer     digest.Digest
	layerSize int64
	files     map[string][]byte
}

// buildSOCIImage writes a one-layer image (files of 6 MiB each, enough
// for soci to index the layer) as an OCI layout and converts it with
// `soci convert --standalone`.
func buildSOCIImage(t *testing.T, soci string) sociImage {
	t.Helper()
	dir := t.TempDir()
	img := sociImage{files: map[string][]byte{
		"data/a.bin": make([]byte, 6<<20),
		"data/b.bin": make([]byte, 6<<20),
		"etc/passwd": []byte("root:x:0:0:root:/:/bin/sh\n"),
		"hello.txt":  []byte("hello from the lazily pulled layer\n"),
	}}
	rand.Read(img.files["data/a.bin"])
	rand.Read(img.files["data/b.bin"])

	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, d := range []string{"data/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(img.files))
	for name := range img.files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b := img.files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&layer, gzip.BestCompression)
	if _, err := zw.Write(tarball.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	in := filepath.Join(dir, "layout")
	put := func(mediaType string, b []byte) ocispec.Descriptor {
		t.Helper()
		d := digest.FromBytes(b)
		p := filepath.Join(in, "blobs", d.Algorithm().String(), d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layerDesc := put(ocispec.MediaTypeImageLayerGzip, layer.Bytes())
	img.layer, img.layerSize = layerDesc.Digest, layerDesc.Size
	config := put(ocispec.MediaTypeImageConfig, mustJSON(ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarball.Bytes())}},
	}))
	manifest := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layerDesc}}
	manifest.SchemaVersion = 2
	top := put(ocispec.MediaTypeImageManifest, mustJSON(manifest))
	top.Annotations = map[string]string{ocispec.AnnotationRefName: "v1"}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}}
	index.SchemaVersion = 2
	if err := os.WriteFile(filepath.Join(in, "index.json"), mustJSON(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, ocispec.ImageLayoutFile), mustJSON(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}), 0o644); err != nil {
		t.Fatal(err)
	}

	img.layout = filepath.Join(dir, "layout-soci")
	conv := exec.CommandContext(t.Context(), soci, "--root", filepath.Join(dir, "soci-cli-root"), "convert", "--standalone",
		"--format", "oci-dir", "--min-layer-size", "1048576", in, img.layout)
	if out, err := conv.CombinedOutput(); err != nil {
		t.Fatalf("soci convert: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(img.layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var converted ocispec.Index
	if err := json.Unmarshal(b, &converted); err != nil || len(converted.Manifests) == 0 {
		t.Fatalf("soci convert wrote index.json %s (%v)", b, err)
	}
	img.index = converted.Manifests[0].Digest
	return img
}

// SOCI's snapshot labels (github.com/awslabs/soci-snapshotter/fs/source):
// the layer's size, the SOCI index (empty: v2 finds it through the
// manifest's annotation) and the sizes of the layers from this one on.
const (
	sociSizeLabel       = "containerd.io/snapshot/remote/soci.size"
	sociIndexLabel      = "containerd.io/snapshot/remote/soci.index.digest"
	sociLayerSizesLabel = "containerd.io/snapshot/remote/image.layers.size"
)

// sociLabels adds SOCI's labels to the layers of a manifest, after next
// (containerd's AppendInfoHandlerWrapper) added the image's.
func sociLabels(next func(images.Handler) images.Handler) func(images.Handler) images.Handler {
	return func(f images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			children, err := next(f).Handle(ctx, desc)
			if err != nil || !images.IsManifestType(desc.MediaType) {
				return children, err
			}
			for i := range children {
				c := &children[i]
				if !images.IsLayerType(c.MediaType) {
					continue
				}
				if c.Annotations == nil {
					c.Annotations = map[string]string{}
				}
				c.Annotations[sociSizeLabel] = strconv.FormatInt(c.Size, 10)
				c.Annotations[sociIndexLabel] = ""
				var sizes []string
				for _, l := range children[i:] {
					if images.IsLayerType(l.MediaType) {
						sizes = append(sizes, strconv.FormatInt(l.Size, 10))
					}
				}
				c.Annotations[sociLayerSizesLabel] = strings.Join(sizes, ",")
			}
			return children, nil
		})
	}
}

// mountsUnder lists the mount points under dir (deepest first) with their
// file system types, from /proc/self/mountinfo.
func mountsUnder(t *testing.T, dir string) (points, types []string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		p := strings.ReplaceAll(fields[4], `\040`, " ")
		if strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
			types = append(types, fields[sep+1])
		}
	}
	for i, j := 0, len(points)-1; i < j; i, j = i+1, j-1 {
		points[i], points[j] = points[j], points[i]
		types[i], types[j] = types[j], types[i]
	}
	return points, types
}

// fuseMountUnder is the first FUSE mount point under dir, or "".
func fuseMountUnder(t *testing.T, dir string) string {
	t.Helper()
	points, types := mountsUnder(t, dir)
	for i, p := range points {
		if strings.HasPrefix(types[i], "fuse") {
			return p
		}
	}
	return ""
}

// unmountFUSEUnder unmounts whatever the snapshotter left mounted under dir
// (FUSE mounts with fusermount3), deepest first.
func unmountFUSEUnder(t *testing.T, dir string) {
	t.Helper()
	points, types := mountsUnder(t, dir)
	for i, p := range points {
		var err error
		var out []byte
		if strings.HasPrefix(types[i], "fuse") {
			if out, err = exec.Command("fusermount3", "-u", p).CombinedOutput(); err != nil {
				out, err = exec.Command("fusermount3", "-uz", p).CombinedOutput()
			}
		} else if err = syscall.Unmount(p, 0); err != nil {
			err = syscall.Unmount(p, syscall.MNT_DETACH)
		}
		if err != nil {
			t.Errorf("unmount %s: %v %s", p, err, out)
		}
	}
}
