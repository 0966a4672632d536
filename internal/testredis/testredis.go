// Package testredis runs a private redis-server for a test.
package testredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Start runs redis-server on a free 127.0.0.1 port, with no persistence and
// its working files in a temporary directory, and stops it when the test
// ends. It returns the server's address.
//
// Without a redis-server binary the test is skipped, unless REQUIRE_E2E=1
// demands that it run.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not installed (Debian package redis-server)"
		if os.Getenv("REQUIRE_E2E") == "1" {
			t.Fatal(msg + " and REQUIRE_E2E=1")
		}
		t.Skip(msg)
	}
	// The port is free when chosen but could be taken before redis binds it;
	// a few attempts make that race harmless.
	for attempt := 0; ; attempt++ {
		addr, err := start(t, bin)
		if err == nil {
			return addr
		}
		if attempt == 2 {
			t.Fatalf("start redis-server: %v", err)
		}
		t.Logf("start redis-server: %v; retrying", err)
	}
}

func start(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", t.TempDir(),
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
	)
	out, err := os.Create(t.TempDir() + "/redis.log")
	if err != nil {
		return "", err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(out.Name())
			return "", fmt.Errorf("redis-server exited (%v): %s", werr, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", errors.New("redis-server did not answer PING within 10s")
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
