//go:build e2e

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// startDaemon writes config to dir and runs prog (found on PATH) with the
// args argv gives for that file, in its own process group (a stop reaches
// any shim it started), until the test ends: SIGTERM, SIGKILL after 10 s,
// then after (if not nil); its output goes to the test's log if the test
// failed. It returns once ready answers nil, within 30 s.
func startDaemon(t *testing.T, dir, prog, config string, argv func(config string) []string, ready func() error, after func()) {
	t.Helper()
	configPath := filepath.Join(dir, prog+".toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs harness.SyncBuffer
	cmd := exec.Command(prog, argv(configPath)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if after != nil {
			after()
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", prog, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", prog, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s: %v\n%s", prog, err, logs.String())
		}
	}
}

// socketExists is a readiness check: the daemon made its socket.
func socketExists(path string) func() error {
	return func() error {
		if _, err := os.Stat(path); err != nil {
			return errors.Join(errors.New("no socket yet"), err)
		}
		return nil
	}
}
