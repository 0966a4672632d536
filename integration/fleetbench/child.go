package fleetbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/blobswarm/blobswarm/integration/netlab"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/pull"
)

// The benchmark's test binary runs itself inside a host's namespace (with
// `ip netns exec`) as an origin registry or as one host's client; these
// environment variables say which and with what.
const (
	childEnv       = "BLOBSWARM_FLEETBENCH_CHILD"
	dirEnv         = "BLOBSWARM_FLEETBENCH_DIR"
	listenEnv      = "BLOBSWARM_FLEETBENCH_LISTEN"
	refEnv         = "BLOBSWARM_FLEETBENCH_REF"
	mirrorEnv      = "BLOBSWARM_FLEETBENCH_MIRROR"
	startEnv       = "BLOBSWARM_FLEETBENCH_START"
	concurrencyEnv = "BLOBSWARM_FLEETBENCH_CONCURRENCY"
)

// pullTimeout bounds one client's pull against a hang; it is not a target.
const pullTimeout = 20 * time.Minute

// RunChildIfAsked turns the test binary into the child process the
// benchmark asked for, and then exits; it returns at once otherwise. Call
// it first in TestMain.
func RunChildIfAsked() {
	var err error
	switch os.Getenv(childEnv) {
	case "":
		return
	case "origin":
		err = serveOrigin(os.Getenv(dirEnv), os.Getenv(listenEnv))
	case "pull":
		err = pullOnce()
	default:
		err = fmt.Errorf("unknown child mode %q", os.Getenv(childEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childCommand runs this test binary inside host as a child of the given
// mode; -test.run=^$ keeps it from running tests should TestMain not
// divert it.
func childCommand(ctx context.Context, h *netlab.Host, mode string, env ...string) *exec.Cmd {
	cmd := h.Command(ctx, os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + mode}, env...)...)
	return cmd
}

// OriginCommand is an origin registry over dir listening on addr inside h.
func OriginCommand(ctx context.Context, h *netlab.Host, dir, addr string) *exec.Cmd {
	return childCommand(ctx, h, "origin", dirEnv+"="+dir, listenEnv+"="+addr)
}

func serveOrigin(dir, addr string) error {
	o, err := origin.New(context.Background(), origin.Config{Dir: dir})
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// PullReport is what one host's client did, in wall-clock times of this
// machine (every host shares its clock).
type PullReport struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Digest string    `json:"digest"`
	Blobs  int       `json:"blobs"`
	Bytes  int64     `json:"bytes"`
	// FirstByte is the longest the client waited for a blob's first byte.
	FirstByte time.Duration `json:"first_byte"`
	Error     string        `json:"error,omitempty"`
}

// PullCommand is a client inside h that waits until start and then pulls
// ref through the mirror at mirrorURL, every blob checked against its
// digest. It prints a PullReport; see ReadPullReport.
func PullCommand(ctx context.Context, h *netlab.Host, ref, mirrorURL string, start time.Time, concurrency int) *exec.Cmd {
	return childCommand(ctx, h, "pull", refEnv+"="+ref, mirrorEnv+"="+mirrorURL,
		startEnv+"="+start.Format(time.RFC3339Nano), concurrencyEnv+"="+strconv.Itoa(concurrency))
}

// ReadPullReport parses what a client printed.
func ReadPullReport(out []byte) (PullReport, error) {
	var r PullReport
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("client report %q: %w", out, err)
	}
	return r, nil
}

func pullOnce() error {
	start, err := time.Parse(time.RFC3339Nano, os.Getenv(startEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", startEnv, err)
	}
	conc, err := strconv.Atoi(os.Getenv(concurrencyEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", concurrencyEnv, err)
	}
	// Every host starts at the same moment, however long its process took
	// to launch.
	time.Sleep(time.Until(start))
	ctx, cancel := context.WithTimeout(context.Background(), pullTimeout)
	defer cancel()
	rep := PullReport{Start: time.Now()}
	res, err := pull.Image(ctx, os.Getenv(refEnv), pull.Options{MirrorURL: os.Getenv(mirrorEnv), Concurrency: conc})
	rep.End = time.Now()
	rep.Digest, rep.Blobs, rep.Bytes, rep.FirstByte = res.Digest, res.Blobs, res.Bytes, res.FirstByte
	if err != nil {
		rep.Error = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}
