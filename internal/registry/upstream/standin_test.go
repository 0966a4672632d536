package upstream_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// countingListener accepts connections on addr and closes them, counting
// them: a stand-in for a host that must never be connected to.
func countingListener(t *testing.T, addr string) (host string, accepts *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepts = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepts
}

// recorder is a registry stand-in that answers with answer and keeps the
// Authorization header of every request.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newRecorder(t *testing.T, tls bool, answer http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.mu.Unlock()
		answer(w, req)
	})
	if tls {
		r.Server = httptest.NewTLSServer(h)
	} else {
		r.Server = httptest.NewServer(h)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.auths...)
}

func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, http.StatusTemporaryRedirect)
	}
}

// client reaches registry "reg.test" at srv with a static token, trusting
// the test servers' certificates.
func client(t *testing.T, srv *httptest.Server, cfg upstream.Config) *upstream.Client {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	cfg.Endpoints = map[string]upstream.Endpoint{"reg.test": {Host: "reg.test", URL: u, Creds: upstream.Credentials{Token: "s3cret"}}}
	roots := x509.NewCertPool()
	if srv.Certificate() != nil {
		roots.AddCert(srv.Certificate())
	}
	cfg.HTTP = upstream.HTTPClient(5*time.Second, roots)
	return upstream.New(cfg)
}

var blob = []byte("layer bytes")

func serveBlob(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
	w.Write(blob)
}
