package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

func (a *admin) status(w http.ResponseWriter, r *http.Request) {
	m := a.m
	var st adminapi.Status
	cs := m.cache.Stats()
	st.Cache = adminapi.Cache{Bytes: cs.Bytes, Blobs: cs.Blobs, QuotaBytes: cs.Quota, Evictions: cs.Evictions, EvictedBytes: cs.EvictedBytes}
	st.Registries = m.registries()
	st.DefaultRegistry = m.cfg.DefaultUpstream
	st.InflightFetches = int(gaugeValue(m.metrics.inflight))
	s := m.Stats()
	st.Bytes = adminapi.Bytes{Served: s.BytesServed, FromOrigin: s.BytesFromOrigin, FromPeers: s.BytesFromPeers,
		FromSeeder: s.BytesFromSeeder, Uploaded: s.BytesUploaded}
	if m.swarm != nil {
		sw, err := a.rates.swarm(r.Context(), m)
		if err != nil {
			return
		}
		st.Swarm = sw
	}
	st.Trackers = a.trackers(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// trackers checks every configured tracker's health endpoint at once.
func (a *admin) trackers(ctx context.Context) []adminapi.Tracker {
	out := make([]adminapi.Tracker, len(a.m.cfg.Tracker))
	var wg sync.WaitGroup
	for i, u := range a.m.cfg.Tracker {
		out[i].URL = u
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/healthz", nil)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp, err := a.health.Do(req)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				out[i].Error = fmt.Sprintf("health check answered HTTP %d", resp.StatusCode)
				return
			}
			out[i].Reachable = true
		})
	}
	wg.Wait()
	return out
}

// rateSampler turns the swarm's cumulative counters into rates: against
// the previous status request when it is recent, else over a short wait.
type rateSampler struct {
	mu   sync.Mutex
	prev *swarmSample
}

type swarmSample struct {
	at                   time.Time
	downloaded, uploaded int64
	completed            map[digest.Digest]int64
}

const (
	rateWindow    = 300 * time.Millisecond
	rateMaxWindow = 30 * time.Second
)

func (rs *rateSampler) swarm(ctx context.Context, m *Mirror) (*adminapi.Swarm, error) {
	sample := func() (*swarmSample, []adminapiTorrent) {
		st := m.swarm.Stats()
		s := &swarmSample{at: time.Now(), downloaded: st.Downloaded, uploaded: st.Uploaded, completed: map[digest.Digest]int64{}}
		ts := make([]adminapiTorrent, len(st.Torrents))
		for i, t := range st.Torrents {
			s.completed[t.Digest] = t.Completed
			ts[i] = adminapiTorrent{d: t.Digest, t: adminapi.Torrent{Digest: t.Digest.String(), Size: t.Length,
				Completed: t.Completed, Complete: t.Complete, Peers: t.Peers}}
		}
		return s, ts
	}
	rs.mu.Lock()
	prev := rs.prev
	rs.mu.Unlock()
	if prev == nil || time.Since(prev.at) > rateMaxWindow || time.Since(prev.at) < rateWindow/3 {
		prev, _ = sample()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(rateWindow):
		}
	}
	cur, torrents := sample()
	rs.mu.Lock()
	rs.prev = cur
	rs.mu.Unlock()
	dt := cur.at.Sub(prev.at).Seconds()
	out := &adminapi.Swarm{
		DownloadRate: float64(cur.downloaded-prev.downloaded) / dt,
		UploadRate:   float64(cur.uploaded-prev.uploaded) / dt,
		Active:       []adminapi.Torrent{},
	}
	for _, t := range torrents {
		if t.t.Complete && t.t.Peers == 0 {
			out.Seeding++
			continue
		}
		if before, ok := prev.completed[t.d]; ok {
			t.t.Rate = float64(t.t.Completed-before) / dt
		}
		out.Active = append(out.Active, t.t)
	}
	return out, nil
}

type adminapiTorrent struct {
	d digest.Digest
	t adminapi.Torrent
}

// gaugeValue reads a gauge of the mirror's metrics, so that status and
// /metrics tell the same numbers.
func gaugeValue(g prometheus.Gauge) float64 {
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		return 0
	}
	return d.GetGauge().GetValue()
}
