package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

// prefetch plans before it answers, so that a bad reference gets an error
// status rather than a stream; the stream then reports every blob until
// the summary.
func (a *admin) prefetch(w http.ResponseWriter, r *http.Request) {
	// A web page can make a browser post a form or text anywhere without
	// asking; JSON takes a CORS preflight, which the mirror never grants.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		adminError(w, http.StatusUnsupportedMediaType, adminapi.CodeInvalidRequest,
			fmt.Sprintf("prefetch takes Content-Type application/json, not %q", r.Header.Get("Content-Type")))
		return
	}
	var req adminapi.PrefetchRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		adminError(w, http.StatusBadRequest, adminapi.CodeInvalidRequest, "prefetch request: "+err.Error())
		return
	}
	plan, err := a.plan(r.Context(), req)
	if err != nil {
		var pe *errPrefetch
		if !errors.As(err, &pe) {
			pe = &errPrefetch{status: http.StatusBadGateway, code: adminapi.CodeUpstream, err: err}
		}
		a.m.log.Warn("prefetch refused", "image", req.Image, "err", err)
		adminError(w, pe.status, pe.code, pe.Error())
		return
	}
	a.m.log.Info("prefetch", "image", req.Image, "fleet", req.Fleet, "manifests", len(plan.manifests), "blobs", len(plan.blobs))
	w.Header().Set("Content-Type", adminapi.NDJSON)
	w.WriteHeader(http.StatusOK)
	out := &eventWriter{w: w, enc: json.NewEncoder(w)}
	out.send(adminapi.Event{Type: adminapi.EventResolved, Image: req.Image, Digest: plan.top.Digest.String()})
	for _, pm := range plan.manifests {
		out.send(adminapi.Event{Type: adminapi.EventManifest, Digest: pm.digest.String(), Platform: pm.platform})
	}
	a.fetchAll(r.Context(), plan, req.Fleet, out)
}

// eventWriter writes NDJSON events and flushes each, so bars move live.
type eventWriter struct {
	w   http.ResponseWriter
	enc *json.Encoder
}

func (e *eventWriter) send(ev adminapi.Event) {
	e.enc.Encode(ev)
	http.NewResponseController(e.w).Flush()
}

// blobTask is one blob's progress, shared between its fetch goroutine and
// the event loop.
type blobTask struct {
	ref  oci.Blob
	kind string
	size int64

	mu     sync.Mutex
	done   int64
	source string
	sent   int64 // done as of the last progress event
}

const progressInterval = 250 * time.Millisecond

// fetchAll fetches every blob of the plan at once (the mirror's fetch
// slots bound the real concurrency) and reports progress until all ended.
func (a *admin) fetchAll(ctx context.Context, plan *prefetchPlan, fleet bool, out *eventWriter) {
	tasks := make([]*blobTask, len(plan.blobs))
	type result struct {
		t   *blobTask
		err error
	}
	results := make(chan result, len(tasks))
	for i, b := range plan.blobs {
		t := &blobTask{ref: oci.Blob{Registry: plan.registry, Repo: plan.repo, Digest: b.desc.Digest}, kind: b.kind, size: b.desc.Size}
		tasks[i] = t
		out.send(adminapi.Event{Type: adminapi.EventBlob, Digest: t.ref.Digest.String(), Kind: t.kind, Size: t.size, State: adminapi.StatePending})
		go func() {
			var err error
			if fleet {
				err = a.preheat(ctx, t)
			} else {
				err = a.fetchBlob(ctx, t)
			}
			results <- result{t, err}
		}()
	}
	summary := adminapi.Event{Type: adminapi.EventSummary, Blobs: len(tasks)}
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for left := len(tasks); left > 0; {
		select {
		case res := <-results:
			left--
			ev := res.t.event()
			if res.err != nil {
				ev.State, ev.Error = adminapi.StateFailed, res.err.Error()
				summary.Failed = append(summary.Failed, res.t.ref.Digest.String())
				a.m.log.Warn("prefetch blob failed", "digest", res.t.ref.Digest, "err", res.err)
			} else {
				ev.State, ev.Done = adminapi.StateDone, res.t.size
				summary.Bytes += res.t.size
			}
			out.send(ev)
		case <-tick.C:
			peers := a.peersByDigest()
			for _, t := range tasks {
				if ev, changed := t.progress(); changed {
					ev.Peers = peers[t.ref.Digest]
					out.send(ev)
				}
			}
		case <-ctx.Done():
			// The client left; the fetches go on and land in the store.
			return
		}
	}
	out.send(summary)
}

func (a *admin) peersByDigest() map[digest.Digest]int {
	if a.m.swarm == nil {
		return nil
	}
	peers := map[digest.Digest]int{}
	for _, t := range a.m.swarm.Stats().Torrents {
		if !t.Complete {
			peers[t.Digest] = t.Peers
		}
	}
	return peers
}

func (t *blobTask) event() adminapi.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return adminapi.Event{Type: adminapi.EventBlob, Digest: t.ref.Digest.String(), Kind: t.kind, Size: t.size, Done: t.done, Source: t.source}
}

// progress returns a running event when bytes arrived since the last one.
func (t *blobTask) progress() (adminapi.Event, bool) {
	t.mu.Lock()
	changed := t.done != t.sent
	t.sent = t.done
	t.mu.Unlock()
	ev := t.event()
	ev.State = adminapi.StateRunning
	return ev, changed
}

func (t *blobTask) set(done int64, source string) {
	t.mu.Lock()
	t.done = done
	if source != "" {
		t.source = source
	}
	t.mu.Unlock()
}

// fetchBlob pulls one blob into the store the way a client's request
// would: the swarm when there is a tracker, else the origin.
func (a *admin) fetchBlob(ctx context.Context, t *blobTask) error {
	source := a.sourceWhileFetching()
	fetched, err := a.m.Fetch(ctx, t.ref, t.size, func(verified int64) { t.set(verified, source) })
	if err != nil {
		return err
	}
	if fetched {
		source = a.sourceAfterFetch(t.ref.Digest)
	} else {
		source = adminapi.SourceCache
	}
	t.set(t.size, source)
	return nil
}

func (a *admin) sourceWhileFetching() string {
	if a.m.swarm != nil {
		return adminapi.SourceSwarm
	}
	return adminapi.SourceOrigin
}

// sourceAfterFetch tells swarm from origin: only a blob the swarm
// delivered is seeded under its torrent at commit.
func (a *admin) sourceAfterFetch(d digest.Digest) string {
	if a.m.swarm == nil {
		return adminapi.SourceOrigin
	}
	for _, t := range a.m.swarm.Stats().Torrents {
		if t.Digest == d {
			return adminapi.SourceSwarm
		}
	}
	return adminapi.SourceOrigin
}

// preheat has the tracker's seeder fetch a blob from the origin: asking
// for the blob's torrent starts that, and the seeder's stream of piece
// hashes follows the bytes as they arrive and ends once the blob is
// checked and stored there.
func (a *admin) preheat(ctx context.Context, t *blobTask) error {
	ctx, cancel := context.WithTimeout(ctx, a.m.cfg.MetainfoTimeout)
	defer cancel()
	t.set(0, adminapi.SourceSeeder)
	infoBytes, err := a.m.trackers.Metainfo(ctx, t.ref)
	if err != nil {
		return fmt.Errorf("tracker's seeder: %w", err)
	}
	info, err := torrentmeta.Parse(infoBytes, t.ref.Digest)
	if err != nil {
		return fmt.Errorf("tracker's seeder: %w", err)
	}
	err = a.m.trackers.Pieces(ctx, t.ref, 0, info.NumPieces(), func(i int, _ [20]byte) {
		t.set(min(int64(i+1)*info.PieceLength, info.Length), adminapi.SourceSeeder)
	})
	if err != nil {
		return fmt.Errorf("tracker's seeder: %w", err)
	}
	t.set(t.size, "")
	return nil
}
