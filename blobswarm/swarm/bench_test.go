//go:build unix

package swarm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/flight"
	"github.com/blobswarm/blobswarm/blobswarm/store"
	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"
	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

// The benchmark's seeder runs in a child process (this test binary again),
// so the parent's CPU time is the leecher's alone.
const (
	envSeedRoot  = "BLOBSWARM_BENCH_SEED_ROOT"
	envSeedBlob  = "BLOBSWARM_BENCH_SEED_DIGEST"
	envSeedPiece = "BLOBSWARM_BENCH_SEED_PIECE"
	envSeedChunk = "BLOBSWARM_BENCH_SEED_CHUNK"
	// BLOBSWARM_BENCH_SIZE is the blob size in MiB (default 256).
	envBenchSize = "BLOBSWARM_BENCH_SIZE"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(envSeedRoot); root != "" {
		if err := serveBenchBlob(root); err != nil {
			fmt.Fprintln(os.Stderr, "bench seeder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkDownload moves one blob from a seeder to a leecher over
// loopback, as a torrent and, as the baseline, over plain HTTP; both end in
// a committed blob in the leecher's store (pieces written, then sha256 and
// fsync). Reported: MB/s and leecher CPU-seconds per GB for each, and the
// swarm/HTTP ratios.
//
//	BLOBSWARM_BENCH_SIZE=1024 go test ./blobswarm/swarm -run '^$' -bench Download -benchtime 3x
func BenchmarkDownload(b *testing.B) {
	size := int64(256)
	if v := os.Getenv(envBenchSize); v != "" {
		mib, err := strconv.ParseInt(v, 10, 64)
		if err != nil || mib <= 0 {
			b.Fatalf("%s=%q: want a size in MiB", envBenchSize, v)
		}
		size = mib
	}
	size <<= 20
	src := openStore(b)
	d := writeBenchBlob(b, src, size)

	for _, piece := range []int64{256 << 10, 1 << 20, 4 << 20} {
		for _, chunk := range []int{16 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("piece=%dKiB/chunk=%dKiB", piece>>10, chunk>>10), func(b *testing.B) {
				benchDownload(b, src, d, size, piece, chunk)
			})
		}
	}
}

func benchDownload(b *testing.B, src *store.Store, d digest.Digest, size, piece int64, chunk int) {
	scheme := torrentmeta.Scheme(func(int64) int64 { return piece })
	f, err := src.Open(d)
	if err != nil {
		b.Fatal(err)
	}
	infoBytes, _, err := scheme.Build(d, f, size)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	peer, httpURL := startBenchSeeder(b, src, d, piece, chunk)

	var swarmRun, httpRun measured
	for b.Loop() {
		httpRun.add(measure(b, func(st *store.Store) error { return fetchHTTP(httpURL, st, d) }))
		swarmRun.add(measure(b, func(st *store.Store) error {
			s, err := New(Config{ListenAddr: net.JoinHostPort(leecherIP, "0"), ChunkSize: chunk}, st, testLogger(b))
			if err != nil {
				return err
			}
			defer s.Close()
			s.bootstrap = []netip.AddrPort{peer}
			return fetchSwarm(b.Context(), s, st, d, infoBytes)
		}))
	}
	gb := float64(size) / 1e9
	b.ReportMetric(swarmRun.mbps(size), "swarm-MB/s")
	b.ReportMetric(httpRun.mbps(size), "http-MB/s")
	b.ReportMetric(swarmRun.mbps(size)/httpRun.mbps(size), "speed-ratio")
	b.ReportMetric(swarmRun.cpuPerRun()/gb, "swarm-cpu-s/GB")
	b.ReportMetric(httpRun.cpuPerRun()/gb, "http-cpu-s/GB")
	b.ReportMetric(swarmRun.cpuPerRun()/httpRun.cpuPerRun(), "cpu-ratio")
}

type measured struct {
	runs      int
	wall, cpu time.Duration
}

func (m *measured) add(o measured) {
	m.runs++
	m.wall += o.wall
	m.cpu += o.cpu
}

func (m measured) mbps(size int64) float64 {
	return float64(size) * float64(m.runs) / 1e6 / m.wall.Seconds()
}

func (m measured) cpuPerRun() float64 { return m.cpu.Seconds() / float64(m.runs) }

// measure runs one fetch into a fresh store and returns its wall and
// process CPU time.
func measure(b *testing.B, fetch func(*store.Store) error) measured {
	dir, err := os.MkdirTemp(b.TempDir(), "leecher")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	cpu0, wall0 := processCPU(b), time.Now()
	if err := fetch(st); err != nil {
		b.Fatal(err)
	}
	return measured{wall: time.Since(wall0), cpu: processCPU(b) - cpu0}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fetchHTTP(url string, st *store.Store, d digest.Digest) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	p, err := st.NewPartial(d)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := io.Copy(p, resp.Body); err != nil {
		p.Abort()
		return err
	}
	return p.Commit()
}

func fetchSwarm(ctx context.Context, s *Swarm, st *store.Store, d digest.Digest, infoBytes []byte) error {
	p, err := st.NewPartial(d)
	if err != nil {
		return err
	}
	fl := flight.New(-1)
	fl.Begin(p)
	defer fl.Release()
	info, err := torrentmeta.Parse(infoBytes, d)
	if err != nil {
		return err
	}
	// The benchmark's torrents carry their real piece hashes: it measures
	// piece lengths other than ForBlob's table. Given all at once, they
	// cost the download what hashes from a tracker that has the blob whole
	// would.
	hashes := func(_ context.Context, got func(int, [20]byte)) error {
		for i := range info.NumPieces() {
			got(i, info.Piece(i).V1Hash().Unwrap())
		}
		return nil
	}
	dl, err := s.Download(ctx, d, infoBytes, nil, fl, hashes, nil)
	if err != nil {
		fl.Abort()
		return err
	}
	defer dl.Drop()
	return fl.Commit()
}

// writeBenchBlob puts size pseudo-random bytes into st without holding
// them in memory: one pass to learn the digest, one to store them.
func writeBenchBlob(b *testing.B, st *store.Store, size int64) digest.Digest {
	gen := func() io.Reader { return io.LimitReader(&prng{rand.NewPCG(7, 7)}, size) }
	digester := digest.Canonical.Digester()
	if _, err := io.Copy(digester.Hash(), gen()); err != nil {
		b.Fatal(err)
	}
	d := digester.Digest()
	p, err := st.NewPartial(d)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := io.Copy(p, gen()); err != nil {
		b.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		b.Fatal(err)
	}
	return d
}

type prng struct{ src *rand.PCG }

func (r *prng) Read(b []byte) (int, error) {
	for i := 0; i < len(b); i += 8 {
		v := r.src.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return len(b), nil
}

// startBenchSeeder runs the child seeder and returns its peer address and
// the blob's HTTP URL. The child exits when its stdin closes.
func startBenchSeeder(b *testing.B, src *store.Store, d digest.Digest, piece int64, chunk int) (netip.AddrPort, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envSeedRoot+"="+src.Root(),
		envSeedBlob+"="+d.String(),
		envSeedPiece+"="+strconv.FormatInt(piece, 10),
		envSeedChunk+"="+strconv.Itoa(chunk),
	)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	var port int
	var httpAddr string
	if _, err := fmt.Fscanln(bufio.NewReader(stdout), &port, &httpAddr); err != nil {
		b.Fatalf("bench seeder did not start: %v", err)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(seederIP), uint16(port)), "http://" + httpAddr + "/blob"
}

// serveBenchBlob is the child: it seeds the blob from root's store and
// serves the same file over HTTP until stdin closes.
func serveBenchBlob(root string) error {
	d, err := digest.Parse(os.Getenv(envSeedBlob))
	if err != nil {
		return err
	}
	piece, err := strconv.ParseInt(os.Getenv(envSeedPiece), 10, 64)
	if err != nil {
		return err
	}
	chunk, err := strconv.Atoi(os.Getenv(envSeedChunk))
	if err != nil {
		return err
	}
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	scheme := torrentmeta.Scheme(func(int64) int64 { return piece })
	f, err := st.Open(d)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	infoBytes, _, err := scheme.Build(d, f, fi.Size())
	if err != nil {
		return err
	}
	s, err := New(Config{ListenAddr: net.JoinHostPort(seederIP, "0"), ChunkSize: chunk}, st, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer s.Close()
	// Seed would use ForBlob's piece length; the benchmark picks its own.
	blob, err := torrentstore.Stored(st, d)
	if err != nil {
		return err
	}
	if _, err := s.add(d, infoBytes, blob, nil); err != nil {
		return err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(seederIP, "0"))
	if err != nil {
		return err
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, st.Path(d))
	}))
	fmt.Println(s.ListenPort(), l.Addr())
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}
