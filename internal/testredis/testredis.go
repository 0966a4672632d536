// Package testredis runs private redis-servers for a test: one server, or a
// primary with replicas and the Redis Sentinels that watch it.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Host is where the servers run and how the test reaches them. The zero
// value is this machine; the e2e suite passes a network namespace's.
type Host struct {
	// Command makes the command that runs a server; default exec.Command.
	Command func(name string, args ...string) *exec.Cmd
	// Dial connects the test to a server; default a net.Dialer's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (h Host) command(name string, args ...string) *exec.Cmd {
	if h.Command == nil {
		return exec.Command(name, args...)
	}
	return h.Command(name, args...)
}

// client talks to one server from the test. Retries are off: readiness
// loops poll on their own.
func (h Host) client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Dialer: h.Dial, MaxRetries: -1})
}

// Start runs redis-server on a free 127.0.0.1 port, with no persistence and
// its working files in a temporary directory, and stops it when the test
// ends. It returns the server's address.
//
// Without a redis-server binary the test is skipped, unless REQUIRE_E2E=1
// demands that it run.
func Start(t testing.TB) string {
	t.Helper()
	return StartOn(t, Host{})
}

// StartOn is Start on h.
func StartOn(t testing.TB, h Host) string {
	t.Helper()
	return startServer(t, binary(t), h, "redis", noPersistence).addr
}

// binary is redis-server's path. Sentinel is the same program started
// with --sentinel (Debian's redis-sentinel is a link to it).
func binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not installed (Debian package redis-server)"
		if os.Getenv("REQUIRE_E2E") == "1" {
			t.Fatal(msg + " and REQUIRE_E2E=1")
		}
		t.Skip(msg)
	}
	return bin
}

// noPersistence keeps a server's data in memory only.
var noPersistence = []string{`save ""`, "appendonly no"}

// server is one running redis-server or sentinel.
type server struct {
	addr string
	kill func()
}

// startServer runs a server (name "sentinel" for a sentinel) on a free
// port, with extra config lines and its files in a temporary directory,
// and returns once it answers PING.
func startServer(t testing.TB, bin string, h Host, name string, extra []string) *server {
	t.Helper()
	// The port is free when chosen but could be taken before redis binds it;
	// a few attempts make that race harmless.
	for attempt := 0; ; attempt++ {
		s, err := tryServer(t, bin, h, name, extra)
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Logf("start %s: %v; retrying", name, err)
	}
}

func tryServer(t testing.TB, bin string, h Host, name string, extra []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	s := &server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	logPath := filepath.Join(dir, name+".log")
	// Every server gets a config file: a sentinel keeps what it learns in
	// its own, so it needs one it can rewrite.
	conf := filepath.Join(dir, name+".conf")
	lines := append([]string{"bind 127.0.0.1", "port " + strconv.Itoa(port), "dir " + dir}, extra...)
	if err := writeLines(conf, lines); err != nil {
		return nil, err
	}
	args := []string{conf}
	if name == "sentinel" {
		args = append(args, "--sentinel")
	}
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := h.command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	s.kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}

	client := h.client(s.addr)
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			t.Cleanup(s.kill)
			return s, nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited (%v): %s", name, werr, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("%s did not answer PING within 10s", name)
		}
	}
}

func writeLines(path string, lines []string) error {
	var b []byte
	for _, l := range lines {
		b = append(b, l+"\n"...)
	}
	return os.WriteFile(path, b, 0o644)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
