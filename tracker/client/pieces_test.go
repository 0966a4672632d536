package client_test

import (
	"crypto/sha1"
	"crypto/sha256"
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

// With the fleet's secret, Pieces is done only when a signature the
// tracker put in the trailer covers every hash it gave: a hash changed on
// the way, a stream without a signature, or a stream that broke and came
// again with another hash is a tracker not heard from.
func TestPieceHashesCountOnlyWhenTheStreamIsSigned(t *testing.T) {
	const n, secret = 6, "s3cret"
	keys := api.NewKeys(secret)
	type stream struct {
		breakAt int                       // pieces sent before a break; n for none
		change  func(req, i int) [20]byte // the hash on the wire, given the signed one
		sign    bool
	}
	serve := func(s stream) (*httptest.Server, *atomic.Int32) {
		var requests atomic.Int32
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req := int(requests.Add(1))
			_, from, err := api.ParsePiecesQuery(r.URL.Query())
			if err != nil {
				errcode.ServeJSON(w, err)
				return
			}
			w.Header().Set("Content-Type", api.PiecesType)
			w.Header().Set("Trailer", api.SignatureHeader)
			signed := sha256.New()
			for i := from; i < n; i++ {
				if req == 1 && i == s.breakAt {
					panic(http.ErrAbortHandler)
				}
				sum := pieceSum(i)
				signed.Write(sum[:])
				sum = s.change(req, i)
				w.Write(sum[:])
				w.(http.Flusher).Flush()
			}
			if s.sign {
				keys.SignSum(r, http.StatusOK, w.Header(), signed.Sum(nil))
			}
		})), &requests
	}
	same := func(_, i int) [20]byte { return pieceSum(i) }
	ref := oci.Blob{Registry: "r.test", Repo: "app", Digest: digest.FromString("x")}
	for _, c := range []struct {
		name     string
		s        stream
		ok       bool
		requests int32
	}{
		{"signed", stream{n, same, true}, true, 1},
		{"broken, then whole and signed", stream{3, same, true}, true, 2},
		{"unsigned", stream{n, same, false}, false, 1},
		{"a hash changed on the way", stream{n, func(_, i int) [20]byte {
			if i == 4 {
				return pieceSum(99)
			}
			return pieceSum(i)
		}, true}, false, 1},
		{"broken, then another hash for a piece given", stream{3, func(req, i int) [20]byte {
			if req == 1 && i == 1 {
				return pieceSum(99)
			}
			return pieceSum(i)
		}, true}, false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, requests := serve(c.s)
			defer srv.Close()
			cl := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 5 * time.Second, Secret: secret})
			heard := map[int]int{}
			err := cl.Pieces(t.Context(), ref, 0, n, func(i int, _ [20]byte) { heard[i]++ })
			if c.ok && err != nil {
				t.Fatalf("Pieces = %v, want nil", err)
			}
			if !c.ok && (!errors.Is(err, trackerclient.ErrUnsigned) || !errors.Is(err, trackerclient.ErrUnavailable)) {
				t.Fatalf("Pieces = %v, want an unavailable tracker's unsigned answer", err)
			}
			for i, k := range heard {
				if k != 1 {
					t.Errorf("piece %d heard %d times, want once", i, k)
				}
			}
			if r := requests.Load(); r != c.requests {
				t.Errorf("%d requests, want %d", r, c.requests)
			}
		})
	}
}
