package upstream

import (
	"errors"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// ClientError maps err to the OCI error a client of the mirror or the
// tracker should see; unknown is the code for an upstream's 404
// (BLOB_UNKNOWN, MANIFEST_UNKNOWN). An errcode.Error passes through, a bad
// name, tag or digest gets its own code, a registry the configuration does
// not allow DENIED, and an upstream's answer the code of its status. An
// upstream that could not be reached is only named: whether it refused,
// reset or timed out would tell a client which ports are open there, and
// belongs in the log. internal is true for anything else: a fault of ours,
// for the log.
func ClientError(err error, unknown errcode.ErrorCode) (e errcode.Error, internal bool) {
	var ue *Error
	var de *DeniedError
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.As(err, &de):
		return errcode.ErrorCodeDenied.WithMessage(de.Error()), false
	case errors.Is(err, oci.ErrNameInvalid):
		return errcode.ErrorCodeNameInvalid.WithMessage(err.Error()), false
	case errors.Is(err, oci.ErrDigestInvalid):
		return errcode.ErrorCodeDigestInvalid.WithMessage(err.Error()), false
	case errors.Is(err, oci.ErrTagInvalid):
		return errcode.ErrorCodeTagInvalid.WithMessage(err.Error()), false
	case !errors.As(err, &ue):
		return errcode.ErrorCodeUnknown.WithMessage(err.Error()), true
	}
	code := errcode.ErrorCodeUnavailable
	switch ue.Status {
	case 0:
		return code.WithMessage("upstream " + ue.Host + " unreachable"), false
	case http.StatusNotFound:
		code = unknown
	case http.StatusUnauthorized:
		code = errcode.ErrorCodeUnauthorized
	case http.StatusForbidden:
		code = errcode.ErrorCodeDenied
	case http.StatusTooManyRequests:
		code = errcode.ErrorCodeTooManyRequests
	}
	return code.WithMessage(ue.Error()), false
}
