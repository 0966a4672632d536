package mirror

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/felixge/httpsnoop"

	"github.com/blobswarm/blobswarm/blobswarm/cache"
	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/mirror/route"
)

// request is one parsed pull API call.
type request struct {
	route.Route
	registry string
}

func (m *Mirror) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, err := route.Parse(r.URL.Path)
	kind := kindName(rt.Kind, err)
	snoop := httpsnoop.Metrics{Code: http.StatusOK}
	// Deferred, so a response aborted mid-body (http.ErrAbortHandler) is
	// counted too.
	defer func() {
		m.metrics.requests.WithLabelValues(kind, r.Method, strconv.Itoa(snoop.Code)).Inc()
	}()
	snoop.CaptureMetrics(w, func(w http.ResponseWriter) { m.routeAPI(w, r, rt, err) })
}

func (m *Mirror) routeAPI(w http.ResponseWriter, r *http.Request, rt route.Route, err error) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		m.writeError(w, r, errcode.ErrorCodeUnsupported.WithMessage("this is a read-only mirror: "+r.Method+" is not supported"))
		return
	}
	req := request{Route: rt, registry: m.cfg.DefaultUpstream}
	if ns := r.URL.Query().Get("ns"); ns != "" {
		if req.registry, err = oci.ParseRegistry(ns); err != nil {
			m.writeError(w, r, err)
			return
		}
	}
	// Before the store, the manifest cache or a fetch: a registry the
	// configuration does not name costs nothing and reaches nothing.
	if err := m.upstream.Check(req.registry); err != nil {
		m.writeError(w, r, err)
		return
	}
	switch rt.Kind {
	case route.Base:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	case route.Manifest:
		m.serveManifest(w, r, req)
	case route.Blob:
		m.serveBlob(w, r, req)
	case route.Tags:
		m.serveTags(w, r, req)
	case route.Referrers:
		m.serveReferrers(w, r, req)
	default:
		writeNotFound(w, r, r.URL.Path+" is not served by a pull-through mirror")
	}
}

func kindName(k route.Kind, err error) string {
	switch {
	case err != nil:
		return "invalid"
	case k == route.Base:
		return "base"
	case k == route.Manifest:
		return "manifest"
	case k == route.Blob:
		return "blob"
	case k == route.Tags:
		return "tags"
	case k == route.Referrers:
		return "referrers"
	}
	return "other"
}

// writeError answers with an OCI error body whose code says what went wrong.
// HEAD responses carry the status only.
func (m *Mirror) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e errcode.Error
	switch {
	case errors.Is(err, route.ErrNotAPI):
		e = errcode.ErrorCodeUnsupported.WithMessage(err.Error())
	case errors.As(err, new(*store.NoSpaceError)):
		m.log.Error("request failed", "err", err)
		e = errcode.ErrorCodeUnavailable.WithMessage(err.Error())
	case errors.As(err, new(*cache.QuotaError)), errors.As(err, new(*flight.SizeError)):
		// Refused before a byte was stored; the fetch logged it.
		e = errcode.ErrorCodeUnavailable.WithMessage(err.Error())
	default:
		e = m.clientError(err, unknownCode(r))
	}
	upstream.SetRetryAfter(w.Header(), err)
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.Code.Descriptor().HTTPStatusCode)
		return
	}
	errcode.ServeJSON(w, e)
}

// clientError maps err to the code a client should see, logging and
// counting what is not the client's doing.
func (m *Mirror) clientError(err error, unknown errcode.ErrorCode) errcode.Error {
	e, internal := upstream.ClientError(err, unknown)
	var ue *upstream.Error
	switch {
	case internal:
		m.log.Error("request failed", "err", err)
	case errors.As(err, &ue) && ue.Status != http.StatusNotFound:
		m.metrics.upstreamErrors.WithLabelValues(m.upstreamLabel(ue.Host)).Inc()
		m.log.Warn("upstream failed", "err", err)
	}
	return e
}

// upstreamLabel is a registry as a metric label: named in the
// configuration, or "other" for those any-registry lets clients name, so
// clients cannot make series without bound.
func (m *Mirror) upstreamLabel(host string) string {
	if m.upstream.Named(host) {
		return host
	}
	return "other"
}

// unknownCode is the "no such thing" code for what the request names.
func unknownCode(r *http.Request) errcode.ErrorCode {
	rt, err := route.Parse(r.URL.Path)
	switch {
	case err != nil:
	case rt.Kind == route.Manifest:
		return errcode.ErrorCodeManifestUnknown
	case rt.Kind == route.Tags:
		return errcode.ErrorCodeNameUnknown
	}
	return errcode.ErrorCodeBlobUnknown
}
