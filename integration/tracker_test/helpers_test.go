// Package tracker_test runs `blobswarm tracker` as real processes in front
// of a real origin registry: restarts, replicas sharing one Redis, and bad
// configuration.
package tracker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/torrentmeta"

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

func piecesURL(tr *harness.Process, registry, repo string, d digest.Digest) string {
	return tr.URL() + api.PiecesPath + "?" + api.PiecesQuery(oci.Blob{Registry: registry, Repo: repo, Digest: d}, 0).Encode()
}

// awaitPieces follows the blob's piece hashes to the end of the stream,
// which comes once the tracker's seeder has checked, stored and published
// the whole blob, and returns them.
func awaitPieces(t *testing.T, tr *harness.Process, registry, repo string, d digest.Digest) []byte {
	t.Helper()
	resp, body := get(t, piecesURL(tr, registry, repo, d))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != api.PiecesType {
		t.Fatalf("pieces of %s: HTTP %d (%s): %s", d, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return body
}

// awaitMetainfo asks until the tracker's seeder has the blob's torrent and
// returns the info bytes.
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

// fetchFromSeeder downloads blob d from the seeder the tracker lists in its
// swarm, over the peer wire protocol as a mirror does, and checks each
// piece against sums, the hashes the tracker streamed: the torrent's own
// piece hashes are placeholders (torrentmeta.ForBlob), which a stock
// client would check the bytes against.
func fetchFromSeeder(t *testing.T, tr *harness.Process, d digest.Digest, info, sums []byte) []byte {
	t.Helper()
	mi, err := torrentmeta.Parse(info, d)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(info)
	const id = "-TT0001-fetchfetchfe"
	peers := announce(t, tr, ih, id, 40100)
	if len(peers) != 1 {
		t.Fatalf("the tracker lists %v in the swarm of %s, want its seeder", peers, d)
	}
	nc, err := net.DialTimeout("tcp", peers[0], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var peerID [20]byte
	copy(peerID[:], id)
	if _, err := pp.Handshake(ctx, nc, &ih, peerID, pp.PeerExtensionBits{}); err != nil {
		t.Fatalf("handshake with the seeder of %s: %v", d, err)
	}
	w := bufio.NewWriter(nc)
	send := func(m pp.Message) {
		if err := m.WriteTo(w); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	send(pp.Message{Type: pp.Interested})
	const chunk = 16 << 10
	dec := pp.Decoder{R: bufio.NewReader(nc), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}}
	blob := make([]byte, mi.Length)
	got := make([]int64, mi.NumPieces())
	for done := 0; done < mi.NumPieces(); {
		// A bound against a hang, not a speed check.
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("from the seeder of %s, %d of %d pieces in: %v", d, done, mi.NumPieces(), err)
		}
		switch {
		case m.Keepalive:
		case m.Type == pp.Have:
			// The seeder offers a piece: ask for all of it.
			p := mi.Piece(int(m.Index))
			for off := int64(0); off < p.Length(); off += chunk {
				send(pp.Message{Type: pp.Request, Index: m.Index, Begin: pp.Integer(off), Length: pp.Integer(min(chunk, p.Length()-off))})
			}
		case m.Type == pp.Piece:
			i := int(m.Index)
			p := mi.Piece(i)
			copy(blob[p.Offset()+int64(m.Begin):], m.Piece)
			if got[i] += int64(len(m.Piece)); got[i] < p.Length() {
				continue
			}
			if sum := sha1.Sum(blob[p.Offset() : p.Offset()+p.Length()]); !bytes.Equal(sum[:], sums[i*20:i*20+20]) {
				t.Fatalf("piece %d of %s from the seeder does not match the tracker's hash", i, d)
			}
			// Telling the seeder frees room for its next offer.
			send(pp.Message{Type: pp.Have, Index: m.Index})
			done++
		}
	}
	return blob
}
