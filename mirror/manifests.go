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

func (m *Mirror) serveManifest(w http.ResponseWriter, r *http.Request, req request) {
	var (
		man oci.Manifest
		err error
	)
	if req.Digest != "" {
		man, err = m.manifestByDigest(r, req)
	} else {
		man, err = m.manifestByTag(r, req)
	}
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
			go m.readahead(req.registry, req.Name, man)
		}
	}
}

func (m *Mirror) manifestByDigest(r *http.Request, req request) (oci.Manifest, error) {
	if man, err := m.manifests.Get(req.Digest); err == nil {
		m.metrics.cache.WithLabelValues("manifest", "hit").Inc()
		return man, nil
	}
	m.metrics.cache.WithLabelValues("manifest", "miss").Inc()
	man, err := m.fetchManifest(r.Context(), r, req, req.Digest.String())
	if err != nil {
		return man, err
	}
	if man.Digest != req.Digest {
		return man, m.upstream.StatusError(req.registry, http.StatusBadGateway,
			fmt.Sprintf("manifest %s: upstream sent content with digest %s", req.Digest, man.Digest))
	}
	return man, m.manifests.Put(man)
}

// manifestByTag resolves a tag upstream every time (tags move), but asks
// with a HEAD first so a manifest we already hold costs no download, and
// answers from the last known resolution when the upstream is down.
func (m *Mirror) manifestByTag(r *http.Request, req request) (oci.Manifest, error) {
	key := strings.Join([]string{req.registry, req.Name, req.Tag, strings.Join(r.Header.Values("Accept"), ",")}, "\x00")
	// Detached: the request that started the resolution may leave while
	// others still wait on it.
	ctx := context.WithoutCancel(r.Context())
	v, err, _ := m.tags.Do(key, func() (any, error) { return m.resolveTag(ctx, r, req) })
	if err == nil {
		return v.(oci.Manifest), nil
	}
	if !upstream.Unreachable(err) {
		return oci.Manifest{}, err
	}
	d, _, terr := m.manifests.Tag(req.registry, req.Name, req.Tag)
	if terr != nil {
		return oci.Manifest{}, err
	}
	man, merr := m.manifests.Get(d)
	if merr != nil {
		return oci.Manifest{}, err
	}
	m.metrics.staleManifests.Inc()
	m.log.Warn("serving stale tag: upstream unreachable", "registry", req.registry, "repo", req.Name, "tag", req.Tag, "digest", d, "err", err)
	return man, nil
}

func (m *Mirror) resolveTag(ctx context.Context, r *http.Request, req request) (oci.Manifest, error) {
	if m.trackers != nil {
		man, err := m.resolveTagViaTracker(ctx, r, req)
		if err == nil || !errors.Is(err, trackerclient.ErrUnavailable) {
			return man, err
		}
		m.log.Warn("tracker unreachable: resolving tag at the origin", "registry", req.registry, "repo", req.Name, "tag", req.Tag, "err", err)
	}
	path := "/v2/" + req.Name + "/manifests/" + req.Tag
	resp, err := m.upstream.Do(ctx, http.MethodHead, req.registry, req.Name, path, acceptHeader(r))
	if err != nil {
		return oci.Manifest{}, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return oci.Manifest{}, m.upstream.StatusError(req.registry, resp.StatusCode, "manifest "+req.Name+":"+req.Tag)
	}
	if resp.StatusCode == http.StatusOK {
		if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
			if man, err := m.manifests.Get(d); err == nil {
				m.metrics.cache.WithLabelValues("manifest", "hit").Inc()
				return man, m.manifests.SetTag(req.registry, req.Name, req.Tag, d, man.MediaType)
			}
		}
	}
	// Some registries answer HEAD poorly (no digest, 404 where GET works):
	// GET decides.
	m.metrics.cache.WithLabelValues("manifest", "miss").Inc()
	man, err := m.fetchManifest(ctx, r, req, req.Tag)
	if err != nil {
		return man, err
	}
	if err := m.manifests.Put(man); err != nil {
		return man, err
	}
	return man, m.manifests.SetTag(req.registry, req.Name, req.Tag, man.Digest, man.MediaType)
}

// fetchManifest GETs a manifest and returns its exact bytes.
func (m *Mirror) fetchManifest(ctx context.Context, r *http.Request, req request, ref string) (oci.Manifest, error) {
	data, mediaType, err := m.upstream.GetManifest(ctx, req.registry, req.Name, ref, acceptHeader(r).Values("Accept"))
	if err != nil {
		return oci.Manifest{}, err
	}
	return oci.Manifest{MediaType: mediaType, Digest: digest.FromBytes(data), Data: data}, nil
}

// acceptHeader passes the client's manifest types upstream, so the
// upstream picks the representation the client can use.
func acceptHeader(r *http.Request) http.Header {
	h := http.Header{}
	for _, v := range r.Header.Values("Accept") {
		h.Add("Accept", v)
	}
	if len(h) == 0 {
		for _, t := range defaultAccept {
			h.Add("Accept", t)
		}
	}
	return h
}

// defaultAccept is what a client that states nothing can still use.
var defaultAccept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// resolveTagViaTracker asks the tracker, whose short-lived cache folds a
// fleet's simultaneous resolutions into one origin request.
func (m *Mirror) resolveTagViaTracker(ctx context.Context, r *http.Request, req request) (oci.Manifest, error) {
	man, err := m.trackers.Manifest(ctx, req.registry, req.Name, req.Tag, acceptHeader(r).Values("Accept"))
	if err != nil {
		return oci.Manifest{}, err
	}
	if err := m.manifests.Put(man); err != nil {
		return man, err
	}
	return man, m.manifests.SetTag(req.registry, req.Name, req.Tag, man.Digest, man.MediaType)
}
