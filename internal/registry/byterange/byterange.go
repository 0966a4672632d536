// Package byterange parses the single-range HTTP Range requests that
// registry clients send when resuming or splitting a blob download.
package byterange

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnsatisfiable means the range lies outside the blob: answer 416.
var ErrUnsatisfiable = errors.New("range not satisfiable")

// ErrMalformed means the header is not a byte range this server understands;
// RFC 9110 lets a server ignore such a header and send the whole body.
var ErrMalformed = errors.New("malformed range")

// Range is the inclusive byte span [Start, End].
type Range struct{ Start, End int64 }

// Length is the number of bytes in the range.
func (r Range) Length() int64 { return r.End - r.Start + 1 }

// ContentRange is the Content-Range header value for a 206 response.
func (r Range) ContentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.Start, r.End, size)
}

// Parse interprets a Range header for a blob of the given size. Only one
// range is supported; several ranges are reported as ErrMalformed so the
// caller serves the whole blob, which every registry client accepts.
func Parse(header string, size int64) (Range, error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return Range{}, fmt.Errorf("%w: %q", ErrMalformed, header)
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return Range{}, fmt.Errorf("%w: %q", ErrMalformed, header)
	}
	if first == "" {
		// Suffix form: the last N bytes.
		n, err := parseNum(last)
		if err != nil {
			return Range{}, fmt.Errorf("%w: %q", ErrMalformed, header)
		}
		if n == 0 || size == 0 {
			return Range{}, ErrUnsatisfiable
		}
		return Range{Start: max(size-n, 0), End: size - 1}, nil
	}
	start, err := parseNum(first)
	if err != nil {
		return Range{}, fmt.Errorf("%w: %q", ErrMalformed, header)
	}
	end := size - 1
	if last != "" {
		if end, err = parseNum(last); err != nil || end < start {
			return Range{}, fmt.Errorf("%w: %q", ErrMalformed, header)
		}
	}
	if start >= size {
		return Range{}, ErrUnsatisfiable
	}
	return Range{Start: start, End: min(end, size-1)}, nil
}

func parseNum(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	return strconv.ParseInt(s, 10, 64)
}
