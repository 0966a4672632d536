package netlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNamespace runs fn on an OS thread that has joined the host's network
// namespace, so the sockets fn opens belong to that host: this process can
// talk to the lab's hosts without any interface in the machine's own
// namespace. The thread goes back to its namespace afterwards, or, if it
// cannot, is thrown away with its goroutine.
func (h *Host) inNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("netlab: this thread's namespace: %w", err)
			return
		}
		defer own.Close()
		target, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			errc <- fmt.Errorf("netlab: namespace %s: %w", h.NS, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netlab: enter %s: %w", h.NS, err)
			return
		}
		err = fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// DialContext opens a connection from inside the host.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.inNamespace(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside the host.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.inNamespace(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Transport is an HTTP transport whose connections start inside the host.
func (h *Host) Transport() *http.Transport {
	return &http.Transport{
		DialContext:         h.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
}

// HTTPClient is an HTTP client whose connections start inside the host.
func (h *Host) HTTPClient() *http.Client { return &http.Client{Transport: h.Transport()} }
