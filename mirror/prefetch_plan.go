package mirror

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

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
	err    error
}

func (e *errPrefetch) Error() string { return e.err.Error() }

func (e *errPrefetch) Unwrap() error { return e.err }

// plan resolves the reference and the manifests of the platforms asked for.
func (a *admin) plan(ctx context.Context, req adminapi.PrefetchRequest) (*prefetchPlan, error) {
	m := a.m
	bad := func(code, format string, args ...any) error {
		return &errPrefetch{status: http.StatusBadRequest, code: code, err: fmt.Errorf(format, args...)}
	}
	named, err := reference.ParseNormalizedNamed(req.Image)
	if err != nil {
		return nil, bad(adminapi.CodeInvalidRequest, "image %q: %w", req.Image, err)
	}
	named = reference.TagNameOnly(named)
	plan := &prefetchPlan{registry: reference.Domain(named), repo: reference.Path(named)}
	// The check a client's request gets: prefetch is no way around it.
	if err := m.upstream.Check(plan.registry); err != nil {
		regs := m.registries()
		hosts := make([]string, len(regs))
		for i, r := range regs {
			hosts[i] = r.Host
		}
		return nil, bad(adminapi.CodeUnknownRegistry, "%w (it mirrors %s)", err, strings.Join(hosts, ", "))
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
			return nil, bad(adminapi.CodeInvalidRequest, "platform %q: %w", p, err)
		}
		match = platforms.Only(spec)
	}
	ref := manifestRef{registry: plan.registry, repo: plan.repo}
	if c, ok := named.(reference.Canonical); ok {
		ref.digest = c.Digest()
	} else {
		ref.tag = named.(reference.Tagged).Tag()
	}
	if plan.top, err = a.manifest(ctx, ref); err != nil {
		return nil, err
	}
	img, err := parseManifest(plan.top)
	if err != nil {
		return nil, err
	}
	if len(img.Manifests) == 0 {
		plan.manifests = []planManifest{{digest: plan.top.Digest, platform: "(single image)"}}
		plan.addBlobs(img)
		return plan, nil
	}
	children, err := pickPlatforms(img.Manifests, match, req)
	if err != nil {
		return nil, err
	}
	for _, d := range children {
		child, err := a.manifest(ctx, manifestRef{registry: plan.registry, repo: plan.repo, digest: d.Digest})
		if err != nil {
			return nil, err
		}
		childImg, err := parseManifest(child)
		if err != nil {
			return nil, err
		}
		plan.manifests = append(plan.manifests, planManifest{digest: d.Digest, platform: platforms.Format(*d.Platform)})
		plan.addBlobs(childImg)
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
			err: fmt.Errorf("%s has no image for platform %s (it has %s)", req.Image, cmp.Or(req.Platform, "of the mirror host"), strings.Join(names, ", "))}
	}
	return out, nil
}

// manifest gets a manifest the way a client's request would, so the
// manifest cache, the tracker's tag coalescing and stale answers all apply,
// and tells a reference the upstream lacks from an upstream that failed.
func (a *admin) manifest(ctx context.Context, ref manifestRef) (oci.Manifest, error) {
	man, err := a.m.manifest(ctx, ref, nil)
	if err == nil {
		return man, nil
	}
	var ec errcode.Error
	if errors.Is(err, upstream.ErrNotFound) || (errors.As(err, &ec) && (ec.Code == errcode.ErrorCodeManifestUnknown || ec.Code == errcode.ErrorCodeNameUnknown)) {
		return oci.Manifest{}, &errPrefetch{status: http.StatusNotFound, code: adminapi.CodeNotFound, err: fmt.Errorf("manifest %s not found upstream: %w", ref, err)}
	}
	return oci.Manifest{}, &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, err: fmt.Errorf("manifest %s: %w", ref, err)}
}

// parseManifest reads a manifest prefetch can plan from: an index or an
// image.
func parseManifest(man oci.Manifest) (oci.Image, error) {
	img, err := oci.ParseImage(man)
	if err != nil {
		return img, &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, err: err}
	}
	if len(img.Manifests) == 0 && img.Config == nil {
		return img, &errPrefetch{status: http.StatusBadRequest, code: adminapi.CodeInvalidRequest, err: fmt.Errorf("manifest %s (%s) is neither an image nor an index", man.Digest, man.MediaType)}
	}
	return img, nil
}

// addBlobs adds an image's config and layers, each digest once.
func (p *prefetchPlan) addBlobs(img oci.Image) {
	add := func(d ocispec.Descriptor, kind string) {
		if d.Digest.Validate() != nil || slices.ContainsFunc(p.blobs, func(b planBlob) bool { return b.desc.Digest == d.Digest }) {
			return
		}
		p.blobs = append(p.blobs, planBlob{desc: d, kind: kind})
	}
	if img.Config != nil {
		add(*img.Config, "config")
	}
	for _, l := range img.Layers {
		add(l, "layer")
	}
}
