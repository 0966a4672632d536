package mirror

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	dto "github.com/prometheus/client_model/go"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
	trackerclient "github.com/blobswarm/blobswarm/tracker/client"
)

// fakeTracker answers metainfo with info and pieces with pieces; it has
// no seeder, so a download's pieces come from the origin's fill.
type fakeTracker struct {
	info          []byte
	pieces        http.HandlerFunc
	piecesAsked   atomic.Int32
	metainfoAsked atomic.Int32
}

func (f *fakeTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case api.MetainfoPath:
		f.metainfoAsked.Add(1)
		w.Header().Set("Content-Type", api.MetainfoType)
		w.Write(f.info)
	case api.PiecesPath:
		f.piecesAsked.Add(1)
		f.pieces(w, r)
	default:
		http.NotFound(w, r)
	}
}

// servesHashes streams the real hash of every piece of blob.
func servesHashes(blob []byte) http.HandlerFunc {
	pl := torrentmeta.PieceLength(int64(len(blob)))
	return func(w http.ResponseWriter, r *http.Request) {
		_, from, err := api.ParsePiecesQuery(r.URL.Query())
		if err != nil {
			errcode.ServeJSON(w, err)
			return
		}
		w.Header().Set("Content-Type", api.PiecesType)
		for off := int64(from) * pl; off < int64(len(blob)); off += pl {
			sum := sha1.Sum(blob[off:min(off+pl, int64(len(blob)))])
			w.Write(sum[:])
		}
	}
}

// swarmFixture is a mirror with a fake tracker in front of an origin that
// holds one blob.
type swarmFixture struct {
	m       *Mirror
	tracker *fakeTracker
	ref     oci.Blob
	blob    []byte
}

// stallAfter sets the mirror's stall timeout.
func stallAfter(d time.Duration) func(*Config) { return func(c *Config) { c.StallTimeout = d } }

func newSwarmFixture(t *testing.T, info func(oci.Blob, []byte) []byte, pieces func([]byte) http.HandlerFunc, configure func(*Config)) *swarmFixture {
	t.Helper()
	o := harness.NewOrigin(t, origin.Config{})
	blob, d := harness.PushRandomBlob(t, o, "team/app", 1<<20+12345)
	ref := oci.Blob{Registry: o.Host(), Repo: "team/app", Digest: d}
	tr := &fakeTracker{info: info(ref, blob), pieces: pieces(blob)}
	trSrv := httptest.NewServer(tr)
	t.Cleanup(trSrv.Close)

	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Upstream = []string{o.Host() + "=" + o.Server.URL}
	cfg.Tracker = []string{trSrv.URL}
	cfg.PeerListen = "127.0.0.1:0"
	configure(&cfg)
	m, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Drain(t.Context())
		m.Close()
	})
	return &swarmFixture{m: m, tracker: tr, ref: ref, blob: blob}
}

func forBlob(ref oci.Blob, blob []byte) []byte {
	info, err := torrentmeta.ForBlob(ref.Digest, int64(len(blob)))
	if err != nil {
		panic(err)
	}
	return info
}

// fetch brings the blob in and checks it is stored whole.
func (f *swarmFixture) fetch(t *testing.T) {
	t.Helper()
	if _, err := f.m.Fetch(t.Context(), f.ref, -1, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	r, err := f.m.store.Open(f.ref.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.blob) {
		t.Fatal("stored bytes differ from the blob")
	}
}

// fallbacks are the origin fallbacks counted for each reason.
func (f *swarmFixture) fallbacks(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, reason := range []string{reasonTrackerDown, reasonTrackerRefused, reasonTrackerBusy, reasonTrackerOrigin, reasonTrackerSlow, reasonTrackerError, "swarm", "pieces"} {
		var d dto.Metric
		if err := f.m.metrics.fallbacks.WithLabelValues(reason).Write(&d); err != nil {
			t.Fatal(err)
		}
		if n := d.GetCounter().GetValue(); n != 0 {
			out[reason] = n
		}
	}
	return out
}

func checkFallbacks(t *testing.T, got map[string]float64, reason string) {
	t.Helper()
	if len(got) != 1 || got[reason] != 1 {
		t.Fatalf("origin fallbacks %v, want one for %q", got, reason)
	}
}

// A torrent whose piece hashes are its own (made from the bytes, or made
// up) is refused: the mirror checks pieces only against the hashes the
// tracker streams for the torrent of the blob's digest and size.
func TestSwarmSourceRefusesOtherTorrents(t *testing.T) {
	built := func(ref oci.Blob, blob []byte) []byte {
		info, _, err := torrentmeta.Build(ref.Digest, bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			panic(err)
		}
		return info
	}
	f := newSwarmFixture(t, built, servesHashes, stallAfter(time.Minute))
	f.fetch(t)
	checkFallbacks(t, f.fallbacks(t), reasonTrackerError)
	if f.tracker.metainfoAsked.Load() != 1 || f.tracker.piecesAsked.Load() != 0 {
		t.Fatalf("tracker asked for metainfo %d and pieces %d times, want once and never",
			f.tracker.metainfoAsked.Load(), f.tracker.piecesAsked.Load())
	}
}

// A tracker whose seeder failed the blob ends the swarm download at once,
// without waiting for a stall, and the origin serves the blob (here its
// bytes are good; a bad blob fails the digest there too).
func TestSwarmSourceEndsWhenTheTrackerFailsTheBlob(t *testing.T) {
	failed := func([]byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithMessage("origin sent other bytes"))
		}
	}
	f := newSwarmFixture(t, forBlob, failed, stallAfter(time.Minute))
	start := time.Now()
	f.fetch(t)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the fetch took %s: it waited for the stall", took)
	}
	checkFallbacks(t, f.fallbacks(t), "swarm")
}

// seeds says whether the mirror's swarm holds blob d whole, to share.
func (f *swarmFixture) seeds(t *testing.T) bool {
	t.Helper()
	if err := f.m.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, ts := range f.m.swarm.Stats().Torrents {
		if ts.Digest == f.ref.Digest {
			return ts.Complete
		}
	}
	return false
}

// A blob the origin delivered after the swarm gave up is shared with the
// fleet once stored, as a swarm download is.
func TestSwarmSourceSeedsWhatTheOriginDelivered(t *testing.T) {
	failed := func([]byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			errcode.ServeJSON(w, errcode.ErrorCodeBlobUnknown.WithMessage("seeder lost it"))
		}
	}
	f := newSwarmFixture(t, forBlob, failed, stallAfter(time.Minute))
	f.fetch(t)
	checkFallbacks(t, f.fallbacks(t), "swarm")
	if !f.seeds(t) {
		t.Fatal("the stored blob is not seeded")
	}
}

// A tracker that cannot be reached for the hashes leaves the download
// going; the stalled swarm's pieces come from the origin, checked against
// their own hashes, and the blob is stored through the swarm.
func TestSwarmSourceGoesOnWhenTheHashesAreLost(t *testing.T) {
	gone := func([]byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
	}
	f := newSwarmFixture(t, forBlob, gone, stallAfter(300*time.Millisecond))
	f.fetch(t)
	checkFallbacks(t, f.fallbacks(t), "pieces")
}

// A tracker whose hash stream stays open but silent (its seeder stuck on
// the origin) is given up after the metainfo timeout, as one that cannot
// be reached: waiting for hashes is no stall, and would last as long as
// the stream.
func TestSwarmSourceGivesUpOnSilentHashes(t *testing.T) {
	silent := func([]byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", api.PiecesType)
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}
	f := newSwarmFixture(t, forBlob, silent, func(c *Config) {
		c.StallTimeout = 300 * time.Millisecond
		c.MetainfoTimeout = time.Second
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := f.m.Fetch(ctx, f.ref, -1, func(int64) {}); err != nil {
		t.Fatalf("fetch with a silent hash stream: %v", err)
	}
	checkFallbacks(t, f.fallbacks(t), "pieces")
}

// With the hashes from the tracker, the stalled swarm's pieces from the
// origin are checked against them.
func TestSwarmSourceChecksPiecesAgainstTheTrackersHashes(t *testing.T) {
	f := newSwarmFixture(t, forBlob, servesHashes, stallAfter(300*time.Millisecond))
	f.fetch(t)
	checkFallbacks(t, f.fallbacks(t), "pieces")
	if f.tracker.piecesAsked.Load() == 0 {
		t.Fatal("the tracker was never asked for the hashes")
	}

	// Hashes that do not match the origin's bytes fail the fill, and the
	// whole blob comes from the origin.
	wrong := func(blob []byte) http.HandlerFunc {
		other := bytes.Clone(blob)
		other[0] ^= 0xff
		return servesHashes(other)
	}
	f = newSwarmFixture(t, forBlob, wrong, stallAfter(300*time.Millisecond))
	f.fetch(t)
	got := f.fallbacks(t)
	if got["pieces"] != 1 || got["swarm"] != 1 {
		t.Fatalf("origin fallbacks %v, want the fill and then the whole blob", got)
	}
}

// The reason a blob went to the origin for want of the tracker names what
// the tracker client saw; an answer from one replica says more than
// another replica's silence.
func TestTrackerReasonNamesWhatHappened(t *testing.T) {
	unavailable := func(errs ...error) error {
		return fmt.Errorf("%w: %w", trackerclient.ErrUnavailable, errors.Join(errs...))
	}
	answer := func(status int, err error) error { return &trackerclient.AnswerError{Status: status, Err: err} }
	down := errors.New("dial tcp 10.0.0.1:8080: connection refused")
	for _, tc := range []struct {
		what string
		err  error
		want string
	}{
		{"no replica reachable", unavailable(down), reasonTrackerDown},
		{"wrong secret", unavailable(fmt.Errorf("HTTP 401: %w", trackerclient.ErrRefused)), reasonTrackerRefused},
		{"unsigned answer", unavailable(trackerclient.ErrUnsigned), reasonTrackerRefused},
		{"origin queue full", unavailable(answer(503, api.ErrorCodeBusy.WithMessage("busy"))), reasonTrackerBusy},
		{"origin unreachable from the tracker", unavailable(answer(503, errcode.ErrorCodeUnavailable.WithMessage("upstream o unreachable"))), reasonTrackerOrigin},
		{"origin answered garbage", unavailable(answer(502, errors.New("tracker answered HTTP 502"))), reasonTrackerOrigin},
		{"tracker's own failure", unavailable(answer(500, errcode.ErrorCodeUnknown.WithMessage("boom"))), reasonTrackerError},
		{"one replica down, the other busy", unavailable(down, answer(503, api.ErrorCodeBusy.WithMessage("busy"))), reasonTrackerBusy},
		{"seeder still fetching at the deadline", fmt.Errorf("waiting for the tracker's seeder: %w", context.DeadlineExceeded), reasonTrackerSlow},
	} {
		if got := trackerReason(tc.err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.what, got, tc.want)
		}
	}
}
