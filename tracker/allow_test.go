package tracker_test

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// The tracker fetches only from the registries its own configuration
// names, whatever a mirror (or anyone who reaches it) asks: metainfo,
// piece hashes and tags for another registry get 403 DENIED naming it and
// the key that would allow it, nothing is stored, and that registry sees
// no connection.
func TestUnnamedRegistryIsDeniedWithoutAConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	host := ln.Addr().String()

	e := newEnv(t, time.Minute, nil)
	d := digest.FromString("a private layer").String()
	before := tree(t, e.data)
	for _, u := range []string{
		e.metainfoURL(host, "app", d),
		e.piecesURL(host, "app", d, "0"),
		e.manifestURL(host, "app", "v1"),
	} {
		resp, body := get(t, u)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("GET %s: HTTP %d %s, want 403", u, resp.StatusCode, body)
		}
		got := ociError(t, body)
		if got.Code != errcode.ErrorCodeDenied {
			t.Fatalf("GET %s: code %s, want DENIED", u, got.Code)
		}
		for _, want := range []string{host, "registry", "tracker"} {
			if !strings.Contains(got.Message, want) {
				t.Errorf("GET %s: message %q does not mention %q", u, got.Message, want)
			}
		}
	}
	// The seeder would have fetched in the background: give it the time.
	time.Sleep(100 * time.Millisecond)
	if after := tree(t, e.data); !slices.Equal(before, after) {
		t.Errorf("denied requests changed the data dir:\nbefore %v\nafter  %v", before, after)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the unnamed registry saw %d connections, want none", n)
	}
}
