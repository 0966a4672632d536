package tracker

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/tracker/api"
)

// requireSecret admits requests that carry the fleet's shared secret:
// announces in the announce URL (BitTorrent clients cannot send headers),
// everything else as a bearer token. Without a configured secret it
// admits everything.
func (t *Tracker) requireSecret(next http.Handler) http.Handler {
	if t.secret == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get(api.SecretParam)
		if r.URL.Path != api.AnnouncePath {
			got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(t.secret)) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		t.log.Warn("request without the fleet's secret refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		if r.URL.Path == api.AnnouncePath {
			// BitTorrent clients read a failure reason from a 200 only.
			b, _ := bencode.Marshal(map[string]string{"failure reason": "this tracker needs the fleet's shared secret in the announce URL"})
			w.Header().Set("Content-Type", "text/plain")
			w.Write(b)
			return
		}
		errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithMessage("this tracker needs the fleet's shared secret (Authorization: Bearer)"))
	})
}
