// Package harness starts the real things integration tests talk to: the
// blobswarm binary as separate processes, and embedded origin registries.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/blobswarm/blobswarm/internal/origin"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/blobswarm once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blobswarm-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "blobswarm")
		args, cgo := []string{"build", "-o", binPath}, "CGO_ENABLED=0"
		if raceBuild {
			// The race detector needs cgo; the static build is what ships.
			args, cgo = append(args, "-race"), "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(args, "github.com/blobswarm/blobswarm/cmd/blobswarm")...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Main runs a package's tests and then removes the binary Binary built.
// Call it from TestMain; without it every test run leaves a binary in the
// temp dir.
func Main(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Process is a running blobswarm subcommand.
type Process struct {
	t    testing.TB
	Addr string // the HTTP listen address
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
	// scheme and client are how the test reaches it: https and a client
	// trusting its certificate for StartTLS.
	scheme string
	client *http.Client
}

// Start runs `blobswarm <sub> --listen ADDR args...` and waits until its
// /readyz answers. The process is killed when the test ends.
func Start(t testing.TB, sub string, args ...string) *Process {
	t.Helper()
	return startFree(t, "http", http.DefaultClient, sub, args...)
}

// StartAt is Start on a given listen address (to restart on the same one).
func StartAt(t testing.TB, addr, sub string, args ...string) *Process {
	t.Helper()
	return start(t, addr, "http", http.DefaultClient, sub, args...)
}

// StartTLS is Start for a process serving HTTPS; client trusts it.
func StartTLS(t testing.TB, client *http.Client, sub string, args ...string) *Process {
	t.Helper()
	return startFree(t, "https", client, sub, args...)
}

// errPortTaken is a process that could not bind its listen address.
var errPortTaken = errors.New("listen address taken")

// startFree starts a process on a free port. Another process (tests run
// in parallel) may bind that port between FreeAddr and the start, so a
// start that fails for want of it is tried again on another.
func startFree(t testing.TB, scheme string, client *http.Client, sub string, args ...string) *Process {
	t.Helper()
	for tries := 1; ; tries++ {
		p, err := launch(t, FreeAddr(t), scheme, client, sub, args...)
		if err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) || tries == 3 {
			t.Fatal(err)
		}
	}
}

func start(t testing.TB, addr, scheme string, client *http.Client, sub string, args ...string) *Process {
	t.Helper()
	p, err := launch(t, addr, scheme, client, sub, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch runs the process and waits until it is ready, or says why not.
func launch(t testing.TB, addr, scheme string, client *http.Client, sub string, args ...string) (*Process, error) {
	t.Helper()
	p := &Process{t: t, Addr: addr, logs: &SyncBuffer{}, done: make(chan struct{}), scheme: scheme, client: client}
	p.cmd = exec.Command(Binary(t), append([]string{sub, "--listen", addr}, args...)...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if strings.Contains(p.Logs(), "WARNING: DATA RACE") {
			t.Errorf("%s %s: data race, see its logs", sub, addr)
		}
		if t.Failed() {
			t.Logf("%s %s logs:\n%s", sub, addr, p.Logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.client.Get(p.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			if strings.Contains(p.Logs(), "listen tcp "+addr+": bind: address already in use") {
				return nil, fmt.Errorf("%s exited before it was ready: %w: %s", sub, errPortTaken, p.Logs())
			}
			return nil, fmt.Errorf("%s exited before it was ready: %s", sub, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready after 20s: %s", sub, p.Logs())
		}
	}
}

// URL is the process's HTTP base URL.
func (p *Process) URL() string { return p.scheme + "://" + p.Addr }

// Host is the listen address, as a registry host name.
func (p *Process) Host() string { return p.Addr }

// Logs returns what the process printed so far.
func (p *Process) Logs() string { return p.logs.String() }

// Kill ends the process with SIGKILL, as a crash would.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop ends the process with SIGTERM and waits for it.
func (p *Process) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Metric returns the sum of all series of a metric family whose labels
// include the given ones (name=value pairs), read from /metrics.
func (p *Process) Metric(name string, labels ...string) float64 {
	p.t.Helper()
	return scrape(p.t, p.client, p.URL()+"/metrics", name, labels...)
}

// ScrapeMetric reads one metric from a Prometheus endpoint; see Metric.
func ScrapeMetric(t testing.TB, url, name string, labels ...string) float64 {
	t.Helper()
	return scrape(t, http.DefaultClient, url, name, labels...)
}

func scrape(t testing.TB, client *http.Client, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The zero TextParser panics on its first metric name.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics from %s: %v", url, err)
	}
	fam, ok := fams[name]
	if !ok {
		return 0
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var sum float64
	for _, m := range fam.Metric {
		match := 0
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// Origin is an embedded origin registry served on loopback.
type Origin struct {
	*origin.Origin
	Server *httptest.Server
}

// NewOrigin serves a fresh origin registry on 127.0.0.1.
func NewOrigin(t testing.TB, cfg origin.Config) *Origin {
	t.Helper()
	return NewOriginWith(t, cfg, nil)
}

// NewOriginWith is NewOrigin with the origin's handler wrapped (when wrap is
// not nil), to slow down, hold back or refuse what it serves.
func NewOriginWith(t testing.TB, cfg origin.Config, wrap func(http.Handler) http.Handler) *Origin {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	o, err := origin.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = o
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		// A handler held back by a Valve would keep Close waiting.
		srv.CloseClientConnections()
		srv.Close()
		o.Close()
	})
	return &Origin{Origin: o, Server: srv}
}

// Host is the origin's host:port, as it appears in image references.
func (o *Origin) Host() string { return strings.TrimPrefix(o.Server.URL, "http://") }

// SyncBuffer collects a process's output, written by its pipes'
// goroutines while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogLines returns the process's log lines that contain substr.
func (p *Process) LogLines(substr string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}
