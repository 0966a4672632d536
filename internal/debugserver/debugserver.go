// Package debugserver serves Go's runtime profiles (net/http/pprof) on a
// listener of their own. It is off unless an address is given: the
// registry and tracker listeners face clients and the fleet, while
// profiles (which also show the command line) are for whoever runs the
// process, so it belongs on localhost or a management network.
package debugserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Handler serves the profiles under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Server is a running debug listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Start serves Handler on addr until Close. An empty addr starts nothing
// and returns a Server whose Close does nothing.
func Start(addr string, log *slog.Logger) (*Server, error) {
	if addr == "" {
		return &Server{}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug-listen %q: %w", addr, err)
	}
	// No write timeout: a CPU profile answers only after the seconds it
	// was asked to record.
	s := &Server{srv: &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("profiles listening", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return s, nil
}

// Addr is where the server listens; nil when it was not started.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the listener and any profile being recorded.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.done
	return err
}
