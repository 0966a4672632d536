package client_test

import (
	"crypto/sha1"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

func pieceSum(i int) [20]byte { return sha1.Sum([]byte(strconv.Itoa(i))) }

// A seeder whose stream breaks every three pieces: the client picks up
// from the next piece each time and hears every hash once, in order.
func TestPiecesResumesABrokenStream(t *testing.T) {
	const n = 10
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, from, err := api.ParsePiecesQuery(r.URL.Query())
		if err != nil {
			errcode.ServeJSON(w, err)
			return
		}
		w.Header().Set("Content-Type", api.PiecesType)
		for i := from; i < min(from+3, n); i++ {
			s := pieceSum(i)
			w.Write(s[:])
			w.(http.Flusher).Flush()
		}
		if from+3 < n {
			panic(http.ErrAbortHandler) // a broken stream, not a clean end
		}
	}))
	defer srv.Close()
	c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 5 * time.Second})
	var got []int
	err := c.Pieces(t.Context(), oci.Blob{Registry: "r.test", Repo: "app", Digest: digest.FromString("x")}, 0, n,
		func(i int, sum [20]byte) {
			if sum != pieceSum(i) {
				t.Errorf("piece %d: wrong hash", i)
			}
			got = append(got, i)
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[0] != 0 || got[n-1] != n-1 {
		t.Fatalf("heard pieces %v, want 0..%d once each", got, n-1)
	}
	if r := requests.Load(); r != 4 {
		t.Fatalf("%d requests, want 4 (three pieces each)", r)
	}
}

// The tracker's error for a blob its seeder failed ends the follow.
func TestPiecesReturnsTheTrackersError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithMessage("origin sent other bytes"))
	}))
	defer srv.Close()
	c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 5 * time.Second})
	err := c.Pieces(t.Context(), oci.Blob{Registry: "r.test", Repo: "app", Digest: digest.FromString("x")}, 0, 4, func(int, [20]byte) {
		t.Error("a hash from a failed blob")
	})
	var e errcode.Error
	if !errors.As(err, &e) || e.Code != errcode.ErrorCodeDigestInvalid {
		t.Fatalf("Pieces = %v, want the tracker's DIGEST_INVALID", err)
	}
}
