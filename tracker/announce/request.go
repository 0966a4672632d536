// Package announce serves the tracker's HTTP announce (BEP 3) with compact
// peer lists (BEP 23, and BEP 7's peers6), on top of a peerstore.Store.
package announce

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/anacrolix/torrent/tracker"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
)

// Request is a parsed announce.
//
// anacrolix/torrent's tracker.AnnounceRequest is the UDP wire struct, with
// the address as an IPv4-only uint32 and UDP-only fields, so only its event
// type is reused here.
type Request struct {
	InfoHash   peerstore.InfoHash
	PeerID     peerstore.PeerID
	Port       uint16
	Uploaded   int64
	Downloaded int64
	Left       int64
	Event      tracker.AnnounceEvent
	NumWant    int        // -1 when the client leaves the choice to the tracker
	IP         netip.Addr // the ip parameter; invalid when absent or not an address
}

// ParseAnnounce parses the raw query string of an announce. Its errors are
// meant for the client: they become the response's failure reason.
//
// info_hash and peer_id are binary and arrive percent-encoded. The decoding
// error of the raw query is checked rather than going through URL.Query, which
// silently drops pairs it cannot decode and would turn a malformed info_hash
// into a missing one.
// compact is not read: BEP 23 makes it advisory and every answer is compact.
func ParseAnnounce(rawQuery string) (Request, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Request{}, fmt.Errorf("malformed query: %w", err)
	}
	r := Request{NumWant: -1}
	if err := parseID(q, "info_hash", &r.InfoHash); err != nil {
		return Request{}, err
	}
	if err := parseID(q, "peer_id", &r.PeerID); err != nil {
		return Request{}, err
	}
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		return Request{}, fmt.Errorf("port must be a number from 1 to 65535, got %q", q.Get("port"))
	}
	r.Port = uint16(port)
	if !q.Has("left") {
		return Request{}, errors.New("left is missing")
	}
	for _, f := range []struct {
		key string
		dst *int64
	}{{"left", &r.Left}, {"uploaded", &r.Uploaded}, {"downloaded", &r.Downloaded}} {
		if !q.Has(f.key) {
			continue
		}
		n, err := strconv.ParseInt(q.Get(f.key), 10, 64)
		if err != nil || n < 0 {
			return Request{}, fmt.Errorf("%s must be a byte count, got %q", f.key, q.Get(f.key))
		}
		*f.dst = n
	}
	if err := r.Event.UnmarshalText([]byte(q.Get("event"))); err != nil {
		return Request{}, fmt.Errorf("unknown event %q", q.Get("event"))
	}
	if q.Has("numwant") {
		n, err := strconv.Atoi(q.Get("numwant"))
		if err != nil {
			return Request{}, fmt.Errorf("numwant must be a number, got %q", q.Get("numwant"))
		}
		r.NumWant = max(n, -1)
	}
	// anacrolix/torrent repeats ip, once per address family; BEP 3 also
	// allows a DNS name, which is not resolved here.
	for _, s := range q["ip"] {
		if ip, err := netip.ParseAddr(s); err == nil {
			r.IP = ip.Unmap()
			break
		}
	}
	return r, nil
}

func parseID(q url.Values, key string, dst *[20]byte) error {
	v, ok := q[key]
	if !ok {
		return fmt.Errorf("%s is missing", key)
	}
	if len(v[0]) != len(dst) {
		return fmt.Errorf("%s must be %d bytes, got %d", key, len(dst), len(v[0]))
	}
	copy(dst[:], v[0])
	return nil
}
