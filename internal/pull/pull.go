// Package pull pulls an image the way containerd does: its own resolver
// and fetcher, configured from hosts.toml so requests reach the mirror with
// ?ns=<registry>. Every manifest and blob is read whole and checked against
// its digest; nothing is kept, so it measures a pull without storing one.
package pull

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/blobswarm/blobswarm/internal/hoststoml"
)

// Options says where to pull from.
type Options struct {
	// MirrorURL is the node's mirror, e.g. http://127.0.0.1:5000.
	MirrorURL string
	// HostsDir is where hosts.toml files go; a temp dir if empty.
	HostsDir string
	// Platform to pull from an index; the host's own if empty.
	Platform string
	// Concurrency of layer fetches; containerd's default is 3.
	Concurrency int
}

// Result is what a pull fetched.
type Result struct {
	Digest   string // the resolved top-level digest
	Blobs    int    // manifests, configs and layers fetched
	Bytes    int64
	Duration time.Duration
	// FirstByte is the longest any blob took from the client asking for it
	// to its first body byte: on a cold miss, how long a client waits
	// before a layer starts to arrive.
	FirstByte time.Duration
}

// Image resolves ref (e.g. docker.io/library/demo:1) through the mirror and
// fetches the manifests, config and layers of one platform.
func Image(ctx context.Context, ref string, opt Options) (Result, error) {
	start := time.Now()
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return Result{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	registry := reference.Domain(named)
	hostsDir := opt.HostsDir
	if hostsDir == "" {
		if hostsDir, err = os.MkdirTemp("", "blobswarm-hosts-"); err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(hostsDir)
	}
	// The mirror is the only host: as the server entry, containerd adds no
	// fallback to the registry itself (it does for a host-only file), yet
	// still sends ns. A pull that works came through the mirror.
	b, err := hoststoml.Render(opt.MirrorURL, nil)
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(filepath.Join(hostsDir, registry), 0o755); err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(hostsDir, registry, "hosts.toml"), b, 0o644); err != nil {
		return Result{}, err
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(hostsDir)}),
	})
	name, desc, err := resolver.Resolve(ctx, named.String())
	if err != nil {
		return Result{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	fetcher, err := resolver.Fetcher(ctx, name)
	if err != nil {
		return Result{}, err
	}
	match := platforms.Default()
	if opt.Platform != "" {
		p, err := platforms.Parse(opt.Platform)
		if err != nil {
			return Result{}, fmt.Errorf("platform %q: %w", opt.Platform, err)
		}
		match = platforms.Only(p)
	}
	w := &walker{fetcher: fetcher, match: match, limit: max(opt.Concurrency, 1)}
	if opt.Concurrency == 0 {
		w.limit = 3
	}
	if err := w.walk(ctx, desc); err != nil {
		return Result{}, err
	}
	return Result{Digest: desc.Digest.String(), Blobs: w.blobs, Bytes: w.bytes, Duration: time.Since(start), FirstByte: w.firstByte}, nil
}

type walker struct {
	fetcher remotes.Fetcher
	match   platforms.MatchComparer
	limit   int

	mu        sync.Mutex
	blobs     int
	bytes     int64
	firstByte time.Duration
}

func (w *walker) walk(ctx context.Context, desc ocispec.Descriptor) error {
	switch desc.MediaType {
	case images.MediaTypeDockerSchema2ManifestList, ocispec.MediaTypeImageIndex:
		var idx ocispec.Index
		if err := w.fetchJSON(ctx, desc, &idx); err != nil {
			return err
		}
		for _, m := range idx.Manifests {
			if m.Platform == nil || w.match.Match(*m.Platform) {
				return w.walk(ctx, m)
			}
		}
		return fmt.Errorf("index %s has no manifest for this platform", desc.Digest)
	case images.MediaTypeDockerSchema2Manifest, ocispec.MediaTypeImageManifest:
		var man ocispec.Manifest
		if err := w.fetchJSON(ctx, desc, &man); err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(w.limit)
		for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			g.Go(func() error { return w.fetch(gctx, d, io.Discard) })
		}
		return g.Wait()
	}
	return fmt.Errorf("%s: unsupported media type %q", desc.Digest, desc.MediaType)
}

func (w *walker) fetchJSON(ctx context.Context, desc ocispec.Descriptor, v any) error {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := w.fetch(ctx, desc, pw)
		pw.CloseWithError(err)
		errc <- err
	}()
	derr := json.NewDecoder(pr).Decode(v)
	io.Copy(io.Discard, pr)
	if err := <-errc; err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("decode %s: %w", desc.Digest, derr)
	}
	return nil
}

// fetch reads a blob whole and checks it against its digest and size.
func (w *walker) fetch(ctx context.Context, desc ocispec.Descriptor, dst io.Writer) error {
	asked := time.Now()
	rc, err := w.fetcher.Fetch(ctx, desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	body := &firstByteReader{r: rc}
	v := desc.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(dst, v), body)
	if err != nil {
		return fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	if n != desc.Size || !v.Verified() {
		return fmt.Errorf("blob %s: got %d bytes that do not match its digest and size %d", desc.Digest, n, desc.Size)
	}
	w.mu.Lock()
	w.blobs++
	w.bytes += n
	if body.at.IsZero() { // an empty blob: its first byte is its end
		body.at = time.Now()
	}
	w.firstByte = max(w.firstByte, body.at.Sub(asked))
	w.mu.Unlock()
	return nil
}

// firstByteReader notes when the first bytes came out of r.
type firstByteReader struct {
	r  io.Reader
	at time.Time
}

func (f *firstByteReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}
