package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// serveTags passes a page of a repository's tag list through from the
// upstream: the same routing, credentials and errors as a manifest, never
// cached (a tag list is a question about now).
func (m *Mirror) serveTags(w http.ResponseWriter, r *http.Request, req request) {
	m.serveListing(w, r, "", func(q url.Values) (upstream.Listing, error) {
		return m.upstream.GetTags(r.Context(), req.registry, req.Name, q)
	})
}

// serveReferrers passes the referrers of a manifest through from the
// upstream. An upstream without the referrers API answers 404, and so does
// the mirror (UNSUPPORTED, not NAME_UNKNOWN: clients (oras-go) take a 404
// with that code for a repository that does not exist, and only another
// 404 for a registry without the API, the one they fall back to the tag
// scheme from: sha256-<hex> tags, which the mirror serves as manifests).
func (m *Mirror) serveReferrers(w http.ResponseWriter, r *http.Request, req request) {
	m.serveListing(w, r, req.registry+" has no referrers API, or no such manifest", func(q url.Values) (upstream.Listing, error) {
		return m.upstream.GetReferrers(r.Context(), req.registry, req.Name, req.Digest, q)
	})
}

// serveListing answers a listing request with the page get fetches for
// the client's query. With notFound set, an upstream 404 is answered
// 404 UNSUPPORTED saying so.
func (m *Mirror) serveListing(w http.ResponseWriter, r *http.Request, notFound string, get func(url.Values) (upstream.Listing, error)) {
	q, err := listingQuery(r.URL.Query())
	if err != nil {
		m.writeError(w, r, err)
		return
	}
	l, err := get(q)
	switch {
	case notFound != "" && errors.Is(err, upstream.ErrNotFound):
		writeNotFound(w, r, notFound)
	case err != nil:
		m.writeError(w, r, err)
	default:
		writeListing(w, r, l)
	}
}

// listingQuery is what of a client's query goes to the upstream: all but
// ns, which says which upstream. A page size that is not a count is the
// client's error, told as distribution tells it.
func listingQuery(q url.Values) (url.Values, error) {
	out := url.Values{}
	for k, v := range q {
		if k != "ns" {
			out[k] = v
		}
	}
	if n := out.Get("n"); n != "" {
		if v, err := strconv.Atoi(n); err != nil || v < 0 {
			return nil, errcode.ErrorCodePaginationNumberInvalid.WithMessage(fmt.Sprintf("n=%q is not a number of entries", n))
		}
	}
	return out, nil
}

// writeListing answers with a listing page. Its Link names the next page
// on the mirror, with the ns and artifactType the client sent, so a
// client following it stays on the mirror, the same upstream and the same
// filter.
func writeListing(w http.ResponseWriter, r *http.Request, l upstream.Listing) {
	h := w.Header()
	h.Set("Content-Type", l.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(l.Data)))
	if l.FiltersApplied != "" {
		h.Set("OCI-Filters-Applied", l.FiltersApplied)
	}
	if l.Next != nil {
		next := url.Values{}
		for k, v := range l.Next {
			next[k] = v
		}
		// The upstream's link does not carry a filter the mirror applied
		// for it, nor the mirror's own ns.
		for _, k := range []string{upstream.ParamArtifactType, "ns"} {
			if v := r.URL.Query().Get(k); v != "" && !next.Has(k) {
				next.Set(k, v)
			}
		}
		h.Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(l.Data)
	}
}

// writeNotFound answers 404 UNSUPPORTED: what a registry without an API
// answers, so clients that can do without it carry on.
func writeNotFound(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		json.NewEncoder(w).Encode(errcode.Errors{errcode.ErrorCodeUnsupported.WithMessage(msg)})
	}
}
