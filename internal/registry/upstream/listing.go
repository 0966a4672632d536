package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Listing is one page of a tag list or a referrers list, as the registry
// sent it.
type Listing struct {
	Data []byte
	// MediaType is the Content-Type of Data.
	MediaType string
	// Next is the query of the next page, from the registry's Link
	// header; nil on the last page.
	Next url.Values
	// FiltersApplied lists the filters Data has been through
	// (OCI-Filters-Applied of a referrers answer).
	FiltersApplied string
}

// ParamArtifactType filters a referrers list by the referrers' artifact
// type.
const ParamArtifactType = "artifactType"

// GetTags fetches one page of repo's tag list; q carries the client's n
// and last, or the opaque query of a Link the registry sent. Any answer
// but 200 becomes an *Error; a 404 wraps ErrNotFound.
func (c *Client) GetTags(ctx context.Context, host, repo string, q url.Values) (Listing, error) {
	path := "/v2/" + repo + "/tags/list"
	l, err := c.getListing(ctx, host, repo, path, q, "application/json", fmt.Sprintf("tag list of %s", repo))
	if err != nil {
		return Listing{}, err
	}
	// Whatever else came back (a login page) would reach clients under the
	// registry's name.
	var tags struct {
		Name *string  `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(l.Data, &tags); err != nil || tags.Name == nil {
		return Listing{}, c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("tag list of %s: not a tag list", repo))
	}
	l.MediaType = "application/json"
	return l, nil
}

// GetReferrers fetches the manifests that name manifest d of repo as their
// subject (OCI distribution-spec 1.1), as an image index. With an
// artifactType in q, a registry that did not apply that filter has it
// applied here, and FiltersApplied says so. A 404 (ErrNotFound) means the
// registry has no referrers API: clients then fall back to the tag scheme.
func (c *Client) GetReferrers(ctx context.Context, host, repo string, d digest.Digest, q url.Values) (Listing, error) {
	what := fmt.Sprintf("referrers of %s@%s", repo, d)
	l, err := c.getListing(ctx, host, repo, "/v2/"+repo+"/referrers/"+d.String(), q, ocispec.MediaTypeImageIndex, what)
	if err != nil {
		return Listing{}, err
	}
	var idx ocispec.Index
	if l.MediaType != ocispec.MediaTypeImageIndex || json.Unmarshal(l.Data, &idx) != nil {
		return Listing{}, c.StatusError(host, http.StatusBadGateway, fmt.Sprintf("%s: not an image index (%q)", what, l.MediaType))
	}
	at := q.Get(ParamArtifactType)
	if at == "" || slices.Contains(splitList(l.FiltersApplied), ParamArtifactType) {
		return l, nil
	}
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool { return m.ArtifactType != at })
	if idx.Manifests == nil {
		// The spec's answer is an empty list, never null.
		idx.Manifests = []ocispec.Descriptor{}
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return Listing{}, fmt.Errorf("%s: %w", what, err)
	}
	l.Data = data
	l.FiltersApplied = strings.Join(append(splitList(l.FiltersApplied), ParamArtifactType), ",")
	return l, nil
}

func (c *Client) getListing(ctx context.Context, host, repo, path string, q url.Values, accept, what string) (Listing, error) {
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	resp, err := c.Do(ctx, http.MethodGet, host, repo, target, http.Header{"Accept": {accept}})
	if err != nil {
		return Listing{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Listing{}, c.StatusError(host, resp.StatusCode, what)
	}
	data, mediaType, err := c.readAnswer(host, resp, what)
	if err != nil {
		return Listing{}, err
	}
	return Listing{
		Data:           data,
		MediaType:      mediaType,
		Next:           NextPage(resp.Header.Values("Link"), path),
		FiltersApplied: resp.Header.Get("OCI-Filters-Applied"),
	}, nil
}

// NextPage is the query of the rel="next" link among Link header values,
// when that link is to path itself (on whatever host); nil otherwise: a
// listing is followed only page by page of the same list.
func NextPage(links []string, path string) url.Values {
	for _, v := range links {
		for link := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") || !relNext(params) {
				continue
			}
			u, err := url.Parse(target[1 : len(target)-1])
			if err != nil || u.Path != path {
				continue
			}
			q := u.Query()
			if len(q) == 0 {
				continue
			}
			return q
		}
	}
	return nil
}

// relNext reports whether a link's parameters say rel="next".
func relNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "rel") && slices.Contains(strings.Fields(strings.Trim(v, `"`)), "next") {
			return true
		}
	}
	return false
}

// splitList splits a comma-separated header value.
func splitList(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
