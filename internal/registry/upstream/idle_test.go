package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// stalling serves a blob's first half and, until release is closed,
// nothing more.
func stalling(t *testing.T, blob []byte, idle time.Duration) (cl *upstream.Client, host string, release chan struct{}) {
	t.Helper()
	release = make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:len(blob)/2])
		http.NewResponseController(w).Flush()
		select {
		case <-release:
			w.Write(blob[len(blob)/2:])
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	u, _ := url.Parse(srv.URL)
	ep := upstream.Endpoint{Host: u.Host, URL: u}
	return upstream.New(upstream.Config{Endpoints: map[string]upstream.Endpoint{ep.Host: ep}, IdleTimeout: idle}), ep.Host, release
}

// A body that stops sending while it is read fails with ErrIdle instead of
// holding its reader for ever.
func TestStalledBodyFailsIdle(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 64<<10)
	cl, host, _ := stalling(t, blob, 50*time.Millisecond)
	body, _, err := cl.GetBlob(context.Background(), host, "team/app", digest.FromBytes(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, body)
	if !errors.Is(err, upstream.ErrIdle) {
		t.Fatalf("read %d bytes, then err %v; want ErrIdle", n, err)
	}
}

// Time the reader spends away from the body does not count: a body left
// unread for longer than the idle timeout still reads whole.
func TestUnreadBodyIsNotIdle(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 64<<10)
	cl, host, release := stalling(t, blob, 50*time.Millisecond)
	close(release)
	body, _, err := cl.GetBlob(context.Background(), host, "team/app", digest.FromBytes(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	time.Sleep(200 * time.Millisecond)
	got, err := io.ReadAll(body)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("read %d bytes, err %v; want the whole blob", len(got), err)
	}
}
