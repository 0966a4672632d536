package client_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// FuzzMetainfoResponse serves the fuzzed status and body as a tracker's
// answer to a metainfo request and hands what the client returns to
// torrentmeta.Parse, as the mirror does before joining a swarm. A 200's
// body arrives unchanged; any other answer is an error, never info bytes;
// and info bytes Parse accepts are canonical, so the infohash peers agree
// on is the one Build gives for the blob whenever they carry its piece
// hashes.
func FuzzMetainfoResponse(f *testing.F) {
	blob := bytes.Repeat([]byte("blobswarm fuzz "), 40<<10)
	d := digest.FromBytes(blob)
	good, goodHash, err := torrentmeta.Build(d, bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(200, good)
	f.Add(404, []byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 200 || status > 599 || status == http.StatusAccepted {
			// 202 means "ask again later", which Metainfo does until its
			// context ends; TestMetainfoWaitsForTheSeeder covers it.
			status = http.StatusOK
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write(body)
		}))
		defer srv.Close()
		c := trackerclient.New([]string{srv.URL}, trackerclient.Options{Timeout: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := c.Metainfo(ctx, oci.Blob{Registry: "registry.test", Repo: "app", Digest: d})
		switch {
		case status == http.StatusOK:
			if err != nil || !bytes.Equal(info, body) {
				t.Fatalf("200 with %d bytes: got %d bytes, err %v", len(body), len(info), err)
			}
		case err == nil || info != nil:
			t.Fatalf("HTTP %d: info %q, err %v; want an error and no info bytes", status, info, err)
		case status >= 500:
			if !errors.Is(err, trackerclient.ErrUnavailable) {
				t.Fatalf("HTTP %d: %v, want ErrUnavailable so the mirror falls back", status, err)
			}
			return
		default:
			var e errcode.Error
			// The tracker's code is kept; one this mirror does not know
			// becomes UNKNOWN rather than something the tracker never said.
			if errors.As(err, &e) && e.Code != errcode.ErrorCodeUnknown && !bytes.Contains(body, []byte(e.Code.Descriptor().Value)) {
				t.Fatalf("HTTP %d: error code %s is not in the body %q", status, e.Code, body)
			}
			return
		}

		parsed, err := torrentmeta.Parse(info, d)
		if err != nil {
			return
		}
		reencoded, err := bencode.Marshal(parsed)
		if err != nil || !bytes.Equal(reencoded, info) {
			t.Fatalf("accepted info bytes do not re-encode to themselves (%v)", err)
		}
		hash := metainfo.HashBytes(info)
		if (hash == goodHash) != bytes.Equal(info, good) {
			t.Fatal("infohash and info bytes disagree")
		}
		if parsed.Length == int64(len(blob)) && bytes.Equal(parsed.Pieces, pieceHashes(blob, parsed.PieceLength)) && hash != goodHash {
			t.Fatalf("info bytes with the blob's length and piece hashes have infohash %s, Build gives %s", hash, goodHash)
		}
	})
}

// pieceHashes hashes b the way a torrent client verifies its pieces.
func pieceHashes(b []byte, pieceLength int64) []byte {
	var out []byte
	for off := int64(0); off < int64(len(b)); off += pieceLength {
		h := sha1.Sum(b[off:min(off+pieceLength, int64(len(b)))])
		out = append(out, h[:]...)
	}
	return out
}
