package mirror_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/origin/testimage"
)

const (
	user     = "puller"
	password = "s3cret-Pa55word"
)

// credentialsConfig writes a mirror config file that reaches the origin
// with the user's credentials and makes it the default upstream, so
// go-containerregistry (which sends no ns) pulls from it.
func credentialsConfig(t *testing.T, o *harness.Origin, data string) string {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data: %s
default-upstream: %q
upstream:
  - %q
credentials:
  %q:
    username: %s
    password-file: %s
log-level: debug
`, data, o.Host(), o.Host()+"="+o.Server.URL, o.Host(), user, pwFile)
	path := filepath.Join(dir, "mirror.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkNoSecrets fails if the password shows in a mirror's logs, plain or
// as a basic auth header.
func checkNoSecrets(t *testing.T, m *harness.Process) {
	t.Helper()
	logs := m.Logs()
	if logs == "" {
		t.Error("the mirror logged nothing at debug level: nothing was checked")
	}
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
		if strings.Contains(logs, secret) {
			t.Errorf("mirror logs contain the credential %q", secret)
		}
	}
}

// TestHtpasswdUpstream pulls from an origin that wants basic auth: with
// credentials from the config file it works, without them the client gets
// UNAUTHORIZED and nothing is stored.
func TestHtpasswdUpstream(t *testing.T) {
	t.Parallel()
	o := harness.NewOrigin(t, origin.Config{Auth: origin.AuthConfig{Htpasswd: &origin.Htpasswd{Username: user, Password: password}}})
	pushed, err := testimage.PushImage(t.Context(), o.Host()+"/team/app:1", 2, 16<<10, basicAuth(user, password))
	if err != nil {
		t.Fatal(err)
	}
	m := harness.Start(t, "mirror", "--config", credentialsConfig(t, o, t.TempDir()))
	pullImage(t, m.Host()+"/team/app:1", pushed.Images[0])
	checkNoSecrets(t, m)

	data := t.TempDir()
	anon := startMirror(t, data, "--default-upstream="+o.Host(), upstreamFlag(o))
	for _, path := range []string{"manifests/1", "manifests/" + pushed.Top.Digest.String(), "blobs/" + pushed.Images[0].Layers[0].Digest.String()} {
		resp, body := send(t, http.MethodGet, anon.URL()+"/v2/team/app/"+path)
		wantError(t, "anonymous "+path, resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	}
	if files := filesUnder(t, data); len(files) != 0 {
		t.Errorf("refused pulls left files in the data dir: %v", files)
	}
}

// tokenOrigin is an origin behind a token server that issues tokens to
// user for expiresIn, with two images in one repository.
func tokenOrigin(t *testing.T, expiresIn time.Duration) (*harness.Origin, *origin.TokenServer, [2]testimage.Pushed) {
	t.Helper()
	ts, err := origin.NewTokenServer(origin.TokenServerConfig{Username: user, Password: password, ExpiresIn: expiresIn})
	if err != nil {
		t.Fatal(err)
	}
	o := harness.NewOrigin(t, origin.Config{Auth: origin.AuthConfig{Token: ts.EmbeddedAuth()}})
	var images [2]testimage.Pushed
	for i := range images {
		images[i], err = testimage.PushImage(t.Context(), fmt.Sprintf("%s/team/app:%d", o.Host(), i), 2, 16<<10, basicAuth(user, password))
		if err != nil {
			t.Fatal(err)
		}
	}
	return o, ts, images
}

// TestTokenUpstream pulls through the bearer token flow with credentials:
// one token serves every request of the repository until it expires.
func TestTokenUpstream(t *testing.T) {
	t.Parallel()
	t.Run("cached", func(t *testing.T) {
		t.Parallel()
		o, ts, images := tokenOrigin(t, 5*time.Minute)
		m := harness.Start(t, "mirror", "--config", credentialsConfig(t, o, t.TempDir()))
		before := ts.TokenRequests()
		pullImage(t, m.Host()+"/team/app:0", images[0].Images[0])
		first := ts.TokenRequests() - before
		if first < 1 {
			t.Fatalf("the mirror pulled without asking the token server")
		}
		// Other blobs of the same repository: the token is still good.
		pullImage(t, m.Host()+"/team/app:1", images[1].Images[0])
		if n := ts.TokenRequests() - before - first; n != 0 {
			t.Errorf("second pull from the same repository asked for %d new tokens, want 0", n)
		}
		checkNoSecrets(t, m)
	})
	t.Run("token-file", func(t *testing.T) {
		t.Parallel()
		o, ts, images := tokenOrigin(t, 5*time.Minute)
		tok := issueToken(t, o, "repository:team/app:pull")
		dir := t.TempDir()
		tokFile := filepath.Join(dir, "token")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := writeConfig(t, fmt.Sprintf("data: %s\ndefault-upstream: %q\nupstream: [%q]\nlog-level: debug\ncredentials:\n  %q:\n    token-file: %s\n",
			t.TempDir(), o.Host(), o.Host()+"="+o.Server.URL, o.Host(), tokFile))
		m := harness.Start(t, "mirror", "--config", cfg)
		before := ts.TokenRequests()
		pullImage(t, m.Host()+"/team/app:0", images[0].Images[0])
		if n := ts.TokenRequests() - before; n != 0 {
			t.Errorf("the mirror asked the token server %d times although it has a token", n)
		}
		if strings.Contains(m.Logs(), tok) {
			t.Error("mirror logs contain the token")
		}
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		o, ts, images := tokenOrigin(t, time.Second)
		m := harness.Start(t, "mirror", "--config", credentialsConfig(t, o, t.TempDir()))
		pullImage(t, m.Host()+"/team/app:0", images[0].Images[0])
		before := ts.TokenRequests()
		time.Sleep(1500 * time.Millisecond) // let the 1 s token expire
		pullImage(t, m.Host()+"/team/app:1", images[1].Images[0])
		if ts.TokenRequests() == before {
			t.Error("the mirror pulled with an expired token and no new one")
		}
		checkNoSecrets(t, m)
	})
}

// issueToken asks the origin's token service for a token with the user's
// credentials, as an operator would before writing a token file.
func issueToken(t *testing.T, o *harness.Origin, scope string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, o.Server.URL+origin.TokenPath+"?scope="+url.QueryEscape(scope), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		t.Fatalf("token request: %s, %v", resp.Status, err)
	}
	return body.Token
}
