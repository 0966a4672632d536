package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/internal/origin"
)

// originProcessEnv carries the storage directory to a test binary that
// StartOriginProcess re-executes as an origin.
const originProcessEnv = "BLOBSWARM_HARNESS_ORIGIN_DIR"

// ServeOriginIfChild turns this test binary into an origin registry process
// when StartOriginProcess started it, and then never returns. Call it first
// in the TestMain of a package that uses StartOriginProcess.
func ServeOriginIfChild() {
	dir := os.Getenv(originProcessEnv)
	if dir == "" {
		return
	}
	o, err := origin.New(context.Background(), origin.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin process:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin process:", err)
		os.Exit(1)
	}
	// The parent reads the address from the first line.
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "origin process:", srv.Serve(ln))
	os.Exit(1)
}

// OriginProcess is an origin registry running in a process of its own, so
// that it competes with a mirror process on equal terms (own runtime, own
// garbage collector), as a real registry would.
type OriginProcess struct {
	URL string // e.g. http://127.0.0.1:40123
	Dir string // its storage directory
	Pid int
}

// Host is the origin's host:port.
func (o *OriginProcess) Host() string { return strings.TrimPrefix(o.URL, "http://") }

// StartOriginProcess re-executes the running test binary as an origin
// registry (distribution, filesystem storage) over a fresh directory. The
// package's TestMain must call ServeOriginIfChild. The process is killed
// when the test ends.
func StartOriginProcess(t testing.TB) *OriginProcess {
	t.Helper()
	dir := t.TempDir()
	// -test.run=^$ keeps the child from running tests should TestMain not
	// divert it.
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), originProcessEnv+"="+dir)
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatalf("origin process exited before it listened: %s", stderr.String())
		}
		return &OriginProcess{URL: "http://" + a, Dir: dir, Pid: cmd.Process.Pid}
	case <-time.After(20 * time.Second):
		t.Fatalf("origin process did not listen within 20s: %s", stderr.String())
	}
	return nil
}
