package peerstore_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blobswarm/blobswarm/internal/testredis"
	"github.com/blobswarm/blobswarm/tracker/peerstore"
	"github.com/blobswarm/blobswarm/tracker/peerstore/storetest"
)

func newRedisClient(t *testing.T) *redis.Client {
	client := redis.NewClient(&redis.Options{Addr: testredis.Start(t)})
	t.Cleanup(func() { client.Close() })
	return client
}

func TestRedis(t *testing.T) { runRedisConformance(t, newRedisClient(t)) }

// The store's scripts run the same through go-redis's failover client,
// which finds the primary through Redis Sentinel.
func TestRedisThroughSentinel(t *testing.T) {
	set := testredis.StartSentinels(t, testredis.SentinelOptions{})
	runRedisConformance(t, set.Client(t))
}

func runRedisConformance(t *testing.T, client redis.UniversalClient) {
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, now func() time.Time) peerstore.Store {
		// One server for all subtests; the prefix keeps their swarms apart.
		prefix := fmt.Sprintf("test%d:", n.Add(1))
		return peerstore.NewRedis(client, peerstore.RedisOptions{Prefix: prefix, Now: now})
	})
}

func TestRedisKeysExpireWithTheirLastPeer(t *testing.T) {
	client := newRedisClient(t)
	ctx := context.Background()
	s := peerstore.NewRedis(client, peerstore.RedisOptions{Prefix: "ttl:"})
	ih := peerstore.InfoHash{7}
	long := peerstore.Peer{ID: peerstore.PeerID{1}, Addr: netip.MustParseAddrPort("10.0.0.1:1"), Left: 0}
	short := peerstore.Peer{ID: peerstore.PeerID{2}, Addr: netip.MustParseAddrPort("10.0.0.2:2"), Left: 5}

	if err := s.Announce(ctx, ih, long, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A short-lived peer arriving later must not cut the swarm's lifetime.
	if err := s.Announce(ctx, ih, short, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	keys := client.Keys(ctx, "ttl:*").Val()
	if len(keys) != 3 {
		t.Fatalf("keys %q, want seeders, leechers and peers of one swarm", keys)
	}
	for _, k := range keys {
		if ttl := client.PTTL(ctx, k).Val(); ttl < 59*time.Minute || ttl > time.Hour {
			t.Errorf("PTTL %s = %v, want about an hour", k, ttl)
		}
	}

	// An abandoned swarm disappears from Redis.
	abandoned := peerstore.InfoHash{8}
	if err := s.Announce(ctx, abandoned, short, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	pattern := fmt.Sprintf("ttl:{%x}*", abandoned)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := client.Keys(ctx, pattern).Val()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys %q of an abandoned swarm still there", left)
		}
	}
}

// Expired peers must not pile up in the peer hash of a swarm that lives on.
func TestRedisDropsExpiredPeerData(t *testing.T) {
	client := newRedisClient(t)
	ctx := context.Background()
	now := time.Unix(2_000_000_000, 0)
	s := peerstore.NewRedis(client, peerstore.RedisOptions{Prefix: "gc:", Now: func() time.Time { return now }})
	ih := peerstore.InfoHash{9}
	for i := range 50 {
		p := peerstore.Peer{ID: peerstore.PeerID{byte(i)}, Addr: netip.MustParseAddrPort("10.0.0.1:1"), Left: int64(i % 2)}
		if err := s.Announce(ctx, ih, p, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	survivor := peerstore.Peer{ID: peerstore.PeerID{'s'}, Addr: netip.MustParseAddrPort("10.0.0.2:2")}
	if err := s.Announce(ctx, ih, survivor, time.Hour); err != nil {
		t.Fatal(err)
	}
	fields := client.HKeys(ctx, fmt.Sprintf("gc:{%x}:peers", ih)).Val()
	if len(fields) != 1 || fields[0] != string(survivor.ID[:]) {
		t.Fatalf("peer hash holds %d entries, want only the live peer", len(fields))
	}
}
