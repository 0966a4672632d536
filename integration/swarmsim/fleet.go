package swarmsim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/blobswarm/blobswarm/blobswarm/superseed"
)

// seeder stands for the tracker's seeder where a host index would be.
const seeder = -1

// fleet is the state of one rollout in simulated time (seconds).
type fleet struct {
	shape Shape
	p     Params
	rng   *rand.Rand
	now   float64
	base  time.Time // what now is counted from, for the seeder's policy

	blobs []*blob
	hosts []*host
	// links: host i's uplink is i, its downlink n+i; then the seeder's
	// uplink, the tracker's downlink and the origin's uplink.
	caps []float64

	fair  fairShare
	pairs [][2]int // links of each connection and read, for fair
	rates []float64
	// conns are the connections with a transfer on them, live the same
	// in a slice: a connection is its sender, receiver and blob.
	conns     map[[3]int]*conn
	live      []*conn
	transfers []transfer
	// changed says transfers or reads started or ended since the links
	// were last shared: otherwise the rates stand.
	changed  bool
	reads    []*read // origin reads under way
	nextRead int     // the next blob to read from the origin

	// announces are due in time order: a host's first starts it, every
	// later one comes Reannounce after the one before (a FIFO stays
	// sorted).
	announces []announce
	nextTick  float64
	started   []int // hosts that announced, in order
	dirty     []int // hosts that may start a transfer
	finished  int

	// incoming are the transfers to each host by index into transfers,
	// as they stood before this step's fetches, for steal.
	incoming [][]int32

	originBytes, seederBytes float64
	movedBytes               float64 // left of pieces steal moved
	seederUploads            int
	pieceTime                float64 // one piece at a host's link, seconds
}

// blob is one layer's torrent as the tracker sees it.
type blob struct {
	size, pieceLen int64
	pieces         int
	policy         *superseed.Policy
	held           int // pieces the seeder has, a prefix
	// completeKnown says a mirror with the whole blob announced: the
	// tracker's peer store has a seeder that is a mirror (tracker
	// mirrorHasAll), so the seeder's next tick sets elsewhere.
	completeKnown bool
}

type host struct {
	start, done float64
	blobs       []hostBlob
	uploads     int // transfers from this host under way
	incomplete  int // blobs not whole yet
	announced   bool
	dirty       bool // in fleet.dirty
}

// hostBlob is one host's torrent of one blob: anacrolix's view.
type hostBlob struct {
	has, busy, offered []bool
	// avail counts connected peers that have each piece (anacrolix's
	// availability, from their bitfields and haves).
	avail   []int32
	missing int
	// conns are the mirrors connected for this blob, out[k] whether
	// this host dialed conns[k]; the seeder's connection, always one this
	// host dialed, is not among them. known are the peers announce
	// answers told of and this host has not dialed yet (anacrolix's
	// Torrent.peers: a peer is dialed once per answer that names it).
	conns []int32
	out   []bool
	known []int32
}

// transfer is one piece crossing one peer connection.
type transfer struct {
	from, to    int
	blob, piece int
	left, rate  float64
	conn        *conn
}

// conn is a peer connection while pieces cross it: one TCP flow.
type conn struct {
	key    [3]int // sender, receiver, blob
	pieces int    // transfers on it
	at     int    // its place in fleet.live
	first  int    // the transfer of its lowest piece, while sharing
}

// read is one blob body coming from the origin into the seeder.
type read struct {
	blob          int
	arrived, rate float64
}

type announce struct {
	at   float64
	host int
}

func newFleet(s Shape, p Params) *fleet {
	f := &fleet{shape: s, p: p, rng: rand.New(rand.NewPCG(p.Seed, uint64(s.Hosts))), base: time.Unix(0, 0), conns: map[[3]int]*conn{}}
	n := s.Hosts
	down := s.Host / 8 * p.WireEfficiency
	f.caps = make([]float64, 2*n+3)
	for i := range n {
		f.caps[i] = min(down, s.Host/8*p.UploadCap)
		f.caps[n+i] = down
	}
	f.caps[f.seederUp()] = s.Tracker / 8 * p.WireEfficiency
	f.caps[f.trackerDown()] = s.Tracker / 8 * p.WireEfficiency
	f.caps[f.originUp()] = s.Origin / 8 * p.WireEfficiency
	f.pieceTime = float64(s.PieceLength()) / down

	layer, pl := s.layerSize(), s.PieceLength()
	for range s.Layers {
		pieces := int((layer + pl - 1) / pl)
		policy := superseed.NewPolicy(pieces, pl, p.SeedWindow, p.Patience, p.Spare)
		// The server measures what its link carries; the model knows it.
		policy.SetSeederRate(f.caps[f.seederUp()])
		f.blobs = append(f.blobs, &blob{size: layer, pieceLen: pl, pieces: pieces, policy: policy})
	}
	for _, at := range f.startTimes() {
		h := &host{start: at, done: -1, incomplete: s.Layers}
		for _, b := range f.blobs {
			h.blobs = append(h.blobs, hostBlob{
				has: make([]bool, b.pieces), busy: make([]bool, b.pieces), offered: make([]bool, b.pieces),
				avail: make([]int32, b.pieces), missing: b.pieces,
			})
		}
		f.hosts = append(f.hosts, h)
	}
	for i, h := range f.hosts {
		f.announces = append(f.announces, announce{at: h.start, host: i})
	}
	slices.SortStableFunc(f.announces, func(a, b announce) int { return cmp.Compare(a.at, b.at) })
	return f
}

// startTimes is when each host announces: the calibrated start-up, plus
// its place in the tracker's queue of start-up requests, the hosts' order
// in it random.
func (f *fleet) startTimes() []float64 {
	perHost := float64(1+3*f.shape.Layers) / f.p.TrackerRate
	at := make([]float64, f.shape.Hosts)
	for k, i := range f.rng.Perm(f.shape.Hosts) {
		at[i] = f.p.StartUp.Seconds() + float64(k+1)*perHost
	}
	return at
}

func (f *fleet) seederUp() int    { return 2 * f.shape.Hosts }
func (f *fleet) trackerDown() int { return 2*f.shape.Hosts + 1 }
func (f *fleet) originUp() int    { return 2*f.shape.Hosts + 2 }
func (f *fleet) up(i int) int {
	if i == seeder {
		return f.seederUp()
	}
	return i
}
func (f *fleet) clock() time.Time { return f.base.Add(time.Duration(f.now * float64(time.Second))) }

// step handles what is due now, starts what can start, shares the links
// and moves time on to the next thing that happens.
func (f *fleet) step() {
	f.due()
	f.startReads()
	f.index()
	for _, i := range f.dirty {
		f.fetch(i)
		f.steal(i)
	}
	f.dirty = f.dirty[:0]
	f.share()
	f.advance(f.nextDt())
}

// due handles the announces and the seeder's tick that are due.
func (f *fleet) due() {
	for len(f.announces) > 0 && f.announces[0].at <= f.now {
		a := f.announces[0]
		f.announces = f.announces[1:]
		f.announce(a.host)
		f.announces = append(f.announces, announce{at: a.at + f.p.Reannounce.Seconds(), host: a.host})
	}
	if f.now >= f.nextTick {
		// superseed.Server.tick: every TickEvery, elsewhere from the
		// tracker's peer store, then the policy's tick.
		for b, bl := range f.blobs {
			bl.policy.SetElsewhere(bl.completeKnown)
			f.offer(b, bl.policy.Tick(f.clock()))
		}
		f.nextTick += superseed.TickEvery(f.p.Patience, f.p.Spare).Seconds()
	}
}

// announce is one host's announce for each blob: the first one starts
// it; every one connects it to up to MaxPeers peers among those that
// announced (tracker/announce pickPeers: leechers that started together
// all rank alike, so at random), and tells the tracker of a blob it has
// whole.
func (f *fleet) announce(i int) {
	h := f.hosts[i]
	first := !h.announced
	if first {
		h.announced = true
		for b, bl := range f.blobs {
			// The seeder ranks first in every answer: every mirror
			// connects to it (superseed.blob.add, handout.join).
			f.offer(b, bl.policy.Join(i, f.clock()))
		}
		f.markDirty(i)
	}
	for b := range f.blobs {
		if h.blobs[b].missing == 0 {
			f.blobs[b].completeKnown = true
		}
		hb := &h.blobs[b]
		for _, j := range f.pick(i) {
			if !slices.Contains(hb.known, int32(j)) {
				hb.known = append(hb.known, int32(j))
			}
		}
		f.dial(b, i)
	}
	if first {
		f.started = append(f.started, i)
	}
}

// pick is an announce answer: up to MaxPeers distinct hosts that
// announced before, never i itself.
func (f *fleet) pick(i int) []int {
	pool := len(f.started)
	if pool <= f.p.MaxPeers {
		return slices.DeleteFunc(slices.Clone(f.started), func(j int) bool { return j == i })
	}
	seen := map[int]bool{i: true}
	var out []int
	for len(out) < f.p.MaxPeers {
		j := f.started[f.rng.IntN(pool)]
		if !seen[j] {
			seen[j] = true
			out = append(out, j)
		}
	}
	return out
}

// dial is host i dialing the peers it knows of for blob b while it
// wants outgoing connections, as anacrolix's Torrent.openNewConns does,
// in random order (PopMax's priorities are hashes of addresses). Dials
// take no time in the model: mirrors start within a fraction of a second
// of one another, and dialing is concurrent. Under MaxConns, the
// seeder's among them, a host at the cap still dials when its incoming
// connections outnumber its outgoing ones by more than one, dropping an
// incoming one, and accepts a dial when its outgoing ones outnumber its
// incoming ones by more than one, dropping an outgoing one
// (wantOutgoingConns, wantIncomingConns, addPeerConn); otherwise a dial
// at the cap is refused (a connection younger than a minute is never
// dropped as bad, and a rollout's connections are young). Whoever lost a
// connection dials again from what it still knows of.
func (f *fleet) dial(b, i int) {
	queue := []int{i}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		hi := &f.hosts[i].blobs[b]
		for len(hi.known) > 0 && f.wants(b, i, true) {
			k := f.rng.IntN(len(hi.known))
			j := int(hi.known[k])
			hi.known = slices.Delete(hi.known, k, k+1)
			if slices.Contains(hi.conns, int32(j)) || !f.wants(b, j, false) {
				continue
			}
			// A side at the cap drops its oldest connection of the
			// direction it has too many of, incoming for i, outgoing for
			// j (worstBadConn ranks by usefulness, then age; early on
			// none is useful).
			for _, side := range []struct {
				host int
				out  bool
			}{{i, false}, {j, true}} {
				hs := &f.hosts[side.host].blobs[b]
				if len(hs.conns)+1 < f.p.MaxConns {
					continue
				}
				peer := int(hs.conns[slices.Index(hs.out, side.out)])
				f.disconnect(b, side.host, peer)
				queue = append(queue, peer)
			}
			f.connect(b, i, j)
		}
	}
}

// wants says host i would take one more connection for blob b, dialed by
// it (outgoing) or by the peer.
func (f *fleet) wants(b, i int, outgoing bool) bool {
	hb := &f.hosts[i].blobs[b]
	if len(hb.conns)+1 < f.p.MaxConns {
		return true
	}
	out := 1 // the seeder's
	for _, o := range hb.out {
		if o {
			out++
		}
	}
	in := len(hb.conns) + 1 - out
	if outgoing {
		return in-out > 1
	}
	return out-in > 1
}

// connect opens i's connection to j for blob b; each side learns what
// the other has.
func (f *fleet) connect(b, i, j int) {
	hi, hj := &f.hosts[i].blobs[b], &f.hosts[j].blobs[b]
	hi.conns, hj.conns = append(hi.conns, int32(j)), append(hj.conns, int32(i))
	hi.out, hj.out = append(hi.out, true), append(hj.out, false)
	for p := range hi.has {
		if hj.has[p] {
			hi.avail[p]++
		}
		if hi.has[p] {
			hj.avail[p]++
		}
	}
	f.markDirty(i)
	f.markDirty(j)
}

// disconnect closes the connection of hosts i and j for blob b. Pieces
// crossing it go back to be asked for again, their bytes lost (anacrolix
// keeps the chunks already written; the model has no chunks).
func (f *fleet) disconnect(b, i, j int) {
	for _, e := range [][2]int{{i, j}, {j, i}} {
		ha, hb := &f.hosts[e[0]].blobs[b], &f.hosts[e[1]].blobs[b]
		k := slices.Index(ha.conns, int32(e[1]))
		ha.conns, ha.out = slices.Delete(ha.conns, k, k+1), slices.Delete(ha.out, k, k+1)
		for p := range ha.has {
			if hb.has[p] {
				ha.avail[p]--
			}
		}
		f.markDirty(e[0])
	}
	f.transfers = slices.DeleteFunc(f.transfers, func(t transfer) bool {
		if t.blob != b || !(t.from == i && t.to == j || t.from == j && t.to == i) {
			return false
		}
		f.hosts[t.to].blobs[b].busy[t.piece] = false
		f.hosts[t.from].uploads--
		f.release(t.conn)
		f.changed = true
		return true
	})
}

// offer applies the seeder's offers: the peer may now ask the seeder for
// the piece (superseed.conn.request refuses anything else).
func (f *fleet) offer(b int, offers []superseed.Offer) {
	for _, o := range offers {
		f.hosts[o.Peer].blobs[b].offered[o.Piece] = true
		f.markDirty(o.Peer)
	}
}

// markDirty queues a host that may start a transfer, once it announced.
func (f *fleet) markDirty(i int) {
	h := f.hosts[i]
	if h.announced && !h.dirty {
		h.dirty = true
		f.dirty = append(f.dirty, i)
	}
}

// startReads starts origin reads in the order the blobs were asked for,
// OriginReads at a time (tracker/seeder, readqueue.go), once the first
// mirror asked.
func (f *fleet) startReads() {
	if len(f.started) == 0 {
		return
	}
	for len(f.reads) < f.p.OriginReads && f.nextRead < len(f.blobs) {
		f.reads = append(f.reads, &read{blob: f.nextRead})
		f.changed = true
		f.nextRead++
	}
}

// fetch starts transfers for host i, as anacrolix requests them: every
// piece it lacks and is not getting that a connected peer has, rarest
// first, each from one peer (a chunk is asked of one peer at a time; the
// model does not split a piece between peers). The seeder counts as
// having only what it offered this host.
func (f *fleet) fetch(i int) {
	h := f.hosts[i]
	h.dirty = false
	for b := range f.blobs {
		for {
			piece, from := f.rarest(i, b)
			if piece < 0 {
				break
			}
			h.blobs[b].busy[piece] = true
			if from == seeder {
				f.seederUploads++
			} else {
				f.hosts[from].uploads++
			}
			f.transfers = append(f.transfers, transfer{from: from, to: i, blob: b, piece: piece,
				left: float64(f.pieceSize(b, piece)), conn: f.open(from, i, b)})
			f.changed = true
		}
	}
}

// index lists the transfers to each host, when some host may steal.
func (f *fleet) index() {
	if len(f.dirty) == 0 {
		return
	}
	if f.incoming == nil {
		f.incoming = make([][]int32, len(f.hosts))
	}
	for i := range f.incoming {
		f.incoming[i] = f.incoming[i][:0]
	}
	for k, t := range f.transfers {
		f.incoming[t.to] = append(f.incoming[t.to], int32(k))
	}
}

// steal moves pieces on their way to host i to another connected peer
// that has them, as anacrolix's PeerConn.applyRequestState does when a
// connection's state changed (a have, an unchoke, a chunk received: in
// the model a piece arrived at i or a peer, or a connection or offer
// came): a peer takes a request from the one currently asked when that
// leaves it with at most one more outstanding than that one has
// ("don't steal from the poor": own + 1 - (existing - 1) < 1), and on
// exactly one more only if it received a chunk more recently. Without
// it a piece asked of the seeder at 1,000 hosts waits behind every
// other host's, though all of its peers have it by then.
//
// The model counts requests in pieces, not chunks, and moves a piece
// whole, keeping the bytes already received (anacrolix keeps the chunks
// written). Counting chunks, anacrolix splits one slow piece's chunks
// between the slow sender and the stealer, and the stealer, done first,
// takes more; the model has no split, so on one more it moves the piece
// when the stealer's uplink would give more than twice the rate the
// piece arrives at: a connection that delivers chunks faster is the one
// that received one last, and the margin keeps a piece from moving
// back and forth between two about equal senders.
func (f *fleet) steal(i int) {
	for _, k := range f.incoming[i] {
		t := &f.transfers[k]
		hb := &f.hosts[i].blobs[t.blob]
		existing := t.conn.pieces
		to, best := 0, -1.0
		try := func(j int, share float64) {
			own := 0
			if c := f.conns[[3]int{j, i, t.blob}]; c != nil {
				own = c.pieces
			}
			if own+1 > existing || own+1 == existing && share <= 2*t.rate {
				return
			}
			if share > best {
				to, best = j, share
			}
		}
		if hb.offered[t.piece] && t.from != seeder {
			try(seeder, f.caps[f.seederUp()]/float64(f.seederUploads+1))
		}
		for _, j := range hb.conns {
			if int(j) != t.from && f.hosts[j].blobs[t.blob].has[t.piece] {
				try(int(j), f.caps[j]/float64(f.hosts[j].uploads+1))
			}
		}
		if best < 0 {
			continue
		}
		if t.from == seeder {
			f.seederUploads--
		} else {
			f.hosts[t.from].uploads--
		}
		f.release(t.conn)
		if to == seeder {
			f.seederUploads++
		} else {
			f.hosts[to].uploads++
		}
		t.from, t.conn = to, f.open(to, i, t.blob)
		f.movedBytes += t.left
		f.changed = true
	}
}

// open is the connection a new transfer crosses.
func (f *fleet) open(from, to, b int) *conn {
	key := [3]int{from, to, b}
	c := f.conns[key]
	if c == nil {
		c = &conn{key: key, at: len(f.live)}
		f.conns[key] = c
		f.live = append(f.live, c)
	}
	c.pieces++
	return c
}

// release is a transfer off its connection.
func (f *fleet) release(c *conn) {
	c.pieces--
	if c.pieces > 0 {
		return
	}
	delete(f.conns, c.key)
	last := f.live[len(f.live)-1]
	f.live[c.at], last.at = last, c.at
	f.live = f.live[:len(f.live)-1]
}

func (f *fleet) pieceSize(b, piece int) int64 {
	bl := f.blobs[b]
	return min(bl.pieceLen, bl.size-int64(piece)*bl.pieceLen)
}

// rarest is the piece host i fetches next in blob b and its source, or
// -1. Ties go to a random piece: anacrolix orders equal pieces by index,
// but every host's index order of equally rare pieces is a different
// set, and a random start keeps the model from every host asking for
// piece 0 first.
func (f *fleet) rarest(i, b int) (piece, from int) {
	hb := &f.hosts[i].blobs[b]
	n := len(hb.has)
	piece, from = -1, seeder
	best := int32(math.MaxInt32)
	off := f.rng.IntN(n)
	for k := range n {
		p := (off + k) % n
		if hb.has[p] || hb.busy[p] {
			continue
		}
		a := hb.avail[p]
		if hb.offered[p] {
			a++
		}
		if a == 0 || a >= best {
			continue
		}
		if src, ok := f.source(i, b, p); ok {
			piece, from, best = p, src, a
		}
	}
	return piece, from
}

// source is the peer host i gets piece p of blob b from: of those that
// have it, the one whose uplink would give it the largest share (anacrolix
// spreads requests over the peers that have a piece, and the fastest
// answer most).
func (f *fleet) source(i, b, p int) (int, bool) {
	hb := &f.hosts[i].blobs[b]
	best, share := 0, -1.0
	if hb.offered[p] {
		best, share = seeder, f.caps[f.seederUp()]/float64(f.seederUploads+1)
	}
	for _, j := range hb.conns {
		if !f.hosts[j].blobs[b].has[p] {
			continue
		}
		if s := f.caps[j] / float64(f.hosts[j].uploads+1); s > share {
			best, share = int(j), s
		}
	}
	return best, share >= 0
}

// share sets every transfer's and origin read's rate. Each connection is
// one TCP flow (fairShare); what it carries is split as its sender
// answers requests: a mirror's anacrolix sends the chunks a peer asked
// for in map order (PeerConn.upload ranges over peerRequests), so every
// piece on the connection moves at once and completes late; the seeder
// sends the lowest piece first (superseed conn.next), one after the
// other.
func (f *fleet) share() {
	if !f.changed {
		return
	}
	f.changed = false
	n := f.shape.Hosts
	f.pairs = f.pairs[:0]
	for k, c := range f.live {
		c.at, c.first = k, -1
		f.pairs = append(f.pairs, [2]int{f.up(c.key[0]), n + c.key[1]})
	}
	for k, t := range f.transfers {
		if c := t.conn; c.first < 0 || t.piece < f.transfers[c.first].piece {
			c.first = k
		}
	}
	conns := len(f.pairs)
	for range f.reads {
		f.pairs = append(f.pairs, [2]int{f.originUp(), f.trackerDown()})
	}
	f.rates = resize(f.rates, len(f.pairs))
	f.fair.allocate(f.caps, f.pairs, f.rates)
	for k := range f.transfers {
		t := &f.transfers[k]
		switch c := t.conn; {
		case t.from != seeder:
			t.rate = f.rates[c.at] / float64(c.pieces)
		case c.first == k:
			t.rate = f.rates[c.at]
		default:
			t.rate = 0
		}
	}
	for k, r := range f.reads {
		r.rate = f.rates[conns+k]
	}
}

// nextDt is the time to the next event: a transfer ending, a piece
// arriving at the seeder, an announce or tick. Events less than Step of
// a piece's time at a host's link apart are taken together: a large
// fleet has thousands a second. (A step as a share of the typical
// transfer's time instead, longer where many connections share a link,
// moved the 32-host prediction by 6-25%: each piece's arrival starts the
// next transfer, and a step late there is late for every hop after.)
func (f *fleet) nextDt() float64 {
	dt := f.nextTick - f.now
	if len(f.announces) > 0 {
		dt = min(dt, f.announces[0].at-f.now)
	}
	floor := f.p.Step * f.pieceTime
	if dt < floor {
		// An announce or tick due within a step waits for the step's
		// end: at 10,000 hosts the announces come a millisecond apart.
		return floor
	}
	next := math.Inf(1)
	for _, t := range f.transfers {
		if t.rate > 0 {
			if next = min(next, t.left/t.rate); next <= floor {
				// Nothing ends sooner than a step.
				return floor
			}
		}
	}
	for _, r := range f.reads {
		bl := f.blobs[r.blob]
		boundary := min(float64(int64(bl.held+1)*bl.pieceLen), float64(bl.size))
		next = min(next, (boundary-r.arrived)/r.rate)
	}
	return min(dt, max(next, floor))
}

// advance moves time by dt: bytes flow, pieces arrive at the seeder and
// at hosts.
func (f *fleet) advance(dt float64) {
	f.now += dt
	for _, r := range f.reads {
		bl := f.blobs[r.blob]
		got := min(r.rate*dt, float64(bl.size)-r.arrived)
		r.arrived += got
		f.originBytes += got
		for bl.held < bl.pieces && r.arrived >= min(float64(int64(bl.held+1)*bl.pieceLen), float64(bl.size))-1e-6 {
			// tracker/seeder download: each piece is hashed and held
			// (Growing.Have) as soon as its bytes are in.
			f.offer(r.blob, bl.policy.Hold(bl.held, f.clock()))
			bl.held++
		}
	}
	reading := slices.DeleteFunc(f.reads, func(r *read) bool { return f.blobs[r.blob].held == f.blobs[r.blob].pieces })
	f.changed = f.changed || len(reading) < len(f.reads)
	f.reads = reading
	var ended []transfer
	for k := range f.transfers {
		t := &f.transfers[k]
		sent := min(t.rate*dt, t.left)
		t.left -= sent
		if t.from == seeder {
			f.seederBytes += sent
		}
		if t.left <= 1e-6 {
			ended = append(ended, *t)
		}
	}
	if len(ended) == 0 {
		return
	}
	f.transfers = slices.DeleteFunc(f.transfers, func(t transfer) bool { return t.left <= 1e-6 })
	f.changed = true
	for _, t := range ended {
		f.arrived(t)
	}
}

// arrived is a piece verified at its host: its peers learn of it (have),
// and so does the seeder's policy.
func (f *fleet) arrived(t transfer) {
	h := f.hosts[t.to]
	hb := &h.blobs[t.blob]
	hb.busy[t.piece], hb.has[t.piece] = false, true
	hb.missing--
	if t.from == seeder {
		f.seederUploads--
	} else {
		f.hosts[t.from].uploads--
	}
	f.release(t.conn)
	for _, j := range hb.conns {
		f.hosts[j].blobs[t.blob].avail[t.piece]++
		f.markDirty(int(j))
	}
	f.markDirty(t.to)
	f.offer(t.blob, f.blobs[t.blob].policy.Have(t.to, []int{t.piece}, f.clock()))
	if hb.missing > 0 {
		return
	}
	h.incomplete--
	if h.incomplete == 0 {
		h.done = f.now
		f.finished++
	}
}
