package debugserver_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/blobswarm/blobswarm/internal/debugserver"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestServesACPUProfileUntilClosed(t *testing.T) {
	s, err := debugserver.Start("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String() + "/debug/pprof/"
	if code, body := get(t, base); code != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("index: %d %q", code, body)
	}
	code, body := get(t, base+"profile?seconds=1")
	if code != http.StatusOK {
		t.Fatalf("profile: %d %q", code, body)
	}
	// A CPU profile is a gzipped protocol buffer: a body that does not
	// gunzip is an error page, not a profile.
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("profile is not gzip (%d bytes): %v", len(body), err)
	}
	if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
		t.Fatalf("profile: %d bytes, %v", len(raw), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base); err == nil {
		t.Fatal("the listener still answers after Close")
	}
}

func TestEmptyAddressStartsNothing(t *testing.T) {
	s, err := debugserver.Start("", slog.New(slog.DiscardHandler))
	if err != nil || s.Addr() != nil || s.Close() != nil {
		t.Fatalf("Start(\"\") = %v, addr %v", err, s.Addr())
	}
}

func TestBadAddressNamesTheKey(t *testing.T) {
	_, err := debugserver.Start("127.0.0.1:notaport", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "debug-listen") {
		t.Fatalf("err = %v, want one naming debug-listen", err)
	}
}
