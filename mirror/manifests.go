package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// manifestRef names a repository's manifest by tag or, when digest is
// set, by digest.
type manifestRef struct {
	registry, repo string
	tag            string
	digest         digest.Digest
}

// tagOrDigest is how the API path names the manifest.
func (r manifestRef) tagOrDigest() string {
	if r.digest != "" {
		return r.digest.String()
	}
	return r.tag
}

func (r manifestRef) String() string {
	if r.digest != "" {
		return r.registry + "/" + r.repo + "@" + r.digest.String()
	}
	return r.registry + "/" + r.repo + ":" + r.tag
}

func (m *Mirror) serveManifest(w http.ResponseWriter, r *http.Request, req request) {
	ref := manifestRef{registry: req.registry, repo: req.Name, tag: req.Tag, digest: req.Digest}
	man, err := m.manifest(r.Context(), ref, r.Header.Values("Accept"))
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", man.MediaType)
	h.Set("Docker-Content-Digest", man.Digest.String())
	h.Set("Content-Length", strconv.Itoa(len(man.Data)))
	h.Set("Etag", `"`+man.Digest.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(man.Data)
		if m.swarm != nil && m.cfg.Readahead {
			go m.readahead(ref.registry, ref.repo, man)
		}
	}
}

// manifest gets the manifest ref names in one of the media types accept
// lists (none: any the mirror knows), through the manifest cache, the
// coalescing of tag resolutions and the stale answer when the upstream is
// down. Client requests, prefetch and readahead all get manifests here.
func (m *Mirror) manifest(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	if len(accept) == 0 {
		accept = defaultAccept
	}
	if ref.digest != "" {
		return m.manifestByDigest(ctx, ref, accept)
	}
	return m.manifestByTag(ctx, ref, accept)
}

func (m *Mirror) manifestByDigest(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	if man, err := m.manifests.Get(ref.digest); err == nil {
		m.metrics.cache.WithLabelValues("manifest", "hit").Inc()
		return man, nil
	}
	m.metrics.cache.WithLabelValues("manifest", "miss").Inc()
	man, err := m.fetchManifest(ctx, ref, accept)
	if err != nil {
		return man, err
	}
	if man.Digest != ref.digest {
		return man, m.upstream.StatusError(ref.registry, http.StatusBadGateway,
			fmt.Sprintf("manifest %s: upstream sent content with digest %s", ref.digest, man.Digest))
	}
	return man, m.manifests.Put(man)
}

// manifestByTag resolves a tag upstream every time (tags move), but asks
// with a HEAD first so a manifest we already hold costs no download, and
// answers from the last known resolution when the upstream is down.
// Clients asking for the tag at once share one resolution, which the
// first one's deadline bounds and none of them cancels by leaving.
func (m *Mirror) manifestByTag(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	key := strings.Join([]string{ref.registry, ref.repo, ref.tag, strings.Join(accept, ",")}, "\x00")
	man, err := m.tags.Do(ctx, key, func(ctx context.Context) (oci.Manifest, error) {
		return m.resolveTag(ctx, ref, accept)
	})
	if err == nil {
		return man, nil
	}
	// A registry down or refusing for now (429): the tag's last known
	// answer serves, if there is one.
	if !upstream.Unreachable(err) && !upstream.RateLimited(err) {
		return oci.Manifest{}, err
	}
	d, _, terr := m.manifests.Tag(ref.registry, ref.repo, ref.tag)
	if terr != nil {
		return oci.Manifest{}, err
	}
	man, merr := m.manifests.Get(d)
	if merr != nil {
		return oci.Manifest{}, err
	}
	m.metrics.staleManifests.Inc()
	m.log.Warn("serving stale tag: upstream unreachable or rate limited", "registry", ref.registry, "repo", ref.repo, "tag", ref.tag, "digest", d, "err", err)
	return man, nil
}

func (m *Mirror) resolveTag(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	if m.trackers != nil {
		man, err := m.resolveTagViaTracker(ctx, ref, accept)
		if err == nil || !errors.Is(err, trackerclient.ErrUnavailable) {
			return man, err
		}
		m.metrics.fallbacks.WithLabelValues("tag").Inc()
		m.log.Warn("no usable answer from the tracker: resolving tag at the origin", "registry", ref.registry, "repo", ref.repo, "tag", ref.tag, "err", err)
	}
	path := "/v2/" + ref.repo + "/manifests/" + ref.tag
	resp, err := m.upstream.Do(ctx, http.MethodHead, ref.registry, ref.repo, path, http.Header{"Accept": accept})
	if err != nil {
		return oci.Manifest{}, err
	}
	resp.Body.Close()
	// A 429 never comes back as an answer: Do makes it an error and holds
	// the scope.
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return oci.Manifest{}, m.upstream.StatusError(ref.registry, resp.StatusCode, "manifest "+ref.repo+":"+ref.tag)
	}
	if resp.StatusCode == http.StatusOK {
		if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
			if man, err := m.manifests.Get(d); err == nil {
				m.metrics.cache.WithLabelValues("manifest", "hit").Inc()
				return man, m.manifests.SetTag(ref.registry, ref.repo, ref.tag, d, man.MediaType)
			}
		}
	}
	// Some registries answer HEAD poorly (no digest, 404 where GET works):
	// GET decides.
	m.metrics.cache.WithLabelValues("manifest", "miss").Inc()
	man, err := m.fetchManifest(ctx, ref, accept)
	if err != nil {
		return man, err
	}
	if err := m.manifests.Put(man); err != nil {
		return man, err
	}
	return man, m.manifests.SetTag(ref.registry, ref.repo, ref.tag, man.Digest, man.MediaType)
}

// fetchManifest GETs a manifest and returns its exact bytes.
func (m *Mirror) fetchManifest(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	data, mediaType, err := m.upstream.GetManifest(ctx, ref.registry, ref.repo, ref.tagOrDigest(), accept)
	if err != nil {
		return oci.Manifest{}, err
	}
	return oci.NewManifest(mediaType, data), nil
}

// defaultAccept is what a client that states nothing can still use.
var defaultAccept = oci.ManifestMediaTypes

// resolveTagViaTracker asks the tracker, whose short-lived cache folds a
// fleet's simultaneous resolutions into one origin request.
func (m *Mirror) resolveTagViaTracker(ctx context.Context, ref manifestRef, accept []string) (oci.Manifest, error) {
	man, err := m.trackers.Manifest(ctx, ref.registry, ref.repo, ref.tag, accept)
	if err != nil {
		return oci.Manifest{}, err
	}
	if err := m.manifests.Put(man); err != nil {
		return man, err
	}
	return man, m.manifests.SetTag(ref.registry, ref.repo, ref.tag, man.Digest, man.MediaType)
}
