package swarm

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

// RangeSource reads bytes [off, off+n) of a blob from outside the swarm:
// the origin. A download that stalls takes the pieces no peer gives it
// from there, one at a time, and keeps trading with its peers meanwhile;
// falling back to the whole blob instead would throw away what the peers
// gave and make every host of a fleet that lost its seeder fetch the
// blob again.
type RangeSource func(ctx context.Context, off, n int64) (io.ReadCloser, error)

// missingPiece is what the choice of the next piece to fill looks at.
type missingPiece struct {
	index int
	// held by connected peers, and its hash known: the swarm may still
	// deliver it. A piece without a hash the swarm cannot deliver to this
	// node, whoever holds it.
	held bool
	// arriving: part of it came from a peer already.
	arriving bool
}

// pickFill chooses the piece to take from the origin: one that no
// connected peer holds, else one nobody has started to send, else any.
// Within the best class the choice is random, so hosts that stalled
// together fetch different pieces and then trade them.
func pickFill(missing []missingPiece, r *rand.Rand) (int, bool) {
	rank := func(p missingPiece) int {
		switch {
		case !p.held:
			return 0
		case !p.arriving:
			return 1
		}
		return 2
	}
	best, n := 3, 0
	var pick int
	for _, p := range missing {
		switch k := rank(p); {
		case k < best:
			best, n, pick = k, 1, p.index
		case k == best:
			// Reservoir sampling: each of the n candidates equally likely.
			n++
			if r.IntN(n) == 0 {
				pick = p.index
			}
		}
	}
	return pick, n > 0
}

// filler writes pieces the swarm did not deliver from a RangeSource into
// the torrent's storage and has the client verify them, which also tells
// the peers the node has them.
//
// The origin's bytes are checked against the hash the tracker sent for
// the piece. While the tracker still streams hashes, a piece without one
// waits for it. Once the hashes stopped coming (the tracker is gone, its
// seeder maybe mid-blob), the origin's own bytes give the piece its hash:
// the tracker's hashes come from the same origin, so it is the same root of
// trust, and the blob's digest still judges the whole at the commit. The
// piece is then complete like any other, served and relayed.
type filler struct {
	t    *torrent.Torrent
	info *metainfo.Info
	src  RangeSource
	// hashes are the pieces' hashes known so far; learn adds one.
	hashes *torrentstore.Hashes
	learn  func(i int, sum [20]byte)
	// hashesDone is closed once no more hashes will come.
	hashesDone <-chan struct{}
	rand       *rand.Rand
	buf        []byte
	// filled are the pieces this filler wrote and had verified: the
	// client may report one as complete a moment after its verify
	// returns, and asking the origin for it again would be a wasted piece.
	filled map[int]bool
}

func newFiller(t *torrent.Torrent, info *metainfo.Info, src RangeSource, hashes *torrentstore.Hashes, learn func(int, [20]byte), hashesDone <-chan struct{}) *filler {
	return &filler{t: t, info: info, src: src, hashes: hashes, learn: learn, hashesDone: hashesDone,
		rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), buf: make([]byte, info.PieceLength), filled: map[int]bool{}}
}

// run fills pieces until none is missing. The caller cancels ctx when the
// torrent completes or the download ends.
func (f *filler) run(ctx context.Context) error {
	for ctx.Err() == nil {
		// Taken before the look: a hash learned after it wakes the wait.
		changed := f.hashes.Changed()
		missing, waiting := f.missing()
		if i, ok := pickFill(missing, f.rand); ok {
			if err := f.fill(ctx, i); err != nil {
				return err
			}
			continue
		}
		if !waiting {
			return nil
		}
		// Every missing piece awaits its hash from the tracker.
		select {
		case <-changed:
		case <-f.hashesDone:
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// missing lists the pieces the fill may take now, and says whether others
// wait for their hash.
func (f *filler) missing() (out []missingPiece, waiting bool) {
	var held []interface{ Contains(uint32) bool }
	for _, pc := range f.t.PeerConns() {
		held = append(held, pc.PeerPieces())
	}
	hashesDone := false
	select {
	case <-f.hashesDone:
		hashesDone = true
	default:
	}
	for i := range f.info.NumPieces() {
		st := f.t.PieceState(i)
		if st.Complete || f.filled[i] {
			continue
		}
		_, known := f.hashes.Get(i)
		if !known && !hashesDone {
			waiting = true
			continue
		}
		p := missingPiece{index: i, arriving: st.Partial}
		for _, h := range held {
			if h.Contains(uint32(i)) {
				p.held = known
				break
			}
		}
		out = append(out, p)
	}
	return out, waiting
}

func (f *filler) fill(ctx context.Context, i int) error {
	p := f.info.Piece(i)
	buf := f.buf[:p.Length()]
	body, err := f.src(ctx, p.Offset(), p.Length())
	if err != nil {
		return fmt.Errorf("piece %d from the origin: %w", i, err)
	}
	_, err = io.ReadFull(body, buf)
	body.Close()
	if err != nil {
		return fmt.Errorf("piece %d from the origin: %w", i, err)
	}
	sum := sha1.Sum(buf)
	want, known := f.hashes.Get(i)
	if !known {
		// Only once the hashes stopped coming (see missing): the
		// origin's bytes set the piece's hash.
		f.learn(i, sum)
		want, _ = f.hashes.Get(i)
	}
	// Checked before it is written: a piece a peer completed meanwhile
	// is overwritten only with the same bytes.
	if sum != want {
		return fmt.Errorf("piece %d from the origin does not match the hash the tracker sent", i)
	}
	piece := f.t.Piece(i)
	if _, err := piece.Storage().WriteAt(buf, 0); err != nil {
		return fmt.Errorf("write piece %d: %w", i, err)
	}
	if err := piece.VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("verify piece %d: %w", i, err)
	}
	f.filled[i] = true
	return nil
}
