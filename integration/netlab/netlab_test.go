package netlab_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/integration/netlab"
)

const testPrefix = "bsnetlabtest"

// TestLab builds two hosts on a shaped switch, sends bytes between them,
// and checks that removing the lab (and a crashed lab's leftovers) leaves
// nothing behind in the machine's own namespace or in the namespace list.
func TestLab(t *testing.T) {
	if err := netlab.Available(); err != nil {
		harness.Missing(t, "%v", err)
	}
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rootLinks := links(t)
	cfg := netlab.Config{Prefix: testPrefix, Hosts: []netlab.HostSpec{{Name: "a", Rate: 20e6}, {Name: "b", Rate: 20e6}}}

	// A lab left behind with a process in it, as a crashed run leaves it.
	crashed, err := netlab.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	sleeper := crashed.Host("a").Command(context.Background(), "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()

	lab, err := netlab.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		sleeper.Process.Kill()
		t.Error("the crashed lab's process still runs after a new lab with its prefix was built")
	}

	a, b := lab.Host("a"), lab.Host("b")
	for _, h := range []*netlab.Host{a, b} {
		host, port, err := lab.Qdiscs(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for side, q := range map[string]string{"host": host, "switch port": port} {
			if !strings.Contains(q, "tbf") || !strings.Contains(q, "rate 20Mbit") {
				t.Errorf("%s's %s end is not shaped to 20Mbit: %s", h.Name, side, q)
			}
		}
	}

	before, err := a.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := make([]byte, 2<<20)
	crand.Read(sent)
	start := time.Now()
	got := transfer(t, a, b, sent)
	elapsed := time.Since(start)
	if !bytes.Equal(got, sha256Sum(sent)) {
		t.Fatal("b received other bytes than a sent")
	}
	after, err := a.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tx := after.TxBytes - before.TxBytes; tx < int64(len(sent)) {
		t.Errorf("a's interface counted %d bytes sent, less than the %d it sent", tx, len(sent))
	}
	t.Logf("2 MiB from a to b in %s (%.1f Mbit/s on a 20 Mbit/s link)", elapsed.Round(time.Millisecond),
		float64(len(sent))*8/elapsed.Seconds()/1e6)

	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if left, err := netlab.Namespaces(ctx, testPrefix); err != nil || len(left) != 0 {
		t.Errorf("namespaces left after Close: %v (%v)", left, err)
	}
	if now := links(t); now != rootLinks {
		t.Errorf("the machine's interfaces changed:\nbefore %s\nafter  %s", rootLinks, now)
	}
}

// transfer sends data from host src to a listener on host dst, which
// answers with the SHA-256 of what it read.
func transfer(t *testing.T, src, dst *netlab.Host, data []byte) []byte {
	t.Helper()
	ln, err := dst.Listen("tcp", net.JoinHostPort(dst.Addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		c.Write(h.Sum(nil))
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := src.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	sum, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// links lists the interfaces of the machine's own namespace.
func links(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	return strings.Join(names, " ")
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]netlab.Rate{"100mbit": 100e6, "1Gbit": 1e9, "512kbit": 512e3, "2500000bit": 2.5e6, "1.5mbit": 1.5e6} {
		got, err := netlab.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, err := netlab.ParseRate(got.String()); err != nil || back != got {
			t.Errorf("ParseRate(%q.String() = %q) = %d, %v", in, got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "100", "fast", "-1mbit", "0mbit", "100mb"} {
		if _, err := netlab.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}
