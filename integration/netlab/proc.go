package netlab

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Proc is a program running inside a lab host, its output in a log file.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start runs cmd (from Host.Command) with its output in logDir/name.log;
// the process is stopped when the test ends.
func Start(t testing.TB, name, logDir string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, cmd: cmd, log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		out.Close()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Pid is the process's (`ip netns exec` execs it, so it is its own).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop ends the process with SIGTERM, and SIGKILL if it lingers.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Tail is the end of what the process printed.
func (p *Proc) Tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-4096):])
}

// WaitReady polls url from inside h until it answers 200, failing the
// test if p exits first or 30 s pass.
func (h *Host) WaitReady(t testing.TB, url string, p *Proc) {
	t.Helper()
	client := h.HTTPClient()
	client.Timeout = 2 * time.Second
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %s", p.Name, p.Tail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after 30s (%v): %s", p.Name, url, err, p.Tail())
		}
	}
}
