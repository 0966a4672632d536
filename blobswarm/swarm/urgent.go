package swarm

import (
	"sync"

	"github.com/anacrolix/torrent"

	"github.com/blobswarm/blobswarm/blobswarm/torrentstore"
)

// piecesOf is the first and last piece of a torrent with pieces of
// pieceLength that hold bytes [off, end), end > off.
func piecesOf(off, end, pieceLength int64) (first, last int) {
	return int(off / pieceLength), int((end - 1) / pieceLength)
}

// urgency is a download's say in which pieces the client asks for: each
// piece once its hash is known, and the pieces a reader of a range waits
// for (a lazy-pull snapshotter's table of contents, then its chunks) before
// the rest. A piece is never asked for before its hash is known: it could
// not be checked, and would be fetched for nothing.
//
// Raising a piece orders requests not yet sent. The client keeps most of a
// layer requested, and peers answer in the order asked, so a range wanted
// before the download starts comes first (the first read of a lazy pull),
// and one wanted later waits for what was asked before it. Withdrawing the
// requests and asking again, urgent first (DisallowDataDownload, then
// AllowDataDownload), made it worse: the peers took the pause as lost
// interest and stopped sending (fleet test, the lazy mirror got 0.1 of 25
// MB from its peer instead of half).
type urgency struct {
	t           *torrent.Torrent
	known       *torrentstore.Hashes
	pieceLength int64

	// mu orders the pieces' priorities: it is taken before the client's
	// lock, never the other way round.
	mu      sync.Mutex
	urgent  []bool
	stopped bool
}

func newUrgency(t *torrent.Torrent, known *torrentstore.Hashes, pieceLength int64) *urgency {
	return &urgency{t: t, known: known, pieceLength: pieceLength, urgent: make([]bool, t.NumPieces())}
}

// learn records piece i's hash and has the client ask for the piece: now,
// if a reader waits for it.
func (u *urgency) learn(i int, sum [20]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.known.Learn(i, sum) || u.stopped {
		return
	}
	if u.urgent[i] {
		u.t.Piece(i).SetPriority(torrent.PiecePriorityNow)
	} else {
		u.t.DownloadPieces(i, i+1)
	}
}

// want has the client ask for the pieces of bytes [off, end) before any
// other, those whose hash is known at once, the others when it comes.
func (u *urgency) want(off, end int64) {
	if end <= off {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return
	}
	first, last := piecesOf(off, end, u.pieceLength)
	for i := first; i <= min(last, len(u.urgent)-1); i++ {
		if u.urgent[i] {
			continue
		}
		u.urgent[i] = true
		if _, ok := u.known.Get(i); ok && !u.t.PieceState(i).Complete {
			u.t.Piece(i).SetPriority(torrent.PiecePriorityNow)
		}
	}
}

// stop ends the download's say: its torrent is about to go.
func (u *urgency) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stopped = true
}
