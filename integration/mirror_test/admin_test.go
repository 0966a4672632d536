package mirror_test

import (
	"bytes"
	"net"
	"net/http"
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

// nonLoopbackAddr is an address with a free port on an IP of this host
// beyond loopback, which the host reaches itself from: a client there is
// no local client.
func nonLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(nonLoopbackIP(t), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	harness.Missing(t, "no IPv4 address beyond loopback to listen on")
	return ""
}

// adminCall sends one admin API request and returns the answer.
func adminCall(t *testing.T, method, url, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	if contentType != "" {
		header = append(header, "Content-Type", contentType)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

// prefetchOf is a prefetch request body for an image o does not have.
func prefetchOf(o *harness.Origin) []byte {
	return []byte(`{"image":"` + o.Host() + `/app:none"}`)
}

// Without admin-token, a mirror listening beyond loopback answers its
// admin API to loopback clients only: anyone else could fill its disk
// with prefetches. With the token, whoever has it may.
func TestAdminAPIWithoutTokenIsLocalOnly(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	m := harness.StartAt(t, nonLoopbackAddr(t), "mirror", "--data", t.TempDir(), upstreamFlag(o))
	resp, body := adminCall(t, http.MethodGet, m.URL()+adminapi.StatusPath, "", nil)
	wantError(t, "status from beyond loopback", resp, body, http.StatusForbidden, "DENIED")
	resp, body = adminCall(t, http.MethodPost, m.URL()+adminapi.PrefetchPath, "application/json", prefetchOf(o))
	msg := wantError(t, "prefetch from beyond loopback", resp, body, http.StatusForbidden, "DENIED")
	mustContain(t, "refusal", msg, "admin-token")

	tok := harness.StartAt(t, nonLoopbackAddr(t), "mirror", "--data", t.TempDir(), "--admin-token", "s3cret")
	if resp, body := adminCall(t, http.MethodGet, tok.URL()+adminapi.StatusPath, "", nil, "Authorization", "Bearer s3cret"); resp.StatusCode != http.StatusOK {
		t.Errorf("status from beyond loopback with the admin token: HTTP %d %s", resp.StatusCode, body)
	}
}

// Prefetch takes JSON only: a web page can post a form or text to any
// address without asking, but not application/json.
func TestPrefetchTakesOnlyJSON(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{})
	m := startMirror(t, t.TempDir(), upstreamFlag(o))
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		resp, body := adminCall(t, http.MethodPost, m.URL()+adminapi.PrefetchPath, ct, prefetchOf(o))
		wantError(t, "prefetch as "+ct, resp, body, http.StatusUnsupportedMediaType, adminapi.CodeInvalidRequest)
	}
}
