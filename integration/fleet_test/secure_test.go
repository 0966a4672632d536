package fleet_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// writePEM writes one PEM block to dir/name and returns the path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// privateCA makes a certificate authority and a certificate for 127.0.0.1
// signed by it, as an operator with an internal CA would, and returns the
// CA file, the certificate and key files, and a client trusting the CA.
func privateCA(t *testing.T, dir string) (caFile, certFile, keyFile string, client *http.Client) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "blobswarm test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "tracker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER), writePEM(t, dir, "tracker.pem", "CERTIFICATE", der),
		writePEM(t, dir, "tracker-key.pem", "EC PRIVATE KEY", keyDER), client
}

// A tracker on HTTPS with an internal CA and a shared secret: the fleet
// that has both swarms as usual; a stranger without the secret can
// neither fetch metainfo nor announce, and a mirror without it is left to
// the origin.
func TestSecuredTracker(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, client := privateCA(t, dir)
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("fleet-7f3a9c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, fleetOptions{
		mirrors:     3,
		trackerTLS:  client,
		trackerArgs: []string{"--tls-cert", certFile, "--tls-key", keyFile, "--secret-file", secretFile},
		mirrorArgs:  []string{"--ca", caFile, "--tracker-secret-file", secretFile},
	})
	image := f.push(t, "team/app:1", 2, 8<<20)
	size := float64(imageBytes(image))

	t.Run("the fleet swarms over https", func(t *testing.T) {
		checkPulled(t, image, pullAll(t.Context(), image, f.mirrors))
		defer logTraffic(t, f)
		checkOriginServed(t, f, image, 1)
		for _, m := range f.mirrors {
			checkStored(t, m, image)
			if n := fromSwarm(m); n < size {
				t.Errorf("%s received %.0f bytes from the swarm, want the whole image", m.name, n)
			}
		}
	})

	blob := image.Blobs()[0]
	metainfo := f.tracker.URL() + api.MetainfoPath + "?" + url.Values{
		"registry": {f.origin.Host()}, "repo": {"team/app"}, "digest": {blob.Digest.String()},
	}.Encode()
	t.Run("strangers are refused", func(t *testing.T) {
		for name, auth := range map[string]string{"no secret": "", "wrong secret": "Bearer guess"} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, metainfo, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("metainfo with %s: HTTP %d, want 401", name, resp.StatusCode)
			}
		}
		q := url.Values{"info_hash": {strings.Repeat("a", 20)}, "peer_id": {strings.Repeat("b", 20)}, "port": {"6881"},
			"uploaded": {"0"}, "downloaded": {"0"}, "left": {"0"}, "compact": {"1"}}
		resp, err := client.Get(f.tracker.URL() + api.AnnouncePath + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var reply struct {
			Failure string `bencode:"failure reason"`
		}
		err = bencode.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if err != nil || !strings.Contains(reply.Failure, "secret") {
			t.Errorf("announce without the secret: failure reason %q (%v), want one naming the secret", reply.Failure, err)
		}
	})

	t.Run("a mirror without the secret gets nothing from the fleet", func(t *testing.T) {
		data := t.TempDir()
		p := harness.Start(t, "mirror", "--data", data, "--tracker", f.tracker.URL(), "--ca", caFile,
			"--peer-listen", "127.0.0.1:0", "--upstream", f.origin.Host()+"="+f.origin.Server.URL)
		m := &mirror{Process: p, name: "stranger", data: data}
		checkPulled(t, image, pullAll(t.Context(), image, []*mirror{m}))
		if n := fromSwarm(m); n != 0 {
			t.Errorf("a mirror without the secret received %.0f bytes from the swarm", n)
		}
		if n := m.Metric(fallbacksMetric, "reason", "tracker-refused"); n == 0 {
			t.Error("a mirror without the secret did not fall back to the origin")
		}
		checkOriginServed(t, f, image, 2)
	})
}
