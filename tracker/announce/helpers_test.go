package announce_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blobswarm/blobswarm/tracker/announce"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// writeCounter is a real store that also counts the writes made to it.
type writeCounter struct {
	peerstore.Store
	writes atomic.Int64
}

func (s *writeCounter) Announce(ctx context.Context, ih peerstore.InfoHash, p peerstore.Peer, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.Announce(ctx, ih, p, ttl)
}

func (s *writeCounter) Remove(ctx context.Context, ih peerstore.InfoHash, id peerstore.PeerID) error {
	s.writes.Add(1)
	return s.Store.Remove(ctx, ih, id)
}

type env struct {
	store *writeCounter
	reg   *prometheus.Registry
	url   string // of the announce endpoint
}

func newEnv(t *testing.T, cfg announce.Config) *env {
	return newEnvWithStore(t, peerstore.NewMemory(peerstore.MemoryOptions{}), cfg)
}

func newEnvWithStore(t *testing.T, store peerstore.Store, cfg announce.Config) *env {
	e := &env{store: &writeCounter{Store: store}, reg: prometheus.NewRegistry()}
	cfg.Registerer = e.reg
	h, err := announce.New(e.store, cfg)
	if err != nil {
		t.Fatalf("announce.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/announce", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/announce"
	return e
}

var testIH = peerstore.InfoHash{0xab, '+', ' ', '%', '&', '=', 0, 0xff}

func peerID(n int) peerstore.PeerID {
	return peerstore.PeerID{'-', 'T', 'T', byte(n)}
}

// query is an announce as anacrolix/torrent sends it.
func query(ih peerstore.InfoHash, id peerstore.PeerID, port uint16, left int64) url.Values {
	return url.Values{
		"info_hash":  {string(ih[:])},
		"peer_id":    {string(id[:])},
		"port":       {strconv.Itoa(int(port))},
		"uploaded":   {"0"},
		"downloaded": {"0"},
		"left":       {strconv.FormatInt(left, 10)},
		"compact":    {"1"},
	}
}

// get announces and returns the decoded answer.
func (e *env) get(t *testing.T, rawQuery string) map[string]any {
	t.Helper()
	resp, err := http.Get(e.url + "?" + rawQuery)
	if err != nil {
		t.Fatalf("GET announce: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read announce answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("announce status %s: %q", resp.Status, body)
	}
	var d map[string]any
	if err := bencode.Unmarshal(body, &d); err != nil {
		t.Fatalf("answer %q is not a bencoded dict: %v", body, err)
	}
	return d
}

func (e *env) announceOK(t *testing.T, q url.Values) map[string]any {
	t.Helper()
	d := e.get(t, q.Encode())
	if reason, ok := d["failure reason"]; ok {
		t.Fatalf("announce failed: %v", reason)
	}
	return d
}

func (e *env) seed(t *testing.T, ih peerstore.InfoHash, peers ...peerstore.Peer) {
	t.Helper()
	for _, p := range peers {
		if err := e.store.Store.Announce(context.Background(), ih, p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// counter returns the value of a counter in reg; label and value pick one
// series of a vector, and are empty for a plain counter.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
