// Package trackertest serves a real tracker inside the test process, for
// tests of its HTTP API and of clients of it.
//
// It is not part of harness itself: tracker packages' own tests
// (tracker/tags) import harness, and a harness importing the tracker would
// make that an import cycle.
package trackertest

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/tracker"
)

// Tracker is a tracker served on loopback until the test ends.
type Tracker struct {
	URL  string
	Data string
}

// Start serves a tracker in front of origin o that answers 202 for a blob
// whose size the origin has not said within wait.
func Start(t testing.TB, o *harness.Origin, wait time.Duration) Tracker {
	t.Helper()
	return StartWith(t, o, wait, nil)
}

// StartWith is Start with the tracker's configuration and its HTTP server
// changed by configure (when not nil) before they start.
func StartWith(t testing.TB, o *harness.Origin, wait time.Duration, configure func(*tracker.Config, *http.Server)) Tracker {
	t.Helper()
	// Listening first gives the tracker its own address, which its
	// default announce URL is made of.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tracker.Defaults()
	cfg.Listen = ln.Addr().String()
	cfg.Data = t.TempDir()
	cfg.PeerListen = "127.0.0.1:0"
	cfg.Upstream = []string{o.Host() + "=" + o.Server.URL}
	cfg.MetainfoWait = wait
	hs := &http.Server{}
	if configure != nil {
		configure(&cfg, hs)
	}
	tr, err := tracker.New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	hs.Handler = tr.Handler()
	srv := &httptest.Server{Listener: ln, Config: hs}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		tr.Close()
	})
	return Tracker{URL: srv.URL, Data: cfg.Data}
}
