package testredis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is what the sentinels of a SentinelSet call its primary.
const MasterName = "blobswarm"

// Sentinel timings, short so that a test sees a failover within seconds
// of killing the primary: the sentinels call it down after a second
// without an answer, and retry a failover that stalled after five.
const (
	downAfter       = time.Second
	failoverTimeout = 5 * time.Second
)

// SentinelOptions shape a SentinelSet.
type SentinelOptions struct {
	Host Host
	// Replicas is how many servers replicate the primary: at least one
	// for a failover to have somewhere to go.
	Replicas int
	// Sentinels is how many sentinels watch the primary (default 1); a
	// majority of them must agree it is down.
	Sentinels int
}

// SentinelSet is a primary, its replicas and the Redis Sentinels that
// watch them, all on 127.0.0.1 with their own ports and directories.
type SentinelSet struct {
	// Sentinels are the sentinels' addresses.
	Sentinels []string
	host      Host
	servers   map[string]*server // the primary and replicas by address
}

// StartSentinels runs a sentinel set and returns once every sentinel
// knows every replica and every other sentinel, so that a failover can
// happen from then on. Everything stops when the test ends.
//
// Without a redis-server binary the test is skipped, unless REQUIRE_E2E=1
// demands that it run.
func StartSentinels(t testing.TB, opts SentinelOptions) *SentinelSet {
	t.Helper()
	bin := binary(t)
	if opts.Sentinels == 0 {
		opts.Sentinels = 1
	}
	s := &SentinelSet{host: opts.Host, servers: map[string]*server{}}
	primary := startServer(t, bin, s.host, "redis", noPersistence)
	s.servers[primary.addr] = primary
	host, port, err := net.SplitHostPort(primary.addr)
	if err != nil {
		t.Fatal(err)
	}
	for range opts.Replicas {
		r := startServer(t, bin, s.host, "redis", append([]string{"replicaof " + host + " " + port}, noPersistence...))
		s.servers[r.addr] = r
	}
	for range opts.Sentinels {
		sn := startServer(t, bin, s.host, "sentinel", []string{
			fmt.Sprintf("sentinel monitor %s %s %s %d", MasterName, host, port, opts.Sentinels/2+1),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", MasterName, downAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", MasterName, failoverTimeout.Milliseconds()),
		})
		s.Sentinels = append(s.Sentinels, sn.addr)
	}
	// Sentinels learn of replicas and of each other from the primary,
	// every few seconds.
	s.await(t, "every sentinel to know the whole set", func(ctx context.Context, sc *redis.SentinelClient) (bool, error) {
		m, err := sc.Master(ctx, MasterName).Result()
		return m["num-slaves"] == strconv.Itoa(opts.Replicas) &&
			m["num-other-sentinels"] == strconv.Itoa(opts.Sentinels-1), err
	})
	return s
}

// URL is the set as the tracker's redis setting: go-redis's failover URL,
// the first sentinel's address with the others in addr.
func (s *SentinelSet) URL() string {
	q := url.Values{"master_name": {MasterName}}
	for _, a := range s.Sentinels[1:] {
		q.Add("addr", a)
	}
	return "redis://" + s.Sentinels[0] + "/0?" + q.Encode()
}

// Client is a failover client of the set for the test, closed when it
// ends.
func (s *SentinelSet) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: s.Sentinels, Dialer: s.host.Dial})
	t.Cleanup(func() { c.Close() })
	return c
}

// KillPrimary kills the server the sentinels call the primary with
// SIGKILL, as a crash would, and returns its address.
func (s *SentinelSet) KillPrimary(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0], Dialer: s.host.Dial})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		t.Fatalf("ask sentinel %s for the primary: %v", s.Sentinels[0], err)
	}
	addr := net.JoinHostPort(a[0], a[1])
	p, ok := s.servers[addr]
	if !ok {
		t.Fatalf("the sentinels name %s the primary, which is no server of the set", addr)
	}
	p.kill()
	return addr
}

// AwaitFailover waits until every sentinel names a primary other than old
// and that server says it is one, and returns its address.
func (s *SentinelSet) AwaitFailover(t testing.TB, old string) string {
	t.Helper()
	var primary string
	s.await(t, "the sentinels to promote a replica of "+old, func(ctx context.Context, sc *redis.SentinelClient) (bool, error) {
		a, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		if err != nil {
			return false, err
		}
		primary = net.JoinHostPort(a[0], a[1])
		if primary == old {
			return false, nil
		}
		c := s.host.client(primary)
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master", err
	})
	return primary
}

// await polls every sentinel with ok until all say yes, for at most a
// minute (sentinels gossip every two seconds, and a failover takes a few
// rounds).
func (s *SentinelSet) await(t testing.TB, what string, ok func(context.Context, *redis.SentinelClient) (bool, error)) {
	t.Helper()
	clients := make([]*redis.SentinelClient, len(s.Sentinels))
	for i, a := range s.Sentinels {
		clients[i] = redis.NewSentinelClient(&redis.Options{Addr: a, Dialer: s.host.Dial, MaxRetries: -1})
		defer clients[i].Close()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var pending []string
		for i, sc := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			yes, err := ok(ctx, sc)
			cancel()
			if !yes {
				pending = append(pending, fmt.Sprintf("%s (%v)", s.Sentinels[i], err))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s; not yet: %s", what, strings.Join(pending, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
