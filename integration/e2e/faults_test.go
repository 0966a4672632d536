//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/fleetbench"
	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/netlab"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
	"github.com/blobswarm/blobswarm/internal/testredis"
)

// faultPrefix names the fault tests' namespaces, apart from the fleet
// benchmark's, so the two never remove each other's.
const faultPrefix = "bsfault"

// Ports inside the hosts; every host has its own address.
const (
	faultRegistryPort = "5000"
	faultTrackerPort  = "7070"
	faultMirrorPort   = "5000"
	faultPeerPort     = "6881"
)

// Slow enough links that a rollout of the test image takes seconds, so a
// fault lands in the middle of it.
const (
	faultLink       = 50_000_000 // bits per second
	faultMirrors    = 4
	faultLayers     = 2
	faultLayerBytes = 16 << 20
)

// rolloutBound catches a hung pull; it is not a speed check.
const rolloutBound = 2 * time.Minute

const (
	faultReceivedMetric  = "blobswarm_mirror_received_bytes_total"
	faultInflightMetric  = "blobswarm_mirror_inflight_fetches"
	faultFallbacksMetric = "blobswarm_mirror_origin_fallbacks_total"
	originBlobGetsMetric = "blobswarm_origin_blob_gets_total"
	seederUploadedMetric = "blobswarm_tracker_seeder_uploaded_bytes_total"
)

// faultLab is an origin host (registry and tracker) and mirror hosts in
// network namespaces, each mirror host with its own link that can fail.
type faultLab struct {
	bin      string
	lab      *netlab.Lab
	origin   *netlab.Host
	mirrors  []*netlab.Host
	registry string // host:port, as in image references
	root     string
}

func newFaultLab(t *testing.T) *faultLab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		harness.Missing(t, "fault tests build a network of namespaces: %v", err)
	}
	bin := harness.Binary(t)
	root, err := os.MkdirTemp("", "blobswarm-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	specs := []netlab.HostSpec{{Name: "origin", Rate: faultLink}}
	for i := 1; i <= faultMirrors; i++ {
		specs = append(specs, netlab.HostSpec{Name: "h" + strconv.Itoa(i), Rate: faultLink})
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lab, err := netlab.New(t.Context(), netlab.Config{Prefix: faultPrefix, Hosts: specs}, log)
	if err != nil {
		t.Fatal(err)
	}
	stop := lab.CloseOnSignal(func() { os.RemoveAll(root) })
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
		stop()
	})
	f := &faultLab{bin: bin, lab: lab, origin: lab.Host("origin"), mirrors: lab.Hosts()[1:], root: root}
	f.registry = net.JoinHostPort(f.origin.Addr.String(), faultRegistryPort)
	o := f.start(t, f.origin, "origin", "origin", "--listen", f.registry, "--data", filepath.Join(root, "origin"))
	f.origin.WaitReady(t, "http://"+f.registry+"/v2/", o)
	return f
}

func (f *faultLab) upstream() string { return f.registry + "=http://" + f.registry }

// replica is one tracker process on the origin host: its ports and data.
type replica struct {
	name, port, peerPort, data string
	redis                      string // redis:// URL shared with other replicas, if any
}

// newReplica names a tracker on the origin host with its data under the
// lab's directory.
func (f *faultLab) newReplica(name, port, peerPort string) replica {
	return replica{name: name, port: port, peerPort: peerPort, data: filepath.Join(f.root, name)}
}

func (f *faultLab) url(r replica) string {
	return "http://" + net.JoinHostPort(f.origin.Addr.String(), r.port)
}

// startTracker runs a tracker (and its seeder) on the origin host.
func (f *faultLab) startTracker(t *testing.T, r replica) *netlab.Proc {
	t.Helper()
	addr := f.origin.Addr.String()
	args := []string{"tracker", "--listen", net.JoinHostPort(addr, r.port), "--peer-listen", net.JoinHostPort(addr, r.peerPort),
		"--data", r.data, "--upstream", f.upstream(), "--log-level", "warn"}
	if r.redis != "" {
		args = append(args, "--redis", r.redis)
	}
	d := f.start(t, f.origin, r.name, args...)
	f.origin.WaitReady(t, f.url(r)+"/readyz", d)
	return d
}

// faultMirror is a mirror running on its own host.
type faultMirror struct {
	host *netlab.Host
	url  string
	data string
	proc *netlab.Proc
}

// startMirrors runs a mirror on every mirror host, with the given
// trackers and extra flags.
func (f *faultLab) startMirrors(t *testing.T, trackers []replica, extra ...string) []*faultMirror {
	t.Helper()
	var ms []*faultMirror
	for _, h := range f.mirrors {
		addr := h.Addr.String()
		m := &faultMirror{host: h, url: "http://" + net.JoinHostPort(addr, faultMirrorPort), data: filepath.Join(f.root, h.Name)}
		args := []string{"mirror", "--listen", net.JoinHostPort(addr, faultMirrorPort), "--data", m.data,
			"--upstream", f.upstream(), "--peer-listen", net.JoinHostPort(addr, faultPeerPort), "--log-level", "warn"}
		for _, r := range trackers {
			args = append(args, "--tracker", f.url(r))
		}
		args = append(args, extra...)
		m.proc = f.start(t, h, h.Name+"-mirror", args...)
		h.WaitReady(t, m.url+"/readyz", m.proc)
		ms = append(ms, m)
	}
	return ms
}

func (f *faultLab) push(t *testing.T, ref string) testimage.Pushed {
	t.Helper()
	image, err := testimage.PushImage(t.Context(), f.registry+"/"+ref, faultLayers, faultLayerBytes,
		remote.WithTransport(f.origin.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	return image
}

// originBlobGets is how many blob GETs the origin answered so far.
func (f *faultLab) originBlobGets(t *testing.T) float64 {
	t.Helper()
	return scrape(t, f.origin, "http://"+f.registry+"/metrics", originBlobGetsMetric)
}

func (m *faultMirror) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return scrape(t, m.host, m.url+"/metrics", name, labels...)
}

func scrape(t *testing.T, h *netlab.Host, url, name string, labels ...string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ms, err := fleetbench.Scrape(ctx, h.HTTPClient(), url)
	if err != nil {
		t.Fatal(err)
	}
	return ms.Sum(name, labels...)
}

// pullThrough fetches the image's manifest by tag and every blob it lists
// through the mirror, from inside the mirror's host, the way containerd
// would (?ns= names the registry), and checks each against its digest.
func pullThrough(ctx context.Context, m *faultMirror, registry string, image testimage.Pushed) error {
	client := m.host.HTTPClient()
	defer client.CloseIdleConnections()
	base := m.url + "/v2/" + image.Repository
	top, err := fetchVerified(ctx, client, base+"/manifests/"+image.Tag+"?ns="+registry, image.Top.Digest,
		image.Top.MediaType)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if top != image.Top.Size {
		return fmt.Errorf("manifest: %d bytes, want %d", top, image.Top.Size)
	}
	blobs := image.Blobs()
	errs := make([]error, len(blobs))
	var wg sync.WaitGroup
	for i, b := range blobs {
		wg.Go(func() {
			_, err := fetchVerified(ctx, client, base+"/blobs/"+b.Digest.String()+"?ns="+registry, b.Digest, "")
			if err != nil {
				errs[i] = fmt.Errorf("blob %s: %w", b.Digest, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchVerified GETs url and fails unless the body hashes to want.
func fetchVerified(ctx context.Context, client *http.Client, url string, want digest.Digest, accept string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want.String() {
		return n, fmt.Errorf("GET %s: body hashes to %s, want %s", url, got, want)
	}
	return n, nil
}

// rollout pulls the image through every mirror at once, each pull bounded
// by ctx; the returned channel yields each mirror's error (nil when the
// whole image arrived intact), in the mirrors' order, once all are done.
func rollout(ctx context.Context, ms []*faultMirror, registry string, image testimage.Pushed) <-chan []error {
	done := make(chan []error, 1)
	go func() {
		errs := make([]error, len(ms))
		var wg sync.WaitGroup
		for i, m := range ms {
			wg.Go(func() { errs[i] = pullThrough(ctx, m, registry, image) })
		}
		wg.Wait()
		done <- errs
	}()
	return done
}

func imageSize(image testimage.Pushed) int64 {
	var n int64
	for _, b := range image.Blobs() {
		n += b.Size
	}
	return n
}

// checkPulled fails the test unless every mirror's pull got the image.
func checkPulled(t *testing.T, ms []*faultMirror, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull through %s: %v", ms[i].host.Name, err)
		}
	}
	if t.Failed() {
		for _, m := range ms {
			t.Logf("%s logs (tail):\n%s", m.host.Name, m.proc.Tail())
		}
		t.FailNow()
	}
}

// checkStored fails unless the mirror's store holds every blob of the
// image whole and nothing half-written is left once its fetches ended.
func checkStored(t *testing.T, m *faultMirror, image testimage.Pushed) {
	t.Helper()
	harness.Eventually(t, m.host.Name+" done fetching", func() bool { return m.metric(t, faultInflightMetric) == 0 })
	checkNoPartial(t, m)
	stored := harness.StoredBlobs(t, m.data)
	for _, b := range image.Blobs() {
		if !slices.Contains(stored, b.Digest) {
			t.Errorf("%s did not store %s", m.host.Name, b.Digest)
		}
	}
}

// logTraffic prints where each mirror's bytes came from.
func logTraffic(t *testing.T, ms []*faultMirror) {
	t.Helper()
	for _, m := range ms {
		t.Logf("%s: MiB from origin %.1f, seeder %.1f, peers %.1f; %.0f origin fallbacks", m.host.Name,
			m.metric(t, faultReceivedMetric, "source", "origin")/(1<<20),
			m.metric(t, faultReceivedMetric, "source", "seeder")/(1<<20),
			m.metric(t, faultReceivedMetric, "source", "peers")/(1<<20),
			m.metric(t, faultFallbacksMetric))
	}
}

// checkFromSwarm fails unless every mirror stored the image whole without
// falling back to the origin for any of it (during says when).
func checkFromSwarm(t *testing.T, ms []*faultMirror, image testimage.Pushed, during string) {
	t.Helper()
	for _, m := range ms {
		checkStored(t, m, image)
		if n := m.metric(t, faultFallbacksMetric); n != 0 {
			t.Errorf("%s fell back to the origin %.0f times %s", m.host.Name, n, during)
		}
	}
}

// checkNoPartial fails if a half-written blob is left in the mirror's
// store (it writes each under tmp/ until its digest checks out).
func checkNoPartial(t *testing.T, m *faultMirror) {
	t.Helper()
	partial, err := os.ReadDir(filepath.Join(m.data, "tmp"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(partial) != 0 {
		t.Errorf("%s: tmp/ holds %d partial files after every fetch ended", m.host.Name, len(partial))
	}
}

// checkOriginServedOnce fails unless the origin answered one GET per blob
// of the image since it had answered before.
func checkOriginServedOnce(t *testing.T, f *faultLab, before float64, image testimage.Pushed) {
	t.Helper()
	if got, want := f.originBlobGets(t)-before, float64(len(image.Blobs())); got != want {
		t.Errorf("origin answered %.0f blob GETs for the image's %.0f blobs, want each once", got, want)
	}
}

// TestLinkCutMidTransfer cuts one host's link while it and three others
// are pulling an image from the swarm: the other three still get the
// whole image, verified, without waiting on the dead host, and the origin
// still sends each blob once (to the tracker's seeder); the cut host's
// own pull fails instead of hanging.
func TestLinkCutMidTransfer(t *testing.T) {
	f := newFaultLab(t)
	tr := f.newReplica("tracker", faultTrackerPort, faultPeerPort)
	f.startTracker(t, tr)
	// A stall timeout shorter than the default lets the cut host's mirror
	// give up on its swarm (and then on the unreachable origin) while the
	// test waits; the others never stall that long.
	ms := f.startMirrors(t, []replica{tr}, "--stall-timeout", "10s")
	image := f.push(t, "team/app:1")
	before := f.originBlobGets(t)
	victim, others := ms[0], ms[1:]

	ctx, cancel := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel()
	victimDone := rollout(ctx, []*faultMirror{victim}, f.registry, image)
	othersDone := rollout(ctx, others, f.registry, image)

	size := float64(imageSize(image))
	harness.Eventually(t, "the victim to be a quarter through", func() bool {
		return victim.metric(t, faultReceivedMetric) >= size/4
	})
	if victim.metric(t, faultInflightMetric) == 0 {
		t.Fatal("the victim had the whole image before its link was cut; the test proves nothing")
	}
	cmd := exec.CommandContext(t.Context(), "ip", "-n", victim.host.NS, "link", "set", "dev", netlab.HostIface, "down")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cut %s's link: %v: %s", victim.host.Name, err, out)
	}
	select {
	case <-othersDone:
		t.Fatal("the other hosts finished before the link was cut; the test proves nothing")
	default:
	}

	errs := <-othersDone
	checkPulled(t, others, errs)
	// The cut host cannot get the image, but its client must hear so
	// rather than wait forever.
	if err := (<-victimDone)[0]; err == nil {
		t.Error("the cut host's pull got the whole image with its link down")
	} else if ctx.Err() != nil {
		t.Errorf("the cut host's pull hung for %s: %v", rolloutBound, err)
	} else {
		t.Logf("the cut host's pull failed, as it must: %v", err)
	}
	logTraffic(t, others)
	checkFromSwarm(t, others, image, "after a peer's link was cut")
	checkOriginServedOnce(t, f, before, image)
	// Whatever the cut host stored, it stored whole.
	harness.StoredBlobs(t, victim.data)
}

// TestTrackerKilledMidRollout kills the tracker (and its seeder) with
// SIGKILL while every host is part way through an image: every host still
// gets it whole, trading with the peers it knows and taking from the
// origin only the pieces none of them has, so the fleet as a whole takes
// far less than a copy per host from the origin. Started again on the
// same address and data, the tracker swarms the next image: the origin
// sends each of its blobs once.
func TestTrackerKilledMidRollout(t *testing.T) {
	f := newFaultLab(t)
	tr := f.newReplica("tracker", faultTrackerPort, faultPeerPort)
	tracker := f.startTracker(t, tr)
	// A short stall timeout: with the seeder gone, pieces no peer holds
	// come from the origin after it, and the test waits for it.
	ms := f.startMirrors(t, []replica{tr}, "--stall-timeout", "5s")
	image := f.push(t, "team/app:1")

	ctx, cancel := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel()
	done := rollout(ctx, ms, f.registry, image)

	awaitQuarterThrough(t, ms, image)
	tracker.Kill()
	t.Log("tracker killed")
	select {
	case <-done:
		t.Fatal("the hosts finished before the tracker was killed; the test proves nothing")
	default:
	}
	checkPulled(t, ms, <-done)
	logTraffic(t, ms)
	var fromOrigin float64
	for _, m := range ms {
		checkStored(t, m, image)
		fromOrigin += m.metric(t, faultReceivedMetric, "source", "origin")
	}
	// A quarter through, three quarters of the image were still to come,
	// and whole-blob fallbacks took nearly a copy per host (3-4 in all).
	size := float64(imageSize(image))
	t.Logf("the fleet took %.2f copies of the image from the origin", fromOrigin/size)
	if fromOrigin > 2*size {
		t.Errorf("the fleet took %.1f MiB from the origin after the tracker died, more than twice the %.1f MiB image: the hosts did not trade what they had",
			fromOrigin/(1<<20), size/(1<<20))
	}
	t.Log("first image pulled everywhere without the tracker")

	f.startTracker(t, tr)
	next := f.push(t, "team/app:2")
	before := f.originBlobGets(t)
	ctx2, cancel2 := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel2()
	checkPulled(t, ms, <-rollout(ctx2, ms, f.registry, next))
	logTraffic(t, ms)
	for _, m := range ms {
		checkStored(t, m, next)
	}
	checkOriginServedOnce(t, f, before, next)
}

// start runs the blobswarm binary inside h.
func (f *faultLab) start(t *testing.T, h *netlab.Host, name string, args ...string) *netlab.Proc {
	t.Helper()
	return netlab.Start(t, name, f.root, h.Command(context.Background(), f.bin, args...))
}

// awaitQuarterThrough waits until the hosts together hold a quarter of
// what the rollout brings them, so a fault lands in its middle.
func awaitQuarterThrough(t *testing.T, ms []*faultMirror, image testimage.Pushed) {
	t.Helper()
	total := float64(imageSize(image)) * float64(len(ms))
	harness.Eventually(t, "the hosts to be a quarter through", func() bool {
		var got float64
		for _, m := range ms {
			got += m.metric(t, faultReceivedMetric)
		}
		return got >= total/4
	})
}

// TestReplicaKilledMidRollout runs two tracker replicas on one Redis, both
// in every mirror's tracker list, and kills the one seeding (SIGKILL) while
// the hosts are part way through an image: the rollout completes, every
// host with the whole image verified and stored whole.
func TestReplicaKilledMidRollout(t *testing.T) {
	f := newFaultLab(t)
	redisURL := f.startRedis(t)
	r1 := f.newReplica("tracker1", faultTrackerPort, faultPeerPort)
	r2 := f.newReplica("tracker2", "7071", "6882")
	replicas := []replica{r1, r2}
	procs := make([]*netlab.Proc, len(replicas))
	for i := range replicas {
		replicas[i].redis = redisURL
		procs[i] = f.startTracker(t, replicas[i])
	}
	ms := f.startMirrors(t, replicas, "--stall-timeout", "5s")
	image := f.push(t, "team/app:1")

	ctx, cancel := context.WithTimeout(t.Context(), rolloutBound)
	defer cancel()
	done := rollout(ctx, ms, f.registry, image)

	awaitQuarterThrough(t, ms, image)
	// The replica whose seeder has sent the most is the one the fleet
	// counts on.
	victim, most := 0, -1.0
	for i, r := range replicas {
		if n := scrape(t, f.origin, f.url(r)+"/metrics", seederUploadedMetric); n > most {
			victim, most = i, n
		}
	}
	if most <= 0 {
		t.Fatal("neither replica's seeder sent anything; the test proves nothing")
	}
	procs[victim].Kill()
	t.Logf("killed %s after its seeder sent %.1f MiB", replicas[victim].name, most/(1<<20))
	select {
	case <-done:
		t.Fatal("the hosts finished before the replica was killed; the test proves nothing")
	default:
	}
	checkPulled(t, ms, <-done)
	logTraffic(t, ms)
	for _, m := range ms {
		checkStored(t, m, image)
	}
}

// startRedis runs redis-server on the origin host's loopback, where the
// tracker replicas (on that host too) reach it, and returns its URL.
func (f *faultLab) startRedis(t *testing.T) string {
	t.Helper()
	return "redis://" + testredis.StartOn(t, f.redisHost()) + "/0"
}

// redisHost runs Redis servers on the origin host's loopback.
func (f *faultLab) redisHost() testredis.Host {
	return testredis.Host{
		Command: func(name string, args ...string) *exec.Cmd {
			return f.origin.Command(context.Background(), name, args...)
		},
		Dial: f.origin.DialContext,
	}
}
