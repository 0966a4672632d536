// Package tracker_test runs `blobswarm tracker` as real processes in front
// of a real origin registry: restarts, replicas sharing one Redis, and bad
// configuration.
package tracker_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/integration/harness"
	"github.com/blobswarm/blobswarm/internal/origin"
	"github.com/blobswarm/blobswarm/internal/registry/oci"
	"github.com/blobswarm/blobswarm/tracker/api"
)

func TestMain(m *testing.M) { harness.Main(m) }

// trackerArgs are the flags of a tracker in front of o that answers 202
// at once for any blob it does not hold: a 200 on the first ask proves it
// already knew the blob.
func trackerArgs(o *harness.Origin, data string, extra ...string) []string {
	return append([]string{
		"--data", data,
		"--peer-listen", "127.0.0.1:0",
		"--upstream", o.Host() + "=" + o.Server.URL,
		"--metainfo-wait", "0s",
		"--announce-interval", "1s",
	}, extra...)
}

func newOrigin(t *testing.T) *harness.Origin {
	return harness.NewOrigin(t, origin.Config{})
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func metainfoURL(tr *harness.Process, registry, repo string, d digest.Digest) string {
	return tr.URL() + api.MetainfoPath + "?" + api.BlobQuery(oci.Blob{Registry: registry, Repo: repo, Digest: d}).Encode()
}

// awaitMetainfo asks until the tracker's seeder has the blob and returns
// the info bytes.
func awaitMetainfo(t *testing.T, tr *harness.Process, registry, repo string, d digest.Digest) []byte {
	t.Helper()
	var info []byte
	harness.Eventually(t, "metainfo of "+d.String(), func() bool {
		resp, body := get(t, metainfoURL(tr, registry, repo, d))
		switch resp.StatusCode {
		case http.StatusOK:
			info = body
			return true
		case http.StatusAccepted:
			return false
		}
		t.Fatalf("metainfo of %s: HTTP %d: %s", d, resp.StatusCode, body)
		return false
	})
	return info
}

// announceReply is the part of an announce answer the tests read.
type announceReply struct {
	Failure string                    `bencode:"failure reason"`
	Peers   krpc.CompactIPv4NodeAddrs `bencode:"peers"`
}

// announce sends a BitTorrent announce for infohash ih from peer id at
// port, as a peer that has the whole blob, and returns the peers handed
// out.
func announce(t *testing.T, tr *harness.Process, ih [20]byte, id string, port int) []string {
	t.Helper()
	q := url.Values{
		"info_hash":  {string(ih[:])},
		"peer_id":    {id},
		"port":       {strconv.Itoa(port)},
		"uploaded":   {"0"},
		"downloaded": {"0"},
		"left":       {"0"},
		"compact":    {"1"},
	}
	_, body := get(t, tr.URL()+api.AnnouncePath+"?"+q.Encode())
	var r announceReply
	if err := bencode.Unmarshal(body, &r); err != nil || r.Failure != "" {
		t.Fatalf("announce to %s: %q (%v)", tr.URL(), body, err)
	}
	peers := make([]string, len(r.Peers))
	for i, p := range r.Peers {
		peers[i] = p.String()
	}
	return peers
}
