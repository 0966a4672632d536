package announce_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/blobswarm/blobswarm/blobswarm/peerfilter"
	"github.com/blobswarm/blobswarm/internal/testredis"
	"github.com/blobswarm/blobswarm/tracker/announce"
	"github.com/blobswarm/blobswarm/tracker/api"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// loadShape is how the benchmark's peers are spread over swarms.
type loadShape struct{ swarms, perSwarm int }

func (s loadShape) peers() int { return s.swarms * s.perSwarm }

// BenchmarkAnnounceLoad drives real HTTP announces over loopback, from many
// goroutines at once, as the peers of many swarms re-announcing: the
// tracker's steady state during a rollout. Each swarm shape is measured
// three ways on the same kind of server and client:
//
//   - http-noop: a handler that answers every request with a fixed
//     announce answer of the real size, without parsing or storing
//     anything. The baseline: what bare HTTP costs on this machine.
//   - memory: the announce handler on the in-memory peer store, configured
//     as `blobswarm tracker` configures it.
//   - redis: the same on the Redis store, against a private redis-server
//     (skipped when none is installed).
//
// Each reports announces/s; the ratio to http-noop is what the tracker's
// own work costs. Before the timed loop every peer announces once, and the
// memory that took is reported per peer: the Go heap in use for the memory
// store (after a GC), Redis's used_memory for Redis, each less what it was
// once the first swarm had announced (connections open, handler warm). The client shares the two cores with the server, equally in all
// three cases.
func BenchmarkAnnounceLoad(b *testing.B) {
	for _, shape := range []loadShape{{swarms: 200, perSwarm: 100}, {swarms: 5, perSwarm: 2000}} {
		b.Run(fmt.Sprintf("swarms=%d,peers=%d", shape.swarms, shape.perSwarm), func(b *testing.B) {
			benchmarkShape(b, shape)
		})
	}
}

func benchmarkShape(b *testing.B, shape loadShape) {
	queries := announceQueries(shape)
	client := loadClient()

	// The first swarm fills before memory is measured, so that the
	// connections and the handler's own state are there on both sides of
	// the difference.
	warm, rest := queries[:shape.perSwarm], queries[shape.perSwarm:]
	mem := startAnnounceServer(b, peerstore.NewMemory(peerstore.MemoryOptions{}))
	announceAll(b, client, mem, warm)
	heapBefore := heapInUse()
	announceAll(b, client, mem, rest)
	memPerPeer := float64(heapInUse()-heapBefore) / float64(len(rest))
	// The baseline answers with what the tracker answered, byte for byte.
	sample := fetchAnnounce(b, client, mem+"?"+queries[0])

	var rdb string
	var redisPerPeer float64
	if _, err := exec.LookPath("redis-server"); err == nil {
		addr := testredis.Start(b)
		opts, err := redis.ParseURL("redis://" + addr)
		if err != nil {
			b.Fatal(err)
		}
		rc := redis.NewClient(opts)
		b.Cleanup(func() { rc.Close() })
		rdb = startAnnounceServer(b, peerstore.NewRedis(rc, peerstore.RedisOptions{}))
		announceAll(b, client, rdb, warm)
		before := redisUsedMemory(b, rc)
		announceAll(b, client, rdb, rest)
		redisPerPeer = float64(redisUsedMemory(b, rc)-before) / float64(len(rest))
	}

	noop := startServer(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(sample)
	}))
	b.Run("http-noop", func(b *testing.B) {
		runAnnounces(b, client, noop, queries)
	})
	b.Run("memory", func(b *testing.B) {
		runAnnounces(b, client, mem, queries)
		b.ReportMetric(memPerPeer, "heap-B/peer")
	})
	b.Run("redis", func(b *testing.B) {
		if rdb == "" {
			testredis.Start(b) // skips, naming what to install
			return
		}
		runAnnounces(b, client, rdb, queries)
		b.ReportMetric(redisPerPeer, "redis-B/peer")
	})
}

// announceQueries builds one announce per peer, as anacrolix/torrent sends
// it (compact=1, numwant=200), for shape's swarms. One peer in five seeds.
// Peers differ by id and port; all come from 127.0.0.1.
func announceQueries(shape loadShape) []string {
	queries := make([]string, 0, shape.peers())
	for s := range shape.swarms {
		ih := sha1.Sum([]byte("swarm " + strconv.Itoa(s)))
		for p := range shape.perSwarm {
			n := s*shape.perSwarm + p
			var id [20]byte
			copy(id[:], "-BS0001-")
			binary.BigEndian.PutUint64(id[12:], uint64(n))
			left := int64(0)
			if n%5 != 0 {
				left = int64(n*7919)%(64<<20) + 1
			}
			queries = append(queries, url.Values{
				"info_hash":  {string(ih[:])},
				"peer_id":    {string(id[:])},
				"port":       {strconv.Itoa(1024 + p)},
				"uploaded":   {"0"},
				"downloaded": {"0"},
				"left":       {strconv.FormatInt(left, 10)},
				"numwant":    {"200"},
				"compact":    {"1"},
			}.Encode())
		}
	}
	return queries
}

// loadParallelism is goroutines per core in the timed loops and the fill.
const loadParallelism = 32

// loadClient keeps a connection per goroutine alive, as each mirror keeps
// its own to the tracker, so the loops measure announces, not handshakes.
func loadClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = loadParallelism * runtime.GOMAXPROCS(0)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// startAnnounceServer serves an announce handler on store the way the
// tracker sets it up (default interval and peer cap, a peer filter, its
// metrics registered) and returns its announce URL.
func startAnnounceServer(b *testing.B, store peerstore.Store) string {
	h, err := announce.New(store, announce.Config{
		Interval:   5 * time.Second,
		MaxPeers:   50,
		PeerFilter: func(a netip.Addr) bool { return peerfilter.Allowed(nil, a) },
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return startServer(b, h)
}

func startServer(b *testing.B, h http.Handler) string {
	mux := http.NewServeMux()
	mux.Handle("GET "+api.AnnouncePath, h)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv.URL + api.AnnouncePath
}

// announceAll sends every query once, from loadParallelism goroutines per
// core, untimed.
func announceAll(b *testing.B, client *http.Client, base string, queries []string) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range loadParallelism * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(queries) {
					return
				}
				if err := announceOnce(client, base+"?"+queries[i]); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// runAnnounces is the timed loop: every goroutine announces as the next
// peer in turn, so each announce renews a peer already in its swarm.
func runAnnounces(b *testing.B, client *http.Client, base string, queries []string) {
	var next atomic.Int64
	b.SetParallelism(loadParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)-1) % len(queries)
			if err := announceOnce(client, base+"?"+queries[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
}

// announceOnce sends one announce and checks it was answered, not failed.
func announceOnce(client *http.Client, u string) error {
	body, err := get(client, u)
	if err != nil {
		return err
	}
	if bytes.Contains(body, []byte("failure reason")) {
		return fmt.Errorf("announce failed: %q", body)
	}
	return nil
}

func fetchAnnounce(b *testing.B, client *http.Client, u string) []byte {
	body, err := get(client, u)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func get(client *http.Client, u string) ([]byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read announce answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("announce: HTTP %d: %q", resp.StatusCode, body)
	}
	return body, nil
}

// heapInUse is the Go heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// redisUsedMemory is what Redis reports it allocated (INFO memory).
func redisUsedMemory(b *testing.B, rc *redis.Client) int64 {
	info, err := rc.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("redis used_memory %q: %v", v, err)
			}
			return n
		}
	}
	b.Fatalf("no used_memory in redis INFO memory: %q", info)
	return 0
}
