// Package api is the whole wire contract between mirrors and the tracker:
// the endpoints, their parameters, how a blob or a tag travels in a query
// (names contain slashes, so as parameters, not path segments), the 202
// answer while the seeder fetches a blob, and the error bodies. The
// tracker serves it and tracker/client calls it; neither side spells a
// path or a parameter name anywhere else.
package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

const (
	// AnnouncePath serves BitTorrent announces (BEP 3, compact peers).
	AnnouncePath = "/announce"
	// MetainfoPath answers a blob's torrent info bytes (MetainfoType) as
	// soon as the origin has told the seeder the blob's size, or 202 with
	// Retry-After while it has not.
	MetainfoPath = "/v1/metainfo"
	// PiecesPath streams the SHA-1 of each piece of a blob's torrent as
	// the seeder computes them (see PieceHashSize): mirrors check every
	// piece against them before using or relaying it.
	PiecesPath = "/v1/pieces"
	// ManifestPath resolves a tag through the coalescing cache; the
	// client's Accept headers are passed on, and the answer carries the
	// manifest's Content-Type and Docker-Content-Digest.
	ManifestPath = "/v1/manifest"
)

// Query parameters of the metainfo and manifest endpoints.
const (
	ParamRegistry = "registry"
	ParamRepo     = "repo"
	ParamDigest   = "digest"
	ParamTag      = "tag"
	// ParamFrom is the first piece whose hash a pieces request wants.
	ParamFrom = "from"
)

// PieceHashSize is one record of a pieces answer: the piece's SHA-1. The
// answer (PiecesType) is the hashes of pieces from, from+1, ... in order,
// each written as soon as the seeder has it; it ends after the blob's last
// piece. A seeder that fails mid-blob breaks the stream (no clean end),
// and the next request gets the error (an OCI error body), so a reader
// that saw a clean end has every hash.
const PieceHashSize = 20

// PiecesType is the Content-Type of a pieces answer.
const PiecesType = "application/octet-stream"

// PiecesQuery is the query for blob b's piece hashes from piece from on.
func PiecesQuery(b oci.Blob, from int) url.Values {
	q := BlobQuery(b)
	q.Set(ParamFrom, strconv.Itoa(from))
	return q
}

// ParsePiecesQuery reads and validates what PiecesQuery wrote.
func ParsePiecesQuery(q url.Values) (oci.Blob, int, error) {
	b, err := ParseBlobQuery(q)
	if err != nil {
		return oci.Blob{}, 0, err
	}
	from, err := strconv.Atoi(q.Get(ParamFrom))
	if err != nil || from < 0 {
		return oci.Blob{}, 0, ErrorCodeParamInvalid.WithMessage(fmt.Sprintf("%s=%q is not a piece index", ParamFrom, q.Get(ParamFrom)))
	}
	return b, from, nil
}

// ErrorCodeBusy answers a request for a blob the tracker's seeder has no
// room for now: its origin queue is full, or the blob does not fit its
// store. The mirror fetches that blob from the origin itself.
var ErrorCodeBusy = errcode.Register("blobswarm.tracker", errcode.ErrorDescriptor{
	Value:          "BUSY",
	Message:        "tracker busy",
	Description:    "The tracker's seeder has no room for this blob now; fetch it from the origin.",
	HTTPStatusCode: http.StatusServiceUnavailable,
})

// ErrorCodeParamInvalid answers a query parameter that is not what the
// endpoint takes and has no OCI code of its own.
var ErrorCodeParamInvalid = errcode.Register("blobswarm.tracker", errcode.ErrorDescriptor{
	Value:          "PARAM_INVALID",
	Message:        "invalid query parameter",
	Description:    "A query parameter of a tracker request is not what the endpoint takes.",
	HTTPStatusCode: http.StatusBadRequest,
})

// MetainfoType is the Content-Type of info bytes.
const MetainfoType = "application/x-bittorrent"

// MaxMetainfoSize bounds an info dictionary: 20 bytes of piece hash per
// piece, and the piece table keeps blobs of any size well under it.
const MaxMetainfoSize = 16 << 20

// BlobQuery is the query that names blob b.
func BlobQuery(b oci.Blob) url.Values {
	return url.Values{ParamRegistry: {b.Registry}, ParamRepo: {b.Repo}, ParamDigest: {b.Digest.String()}}
}

// ParseBlobQuery reads and validates what BlobQuery wrote.
func ParseBlobQuery(q url.Values) (oci.Blob, error) {
	return oci.ParseBlob(q.Get(ParamRegistry), q.Get(ParamRepo), q.Get(ParamDigest))
}

// TagQuery is the query that names registry/repo:tag.
func TagQuery(registry, repo, tag string) url.Values {
	return url.Values{ParamRegistry: {registry}, ParamRepo: {repo}, ParamTag: {tag}}
}

// ParseTagQuery reads and validates what TagQuery wrote.
func ParseTagQuery(q url.Values) (registry, repo, tag string, err error) {
	if registry, err = oci.ParseRegistry(q.Get(ParamRegistry)); err != nil {
		return "", "", "", err
	}
	if err := oci.ParseName(q.Get(ParamRepo)); err != nil {
		return "", "", "", err
	}
	if err := oci.ParseTag(q.Get(ParamTag)); err != nil {
		return "", "", "", err
	}
	return registry, q.Get(ParamRepo), q.Get(ParamTag), nil
}

// WritePending answers a metainfo request for a blob the seeder is still
// fetching: 202, and ask again after the given time, in whole seconds
// rounded up as Retry-After has them. Zero means at once: a tracker that
// held the request long enough already, so a mirror learns of the torrent
// the moment it exists instead of on the next tick.
func WritePending(w http.ResponseWriter, after time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(max(0, (after+time.Second-1)/time.Second))))
	w.WriteHeader(http.StatusAccepted)
}

// RetryAfter is how long a 202 answer asks the caller to wait: its
// Retry-After (zero: at once), or a second when it has none.
func RetryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

// DecodeError turns a tracker's OCI error body back into an error that
// keeps the code, so a mirror answers its client with the same one.
func DecodeError(resp *http.Response) error {
	// errcode.Errors decodes the whole {"errors": [...]} body, and turns
	// an error whose message is its code's default into a bare ErrorCode.
	var errs errcode.Errors
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&errs); err == nil && len(errs) > 0 {
		switch e := errs[0].(type) {
		case errcode.Error:
			return e
		case errcode.ErrorCode:
			return e.WithMessage(e.Message())
		}
	}
	return fmt.Errorf("tracker answered HTTP %d", resp.StatusCode)
}
