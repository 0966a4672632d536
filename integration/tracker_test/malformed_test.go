package tracker_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/tracker/api"
)

// TestMalformedRequests sends the tracker announces and API requests no
// mirror sends: announces get a BEP 3 "failure reason" (HTTP 200, as
// BitTorrent clients expect) and record no peer; metainfo and manifest
// requests get their 4xx with an OCI error code and fetch nothing from
// the origin into the data dir.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	_, d := harness.PushRandomBlob(t, o, "app", 4<<10)
	data := t.TempDir()
	tr := harness.Start(t, "tracker", trackerArgs(o, data)...)
	before := dataFiles(t, data)

	ih := strings.Repeat("\x01", 20)
	id := "-BS0001-malformed000"
	good := url.Values{"info_hash": {ih}, "peer_id": {id}, "port": {"6881"}, "left": {"0"}, "uploaded": {"0"}, "downloaded": {"0"}, "compact": {"1"}}
	with := func(key, value string) string {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		q.Set(key, value)
		return q.Encode()
	}
	without := func(key string) string {
		q := url.Values{}
		for k, v := range good {
			if k != key {
				q[k] = v
			}
		}
		return q.Encode()
	}
	for _, c := range []struct {
		what, query, mention string
	}{
		{"no query", "", "info_hash"},
		{"missing info_hash", without("info_hash"), "info_hash"},
		{"19-byte info_hash", with("info_hash", ih[:19]), "info_hash"},
		{"21-byte info_hash", with("info_hash", ih+"x"), "info_hash"},
		{"hex info_hash", with("info_hash", strings.Repeat("01", 20)), "info_hash"},
		{"bad escape", "info_hash=%zz&" + without("info_hash"), "malformed"},
		{"missing peer_id", without("peer_id"), "peer_id"},
		{"short peer_id", with("peer_id", "abc"), "peer_id"},
		{"missing port", without("port"), "port"},
		{"port 0", with("port", "0"), "port"},
		{"port too big", with("port", "65536"), "port"},
		{"negative port", with("port", "-1"), "port"},
		{"port not a number", with("port", "http"), "port"},
		{"missing left", without("left"), "left"},
		{"negative left", with("left", "-1"), "left"},
		{"left not a number", with("left", "lots"), "left"},
		{"negative uploaded", with("uploaded", "-5"), "uploaded"},
		{"downloaded overflow", with("downloaded", "99999999999999999999"), "downloaded"},
		{"unknown event", with("event", "paused"), "event"},
		{"numwant not a number", with("numwant", "many"), "numwant"},
		{"numwant float", with("numwant", "1.5"), "numwant"},
	} {
		resp, body := get(t, tr.URL()+api.AnnouncePath+"?"+c.query)
		var r announceReply
		if resp.StatusCode != http.StatusOK || bencode.Unmarshal(body, &r) != nil || r.Failure == "" {
			t.Errorf("announce with %s: %s %q, want 200 with a bencoded failure reason", c.what, resp.Status, body)
			continue
		}
		if !strings.Contains(r.Failure, c.mention) {
			t.Errorf("announce with %s: failure reason %q does not mention %s", c.what, r.Failure, c.mention)
		}
		if len(r.Peers) != 0 {
			t.Errorf("announce with %s: failed, yet handed out peers %v", c.what, r.Peers)
		}
	}
	// compact is advisory (BEP 23): compact=0 gets the usual compact answer.
	if resp, body := get(t, tr.URL()+api.AnnouncePath+"?"+with("compact", "0")+"&event=stopped"); resp.StatusCode != http.StatusOK || strings.Contains(string(body), "failure reason") {
		t.Errorf("announce with compact=0: %s %q, want an answer", resp.Status, body)
	}
	// None of the failed announces joined the swarm: a newcomer is told of
	// no one.
	var ihb [20]byte
	copy(ihb[:], ih)
	if peers := announce(t, tr, ihb, "-BS0001-newcomer0000", 6882); len(peers) != 0 {
		t.Errorf("failed announces left peers in the swarm: %v", peers)
	}

	meta := func(registry, repo, dg string) string {
		return api.MetainfoPath + "?" + url.Values{"registry": {registry}, "repo": {repo}, "digest": {dg}}.Encode()
	}
	manifest := func(registry, repo, tag string) string {
		return api.ManifestPath + "?" + url.Values{"registry": {registry}, "repo": {repo}, "tag": {tag}}.Encode()
	}
	reg, hex := o.Host(), d.Encoded()
	for _, c := range []struct {
		what, path string
		status     int
		code       string
	}{
		{"metainfo without parameters", api.MetainfoPath, 400, "NAME_INVALID"},
		{"metainfo without registry", meta("", "app", d.String()), 400, "NAME_INVALID"},
		{"metainfo registry with path", meta(reg+"/x", "app", d.String()), 400, "NAME_INVALID"},
		{"metainfo registry dot-dot", meta("..", "app", d.String()), 400, "NAME_INVALID"},
		{"metainfo uppercase repo", meta(reg, "App", d.String()), 400, "NAME_INVALID"},
		{"metainfo dot-dot repo", meta(reg, "a/../app", d.String()), 400, "NAME_INVALID"},
		{"metainfo repo too long", meta(reg, strings.Repeat("a", 256), d.String()), 400, "NAME_INVALID"},
		{"metainfo without digest", meta(reg, "app", ""), 400, "DIGEST_INVALID"},
		{"metainfo md5 digest", meta(reg, "app", "md5:"+hex[:32]), 400, "DIGEST_INVALID"},
		{"metainfo short hex", meta(reg, "app", "sha256:"+hex[:63]), 400, "DIGEST_INVALID"},
		{"metainfo non-hex", meta(reg, "app", "sha256:"+strings.Repeat("x", 64)), 400, "DIGEST_INVALID"},
		{"metainfo digest without algorithm", meta(reg, "app", hex), 400, "DIGEST_INVALID"},
		{"metainfo huge query", meta(strings.Repeat("r", 64<<10)+".test", "app", d.String()), 400, "NAME_INVALID"},
		{"manifest without parameters", api.ManifestPath, 400, "NAME_INVALID"},
		{"manifest uppercase repo", manifest(reg, "App", "1"), 400, "NAME_INVALID"},
		{"manifest without tag", manifest(reg, "app", ""), 400, "TAG_INVALID"},
		{"manifest tag with colon", manifest(reg, "app", "a:b"), 400, "TAG_INVALID"},
		{"manifest digest as tag", manifest(reg, "app", d.String()), 400, "TAG_INVALID"},
		{"manifest tag too long", manifest(reg, "app", strings.Repeat("t", 129)), 400, "TAG_INVALID"},
		{"manifest registry with space", manifest("a b", "app", "1"), 400, "NAME_INVALID"},
	} {
		resp, body := get(t, tr.URL()+c.path)
		wantOCIError(t, c.what, resp, body, c.status, c.code)
	}

	// Paths and methods outside the API: net/http's own 404 and 405.
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"POST", api.AnnouncePath, 405},
		{"PUT", api.MetainfoPath, 405},
		{"DELETE", api.ManifestPath, 405},
		{"PATCH", api.AnnouncePath, 405},
		{"GET", "/v2/app/blobs/" + d.String(), 404},
		{"GET", "/scrape", 404},
		{"GET", "/v1/metainfo/extra", 404},
	} {
		req, err := http.NewRequestWithContext(t.Context(), c.method, tr.URL()+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.status)
		}
	}

	if after := dataFiles(t, data); !slices.Equal(after, before) {
		t.Errorf("malformed requests changed the data dir:\nbefore %v\nafter  %v", before, after)
	}
	if n := o.TotalBlobGETs(); n != 0 {
		t.Errorf("malformed requests made the seeder fetch %d blobs from the origin", n)
	}
	if resp, _ := get(t, tr.URL()+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("tracker not ready after the malformed requests: %s", resp.Status)
	}
}

// wantOCIError checks a response is an OCI error with the given status and
// code.
func wantOCIError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		t.Errorf("%s: %s %q, want %d with OCI error %s", what, resp.Status, body, status, code)
	}
}

// dataFiles lists the regular files below dir, relative to it.
func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
