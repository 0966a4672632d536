package upstream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// rangeUpstream serves one blob through answer, which decides how a
// request is answered.
func rangeUpstream(t *testing.T, answer http.HandlerFunc) (*upstream.Client, string) {
	t.Helper()
	srv := httptest.NewServer(answer)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ep := upstream.Endpoint{Host: u.Host, URL: u}
	return upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{ep.Host: ep}}), ep.Host
}

func TestGetBlobRange(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 100)
	d := digest.FromBytes(blob)
	honest := func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}
	for _, c := range []struct {
		name   string
		answer http.HandlerFunc
		ok     bool
	}{
		{"honoured", honest, true},
		{"range ignored", func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Range")
			honest(w, r)
		}, false},
		{"other span", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-99/%d", len(blob)))
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(blob[:100])
		}, false},
		{"not found", http.NotFound, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, host := rangeUpstream(t, c.answer)
			body, err := cl.GetBlobRange(context.Background(), host, "team/app", d, 250, 300)
			if !c.ok {
				if err == nil {
					body.Close()
					t.Fatal("accepted an answer that is not bytes 250-549")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			got, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, blob[250:550]) {
				t.Fatalf("got %d bytes that are not blob[250:550]", len(got))
			}
		})
	}
}
