package seeder

import (
	"context"
	"slices"
	"sync"
)

// readQueue lets a few blob bodies at a time be read from each origin
// registry, in the order the blobs were first asked for.
//
// Why: a mirror reads an image's layers ahead, all at once, in manifest
// order, so the seeder is asked for many blobs together. Read together,
// they would share the origin's link evenly to the end, and every layer
// would be whole only when all are: nobody's pull can verify and unpack
// its first layer before the last byte of the image has crossed the link.
// Read a few at a time, in order, the first layers finish early, and the
// image as a whole finishes no later. A few rather than one keep the link
// busy while one body ends and the next starts, and keep one slow blob
// from holding up the rest.
//
// The origin's answer headers are not queued: each blob's torrent is known
// at once, and mirrors set up their downloads while earlier layers are
// still read. A blob waiting its turn keeps its answer open, unread; an
// origin that drops such a connection fails that fetch, and the next ask
// starts it again.
// quickRead is the largest body read at once, out of turn: it holds the
// link for a moment, and a client often needs it first (an image's config
// comes before its layers), while the queue is there for big layers.
const quickRead = 1 << 20

type readQueue struct {
	limit int

	mu      sync.Mutex
	queues  map[string][]*ticket // per registry, in the order asked
	changed chan struct{}        // closed and replaced when a ticket leaves
}

// ticket is one blob's place in its registry's queue.
type ticket struct {
	q        *readQueue
	registry string
}

func newReadQueue(limit int) *readQueue {
	return &readQueue{limit: limit, queues: map[string][]*ticket{}, changed: make(chan struct{})}
}

// enqueue takes the next place in the registry's queue.
func (q *readQueue) enqueue(registry string) *ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := &ticket{q: q, registry: registry}
	q.queues[registry] = append(q.queues[registry], t)
	return t
}

// wait returns once the ticket is among the first limit of its registry:
// its blob may be read.
func (t *ticket) wait(ctx context.Context) error {
	q := t.q
	for {
		q.mu.Lock()
		i := slices.Index(q.queues[t.registry], t)
		changed := q.changed
		q.mu.Unlock()
		if i < q.limit {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// leave gives the ticket's place up: its blob is read, or will not be.
// Leaving twice is a no-op.
func (t *ticket) leave() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	queue := q.queues[t.registry]
	i := slices.Index(queue, t)
	if i < 0 {
		return
	}
	if len(queue) == 1 {
		delete(q.queues, t.registry)
	} else {
		q.queues[t.registry] = slices.Delete(queue, i, i+1)
	}
	close(q.changed)
	q.changed = make(chan struct{})
}
