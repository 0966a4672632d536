package tracker

import (
	"bytes"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// credential is what an endpoint asks of a request besides an address
// inside peer-cidr.
type credential int

const (
	// addressOnly: /metrics, which Prometheus scrapes without a fleet
	// credential; it tells request counts, not blobs or peers.
	addressOnly credential = iota
	// announceToken: announces (api.AnnounceHeader).
	announceToken
	// apiToken: metainfo, pieces and tags (Authorization: Bearer).
	apiToken
)

// admit serves a request only from inside peer-cidr and, when the fleet
// has a secret, only with the credential the endpoint takes. Every
// endpoint but the probes goes through it: whoever reaches the tracker can
// otherwise make its seeder fetch any blob with the tracker's upstream
// credentials. Refusals are what the caller's protocol reads: a bencoded
// failure reason for an announce, an OCI error body otherwise.
func (t *Tracker) admit(want credential, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.admitsAddress(r.RemoteAddr) {
			t.log.Warn("request from outside peer-cidr refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			t.refuse(w, r, "peer address not allowed", api.ErrorCodeNotAdmitted.WithMessage("this tracker admits requests from peer-cidr only"))
			return
		}
		if t.keys == nil || want == addressOnly || t.hasCredential(r, want) {
			next.ServeHTTP(w, r)
			return
		}
		t.log.Warn("request without the fleet's credential refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		t.refuse(w, r, "this tracker needs the fleet's secret (tracker-secret-file on the mirror)",
			errcode.ErrorCodeUnauthorized.WithMessage("this tracker needs the fleet's secret (tracker-secret-file on the mirror)"))
	})
}

func (t *Tracker) admitsAddress(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && peerfilter.Allowed(t.peerCIDRs, a.Unmap())
}

func (t *Tracker) hasCredential(r *http.Request, want credential) bool {
	got, token := r.Header.Get(api.AnnounceHeader), t.keys.AnnounceToken()
	if want == apiToken {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = t.keys.APIToken()
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func (t *Tracker) refuse(w http.ResponseWriter, r *http.Request, reason string, e errcode.Error) {
	if r.URL.Path == api.AnnouncePath {
		// BitTorrent clients read a failure reason from a 200 only.
		b, _ := bencode.Marshal(map[string]string{"failure reason": reason})
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
		return
	}
	errcode.ServeJSON(w, e)
}

// signed signs the answers of next with the fleet's key (api.Keys.Sign),
// so a mirror reaching the tracker over plain HTTP can tell its answers
// from a man in the middle's. The answers are small (info bytes, a
// manifest, an error) and held whole to be signed; the piece-hash stream
// signs itself (see servePieces).
func (t *Tracker) signed(next http.Handler) http.Handler {
	if t.keys == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &answer{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		t.keys.Sign(r, rec.status, rec.header, rec.body.Bytes())
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	})
}

// answer holds a handler's answer until it is signed.
type answer struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(status int) {
	if !a.wrote {
		a.status, a.wrote = status, true
	}
}

func (a *answer) Write(b []byte) (int, error) {
	a.wrote = true
	return a.body.Write(b)
}
