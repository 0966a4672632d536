package upstream

import (
	"errors"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// ErrorCode maps an upstream failure to the OCI error a client of ours
// should see; unknown is the code for a 404 (BLOB_UNKNOWN, MANIFEST_UNKNOWN).
// ok is false for errors that did not come from an upstream.
func ErrorCode(err error, unknown errcode.ErrorCode) (e errcode.Error, ok bool) {
	var ue *Error
	if !errors.As(err, &ue) {
		return errcode.ErrorCodeUnknown.WithMessage(err.Error()), false
	}
	code := errcode.ErrorCodeUnavailable
	switch ue.Status {
	case http.StatusNotFound:
		code = unknown
	case http.StatusUnauthorized:
		code = errcode.ErrorCodeUnauthorized
	case http.StatusForbidden:
		code = errcode.ErrorCodeDenied
	case http.StatusTooManyRequests:
		code = errcode.ErrorCodeTooManyRequests
	}
	return code.WithMessage(ue.Error()), true
}
