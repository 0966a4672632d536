package byterange

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		h    string
		want Range
		err  error
	}{
		{h: "bytes=0-99", want: Range{0, 99}},
		{h: "bytes=100-", want: Range{100, 999}},
		{h: "bytes=990-5000", want: Range{990, 999}},
		{h: "bytes=-10", want: Range{990, 999}},
		{h: "bytes=-5000", want: Range{0, 999}},
		{h: " bytes=5-5", want: Range{5, 5}},
		{h: "bytes=1000-", err: ErrUnsatisfiable},
		{h: "bytes=-0", err: ErrUnsatisfiable},
		{h: "bytes=0-1,5-6", err: ErrMalformed},
		{h: "bytes=5-1", err: ErrMalformed},
		{h: "bytes=a-b", err: ErrMalformed},
		{h: "bytes=+1-2", err: ErrMalformed},
		{h: "items=0-1", err: ErrMalformed},
		{h: "bytes=", err: ErrMalformed},
		{h: "bytes=99999999999999999999-", err: ErrMalformed},
	} {
		got, err := Parse(tc.h, size)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Parse(%q) err = %v, want %v", tc.h, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.h, got, err, tc.want)
		}
	}
	if r := (Range{10, 19}); r.Length() != 10 || r.ContentRange(size) != "bytes 10-19/1000" {
		t.Errorf("Range helpers wrong: %d %q", r.Length(), r.ContentRange(size))
	}
}

func FuzzParse(f *testing.F) {
	f.Add("bytes=0-99", int64(1000))
	f.Add("bytes=-5", int64(3))
	f.Add("bytes=7-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		r, err := Parse(h, size)
		if err != nil {
			return
		}
		if r.Start < 0 || r.End >= size || r.Start > r.End {
			t.Fatalf("Parse(%q, %d) = %v outside the blob", h, size, r)
		}
	})
}
