package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

func TestBlobQueryRoundTrips(t *testing.T) {
	b := oci.Blob{Registry: "127.0.0.1:5000", Repo: "team/app", Digest: digest.FromString("x")}
	q, err := url.ParseQuery(BlobQuery(b).Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBlobQuery(q)
	if err != nil || got != b {
		t.Fatalf("ParseBlobQuery(BlobQuery(%+v)) = %+v, %v", b, got, err)
	}
	q.Set(ParamRepo, "../etc")
	if _, err := ParseBlobQuery(q); !errors.Is(err, oci.ErrNameInvalid) {
		t.Fatalf("repo ../etc: %v, want ErrNameInvalid", err)
	}
}

func TestTagQueryRoundTrips(t *testing.T) {
	reg, repo, tag, err := ParseTagQuery(TagQuery("docker.io", "library/alpine", "3.20"))
	if err != nil || reg != "docker.io" || repo != "library/alpine" || tag != "3.20" {
		t.Fatalf("ParseTagQuery = %q %q %q, %v", reg, repo, tag, err)
	}
	if _, _, _, err := ParseTagQuery(TagQuery("docker.io", "alpine", "-bad")); !errors.Is(err, oci.ErrTagInvalid) {
		t.Fatalf("tag -bad: %v, want ErrTagInvalid", err)
	}
}

func TestPendingSaysWhenToAskAgain(t *testing.T) {
	for after, want := range map[time.Duration]time.Duration{
		-time.Second: 0, 0: 0, time.Millisecond: time.Second, time.Second: time.Second, 2500 * time.Millisecond: 3 * time.Second,
	} {
		w := httptest.NewRecorder()
		WritePending(w, after)
		if w.Code != http.StatusAccepted {
			t.Fatalf("status %d, want 202", w.Code)
		}
		if got := RetryAfter(w.Header()); got != want {
			t.Fatalf("WritePending(%s): client waits %s, want %s", after, got, want)
		}
	}
	for _, bad := range []string{"", "soon", "-1"} {
		if got := RetryAfter(http.Header{"Retry-After": {bad}}); got != time.Second {
			t.Fatalf("Retry-After %q: client waits %s, want a second", bad, got)
		}
	}
}

func TestDecodeErrorKeepsTheCode(t *testing.T) {
	w := httptest.NewRecorder()
	errcode.ServeJSON(w, errcode.ErrorCodeBlobUnknown.WithMessage("no such blob"))
	var e errcode.Error
	if err := DecodeError(w.Result()); !errors.As(err, &e) || e.Code != errcode.ErrorCodeBlobUnknown || e.Message != "no such blob" {
		t.Fatalf("DecodeError = %v, want BLOB_UNKNOWN with its message", err)
	}
}

func TestPiecesQueryRoundTrips(t *testing.T) {
	b := oci.Blob{Registry: "docker.io", Repo: "library/alpine", Digest: digest.FromString("x")}
	got, from, err := ParsePiecesQuery(PiecesQuery(b, 7))
	if err != nil || got != b || from != 7 {
		t.Fatalf("ParsePiecesQuery = %+v, %d, %v", got, from, err)
	}
	for _, bad := range []string{"", "-1", "x"} {
		q := BlobQuery(b)
		q.Set(ParamFrom, bad)
		var e errcode.Error
		if _, _, err := ParsePiecesQuery(q); !errors.As(err, &e) || e.Code != ErrorCodeParamInvalid || e.Code.Descriptor().HTTPStatusCode != http.StatusBadRequest {
			t.Errorf("from=%q: %v, want a 400 PARAM_INVALID", bad, err)
		}
	}
}
