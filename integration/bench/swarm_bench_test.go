package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// What a mirror counts about where its bytes came from.
const (
	receivedMetric  = "blobswarm_mirror_received_bytes_total"
	fallbacksMetric = "blobswarm_mirror_origin_fallbacks_total"
)

// BenchmarkSwarmMirror compares two fresh mirror processes fetching the
// same BENCH_BLOB_SIZE blob (default 1 GiB) that neither has: one through
// the swarm, from a `blobswarm tracker` whose seeder already holds the
// blob, and one without a tracker, straight from the origin process. For
// each it reports the client's throughput and time to first byte, the
// mirror's CPU time per GB and its peak RSS, and the CPU time the side
// that sent the bytes (seeder or origin) spent.
//
// A mirror's CPU is counted until the blob is in its store, not only until
// the client has the last byte: the swarm path hashes the whole file again
// after the last piece (pieces arrive out of order), the origin path hashes
// as it streams, and both are part of what a fetch costs.
//
// Every process has its own loopback address for peer connections, since
// the tracker hands out the address an announce came from.
func BenchmarkSwarmMirror(b *testing.B) {
	size := blobSize(b)
	harness.Binary(b) // a build failure should not wait for the upload
	o := harness.StartOriginProcess(b)
	d := pushRandomBlob(b, o.URL, size)
	tr := harness.Start(b, "tracker", "--data", b.TempDir(), "--peer-listen", "127.0.0.2:0",
		"--upstream", upstreamHost+"="+o.URL, "--log-level", "warn")
	warmSeeder(b, tr, d)
	path := "/v2/" + benchRepo + "/blobs/" + d.String()
	fetch(b, o.URL+path, size, 0) // the origin's file in the page cache, as the seeder's is

	var viaSwarm, viaOrigin coldRun
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		swarmData, originData := b.TempDir(), b.TempDir()
		sm := startMirror(b, o, swarmData, "--tracker", tr.URL(), "--peer-listen", "127.0.0.3:0")
		om := startMirror(b, o, originData)
		b.StartTimer()
		// Alternate who goes first, so neither always follows the other.
		if i%2 == 0 {
			viaSwarm.add(fetchCold(b, sm, swarmData, path, d, size, tr.Pid()))
			viaOrigin.add(fetchCold(b, om, originData, path, d, size, o.Pid))
		} else {
			viaOrigin.add(fetchCold(b, om, originData, path, d, size, o.Pid))
			viaSwarm.add(fetchCold(b, sm, swarmData, path, d, size, tr.Pid()))
		}
		b.StopTimer()
		checkFromSeeder(b, sm, size)
		sm.Stop()
		om.Stop()
		b.StartTimer()
	}
	b.ReportMetric(viaSwarm.mbps(), "swarm-MB/s")
	b.ReportMetric(viaOrigin.mbps(), "origin-MB/s")
	b.ReportMetric(viaSwarm.mbps()/viaOrigin.mbps(), "ratio")
	b.ReportMetric(viaSwarm.cpuPerGB(), "swarm-mirror-CPU-s/GB")
	b.ReportMetric(viaOrigin.cpuPerGB(), "origin-mirror-CPU-s/GB")
	b.ReportMetric(viaSwarm.meanTTFB(), "swarm-TTFB-ms")
	b.ReportMetric(float64(viaSwarm.peakRSS)/(1<<20), "swarm-peak-RSS-MiB")
	printSwarmTable(os.Stdout, size, viaSwarm, viaOrigin)
}

// warmSeeder has the tracker's seeder fetch the blob from the origin and
// waits until it holds all of it: the tracker streams the blob's piece
// hashes as they arrive and ends the answer once the whole blob is checked
// and stored.
func warmSeeder(b *testing.B, tr *harness.Process, d digest.Digest) {
	b.Helper()
	ref := oci.Blob{Registry: upstreamHost, Repo: benchRepo, Digest: d}
	u := tr.URL() + api.PiecesPath + "?" + api.PiecesQuery(ref, 0).Encode()
	// A bound against a hang: the seeder streams, hashes and stores the blob.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		b.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatalf("tracker's seeder did not finish fetching %s from the origin: %v", d, err)
	}
}

// coldRun accumulates what mirror processes took to fetch a blob they did
// not have. transfer.cpu is the mirror's, until the blob was stored.
type coldRun struct {
	transfer
	stored      time.Duration // summed: request sent to blob in the store
	upstreamCPU time.Duration // summed: CPU of the process that sent the bytes
	peakRSS     int64         // the highest of the mirrors'
}

func (r *coldRun) add(u coldRun) {
	r.transfer.add(u.transfer)
	r.stored += u.stored
	r.upstreamCPU += u.upstreamCPU
	r.peakRSS = max(r.peakRSS, u.peakRSS)
}

func (r coldRun) upstreamCPUPerGB() float64 {
	return r.upstreamCPU.Seconds() / (float64(r.bytes) / 1e9)
}

func (r coldRun) meanStored() time.Duration { return r.stored / time.Duration(r.n) }

// fetchCold GETs the blob through mirror m, whose store is in data, and
// waits until the mirror has committed it. upstreamPid is the process the
// bytes come from.
func fetchCold(b *testing.B, m *harness.Process, data, path string, d digest.Digest, size int64, upstreamPid int) coldRun {
	b.Helper()
	cpu0, up0 := cpuTime(b, m.Pid()), cpuTime(b, upstreamPid)
	start := time.Now()
	t := fetch(b, m.URL()+path, size, 0)
	// Polling the file, not /metrics, so the wait costs the mirror nothing.
	harness.Eventually(b, "blob in the mirror's store", func() bool {
		_, err := os.Stat(harness.BlobPath(data, d))
		return err == nil
	})
	stored := time.Since(start)
	t.cpu = cpuTime(b, m.Pid()) - cpu0
	rss, err := harness.PeakRSS(m.Pid())
	if err != nil {
		b.Fatal(err)
	}
	return coldRun{transfer: t, stored: stored, upstreamCPU: cpuTime(b, upstreamPid) - up0, peakRSS: rss}
}

// checkFromSeeder fails the benchmark unless the swarm mirror got the whole
// blob over BitTorrent from the seeder: a fallback to the origin would
// measure the wrong path.
func checkFromSeeder(b *testing.B, m *harness.Process, size int64) {
	b.Helper()
	fromOrigin := m.Metric(receivedMetric, "source", "origin")
	fromSeeder := m.Metric(receivedMetric, "source", "seeder")
	fallbacks := m.Metric(fallbacksMetric)
	if fromOrigin != 0 || fallbacks != 0 || fromSeeder < float64(size) {
		b.Fatalf("swarm mirror received %.0f bytes from the seeder, %.0f from the origin, fell back %.0f times; want all %d from the seeder",
			fromSeeder, fromOrigin, fallbacks, size)
	}
}

func printSwarmTable(w io.Writer, size int64, viaSwarm, viaOrigin coldRun) {
	fmt.Fprintf(w, "\nblob %d bytes (%.0f MiB) into a fresh mirror, %d run(s); MB = 10^6 bytes; CPU until stored\n",
		size, float64(size)/(1<<20), viaSwarm.n)
	fmt.Fprintf(w, "%-10s %8s %10s %10s %12s %15s %9s\n", "mirror", "MB/s", "TTFB", "stored", "mirror CPU", "sender CPU", "peak RSS")
	for _, row := range []struct {
		name, sender string
		r            coldRun
	}{{"swarm", "seeder", viaSwarm}, {"origin", "origin", viaOrigin}} {
		fmt.Fprintf(w, "%-10s %8.0f %7.1f ms %8.2f s %7.2f s/GB %6s %.2f s/GB %5.0f MiB\n", row.name, row.r.mbps(), row.r.meanTTFB(),
			row.r.meanStored().Seconds(), row.r.cpuPerGB(), row.sender, row.r.upstreamCPUPerGB(), float64(row.r.peakRSS)/(1<<20))
	}
	fmt.Fprintf(w, "swarm/origin throughput ratio %.2f (target >= 0.8); swarm mirror peak RSS target < 150 MiB\n",
		viaSwarm.mbps()/viaOrigin.mbps())
}
