package mirror

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

// admin serves the API `mirrorctl` talks to; see package adminapi for the
// endpoints.
type admin struct {
	m     *Mirror
	rates rateSampler
	// health checks trackers; short, so a down tracker does not make
	// `mirrorctl status` hang.
	health *http.Client
}

func (m *Mirror) adminHandler() http.Handler {
	a := &admin{m: m, health: &http.Client{Timeout: 2 * time.Second}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adminapi.StatusPath, a.status)
	mux.HandleFunc("POST "+adminapi.PrefetchPath, a.prefetch)
	mux.HandleFunc(adminapi.Prefix, func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, adminapi.CodeNotFound, "no admin endpoint "+r.Method+" "+r.URL.Path)
	})
	return a.requireToken(mux)
}

// requireToken lets a request through only with the configured bearer
// token. Without one configured the API answers loopback clients only:
// anyone else who reaches a mirror listening beyond loopback could fill
// its disk with prefetches.
func (a *admin) requireToken(next http.Handler) http.Handler {
	want := a.m.cfg.AdminToken
	if want == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !fromLoopback(r) {
				adminError(w, http.StatusForbidden, adminapi.CodeDenied, "the admin API answers only loopback clients unless the mirror has an admin-token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="blobswarm-admin"`)
			adminError(w, http.StatusUnauthorized, adminapi.CodeUnauthorized, "the admin API needs the mirror's admin token (mirrorctl --token or MIRRORCTL_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fromLoopback reports whether the request came from this host's
// loopback interface.
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func adminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(adminapi.ErrorBody{Errors: []adminapi.ErrorEntry{{Code: code, Message: msg}}})
}

// registries lists what the configuration names: the default upstream
// first, then every host of registry, upstream and credentials.
func (m *Mirror) registries() []adminapi.Registry {
	hosts := []string{m.cfg.DefaultUpstream}
	for _, h := range m.upstream.Registries() {
		if h != m.cfg.DefaultUpstream {
			hosts = append(hosts, h)
		}
	}
	out := make([]adminapi.Registry, len(hosts))
	for i, h := range hosts {
		out[i] = adminapi.Registry{Host: h, URL: m.upstream.Endpoint(h).URL.String()}
	}
	return out
}
