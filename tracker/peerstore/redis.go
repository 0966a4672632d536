package peerstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures NewRedis. The zero value is ready to use.
type RedisOptions struct {
	// Prefix starts every key the store writes, so several deployments can
	// share one Redis. Default "blobswarm:swarm:".
	Prefix string
	// Now is the clock; default time.Now. Expiry is judged by the clock of
	// the tracker replica, so replicas need roughly synchronised clocks
	// (skew well below the peer TTL).
	Now func() time.Time
}

// Redis is a Store kept in Redis, so that several tracker replicas share one
// swarm view.
//
// Each swarm is three keys under a common hash tag (one cluster slot): a
// sorted set of seeder ids and one of leecher ids, both scored by expiry time
// in Unix milliseconds, and a hash from peer id to the encoded Peer. Keeping
// seeders apart lets Counts and the seeders-first choice of Peers work on
// counts and ranges instead of reading every peer. Writes are Lua scripts so
// that moving a peer from one set to the other is atomic between replicas and
// costs one round trip. The keys expire with their longest-lived peer, so an
// abandoned swarm disappears on its own.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client. The client stays owned by the caller.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	r := &Redis{client: client, prefix: opts.Prefix, now: opts.Now}
	if r.prefix == "" {
		r.prefix = "blobswarm:swarm:"
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// redisAnnounce upserts one peer. It first drops a bounded number of expired
// peers, so the hash cannot accumulate ids of peers that vanished while the
// swarm itself stays alive, then stretches the keys' TTL to the latest expiry.
//
// KEYS: seeders, leechers, peer hash. ARGV: now ms, expiry ms, peer id,
// encoded peer, "1" if the peer seeds.
var redisAnnounce = redis.NewScript(`
local now = tonumber(ARGV[1])
for i = 1, 2 do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, 64)) do
    redis.call('ZREM', KEYS[i], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
local into, from = KEYS[2], KEYS[1]
if ARGV[5] == '1' then into, from = KEYS[1], KEYS[2] end
redis.call('ZREM', from, ARGV[3])
redis.call('ZADD', into, ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
local last = 0
for i = 1, 2 do
  local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  if top[2] then last = math.max(last, tonumber(top[2])) end
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], math.max(1, last - now))
end
return 0
`)

// redisPeers returns up to a limit of encoded live peers, seeders first. A
// group that does not fit whole is read as a window starting at a random rank
// and wrapping around, so callers get different subsets at the cost of one
// range read.
//
// KEYS: seeders, leechers, peer hash. ARGV: now ms, limit, one random number
// in [0,1) for each set.
var redisPeers = redis.NewScript(`
local live = '(' .. ARGV[1]
local limit = tonumber(ARGV[2])
local out = {}
for i = 1, 2 do
  local n = redis.call('ZCOUNT', KEYS[i], live, '+inf')
  local take = math.min(n, limit - #out)
  if take > 0 then
    local from = 0
    if take < n then from = math.floor(tonumber(ARGV[2 + i]) * n) end
    local ids = redis.call('ZRANGEBYSCORE', KEYS[i], live, '+inf', 'LIMIT', from, take)
    if #ids < take then
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], live, '+inf', 'LIMIT', 0, take - #ids)) do
        ids[#ids + 1] = id
      end
    end
    for _, id in ipairs(ids) do
      local v = redis.call('HGET', KEYS[3], id)
      if v then out[#out + 1] = v end
    end
  end
end
return out
`)

func (r *Redis) keys(ih InfoHash) []string {
	base := r.prefix + "{" + hex.EncodeToString(ih[:]) + "}:"
	return []string{base + "seeders", base + "leechers", base + "peers"}
}

// Announce implements Store.
func (r *Redis) Announce(ctx context.Context, ih InfoHash, p Peer, ttl time.Duration) error {
	now := r.now()
	seeds := "0"
	if p.Seeder() {
		seeds = "1"
	}
	err := redisAnnounce.Run(ctx, r.client, r.keys(ih),
		now.UnixMilli(), now.Add(ttl).UnixMilli(), p.ID[:], encodePeer(p), seeds).Err()
	if err != nil {
		return fmt.Errorf("redis announce to swarm %x: %w", ih, err)
	}
	return nil
}

// Remove implements Store.
func (r *Redis) Remove(ctx context.Context, ih InfoHash, id PeerID) error {
	k := r.keys(ih)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, k[0], id[:])
		p.ZRem(ctx, k[1], id[:])
		p.HDel(ctx, k[2], string(id[:]))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis remove from swarm %x: %w", ih, err)
	}
	return nil
}

// Peers implements Store.
func (r *Redis) Peers(ctx context.Context, ih InfoHash, limit int, dst []Peer) ([]Peer, error) {
	if limit <= 0 {
		return dst, nil
	}
	vals, err := redisPeers.Run(ctx, r.client, r.keys(ih),
		r.now().UnixMilli(), limit, rand.Float64(), rand.Float64()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis peers of swarm %x: %w", ih, err)
	}
	dst = slices.Grow(dst, len(vals))
	for _, v := range vals {
		p, err := decodePeer([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("redis peers of swarm %x: %w", ih, err)
		}
		dst = append(dst, p)
	}
	return dst, nil
}

// Counts implements Store.
func (r *Redis) Counts(ctx context.Context, ih InfoHash) (seeders, leechers int, err error) {
	k := r.keys(ih)
	live := "(" + strconv.FormatInt(r.now().UnixMilli(), 10)
	var s, l *redis.IntCmd
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		s = p.ZCount(ctx, k[0], live, "+inf")
		l = p.ZCount(ctx, k[1], live, "+inf")
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("redis counts of swarm %x: %w", ih, err)
	}
	return int(s.Val()), int(l.Val()), nil
}

// encodePeer lays a peer out as id, left (big endian), then the address in
// netip's binary form.
func encodePeer(p Peer) []byte {
	b := make([]byte, 0, len(p.ID)+8+netipAddrPortMaxLen)
	b = append(b, p.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Left))
	b, _ = p.Addr.AppendBinary(b) // never fails
	return b
}

// netipAddrPortMaxLen is the longest binary netip.AddrPort: IPv6 with a zone
// is longer, but peers never carry zones.
const netipAddrPortMaxLen = 16 + 2

func decodePeer(b []byte) (Peer, error) {
	var p Peer
	if len(b) < len(p.ID)+8 {
		return p, errors.New("stored peer too short")
	}
	copy(p.ID[:], b)
	p.Left = int64(binary.BigEndian.Uint64(b[len(p.ID):]))
	if err := p.Addr.UnmarshalBinary(b[len(p.ID)+8:]); err != nil {
		return p, fmt.Errorf("stored peer address: %w", err)
	}
	return p, nil
}
