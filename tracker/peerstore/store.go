// Package peerstore holds the tracker's view of each swarm: which peers
// announced an infohash recently, where they listen and how much they still
// need. Entries expire unless renewed, so a peer that vanishes without saying
// goodbye drops out on its own.
package peerstore

import (
	"context"
	"net/netip"
	"time"
)

// InfoHash identifies a torrent (a blob's swarm).
type InfoHash = [20]byte

// PeerID is the 20-byte id a BitTorrent client announces itself with.
type PeerID = [20]byte

// Peer is one member of a swarm as last announced.
type Peer struct {
	ID   PeerID
	Addr netip.AddrPort // where other peers can connect to it
	Left int64          // bytes it still needs; 0 means it seeds
}

// Seeder reports whether the peer has the whole torrent.
func (p Peer) Seeder() bool { return p.Left == 0 }

// Store is a swarm view shared by every announce the tracker serves.
// Implementations are safe for concurrent use.
type Store interface {
	// Announce inserts or replaces the peer with p.ID in the swarm of ih; it
	// stays listed for ttl unless announced again.
	Announce(ctx context.Context, ih InfoHash, p Peer, ttl time.Duration) error
	// Remove drops a peer from a swarm at once (event=stopped, blob evicted).
	// Removing a peer that is not there is not an error.
	Remove(ctx context.Context, ih InfoHash, id PeerID) error
	// Peers appends up to limit live peers of the swarm to dst, in no
	// particular order, and returns the extended slice. When the swarm holds
	// more than limit peers, seeders are chosen before leechers and the rest
	// of the choice varies from call to call, so that not every caller is
	// handed the same subset. A caller that reuses dst from call to call
	// saves an allocation per call (the tracker reads up to 201 peers per
	// announce).
	Peers(ctx context.Context, ih InfoHash, limit int, dst []Peer) ([]Peer, error)
	// Counts returns how many live seeders and leechers the swarm has.
	Counts(ctx context.Context, ih InfoHash) (seeders, leechers int, err error)
}
