// Package turns hands out turns at something scarce per key (an upstream
// registry): at most a limit of holders per key at once, the others
// waiting in the order they asked. The mirror's blob fetches and the
// tracker seeder's origin fetches and body reads take their turns here.
//
// Keys do not wait for each other: a registry that is slow to answer
// holds up only its own line.
package turns

import (
	"context"
	"slices"
	"sync"
)

// Queue is one line per key.
type Queue struct {
	limit int // <= 0: no limit

	mu      sync.Mutex
	lines   map[string][]*Ticket // in the order asked
	waiting int                  // tickets beyond the limit of their line
}

// Ticket is one place in a key's line.
type Ticket struct {
	q     *Queue
	key   string
	ready chan struct{} // closed once the ticket is within its line's limit
}

// New returns a queue that lets limit tickets of each key through at
// once; limit <= 0 lets every ticket through.
func New(limit int) *Queue {
	return &Queue{limit: limit, lines: map[string][]*Ticket{}}
}

// Enqueue takes the next place in key's line. Whoever enqueues must
// Leave, whether or not the turn came.
func (q *Queue) Enqueue(key string) *Ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := &Ticket{q: q, key: key, ready: make(chan struct{})}
	q.lines[key] = append(q.lines[key], t)
	if q.within(len(q.lines[key]) - 1) {
		close(t.ready)
	} else {
		q.waiting++
	}
	return t
}

func (q *Queue) within(i int) bool { return q.limit <= 0 || i < q.limit }

// Waiting is how many tickets, of every key, wait for their turn.
func (q *Queue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiting
}

// Wait returns nil once the ticket's turn has come, or ctx's error if it
// ends first. A turn that has come wins over a ctx that has ended.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	default:
	}
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave gives the ticket's place up, its turn over or no longer wanted,
// and lets the next in line through. Leaving twice is a no-op.
func (t *Ticket) Leave() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[t.key]
	i := slices.Index(line, t)
	if i < 0 {
		return
	}
	line = slices.Delete(line, i, i+1)
	switch {
	case !q.within(i):
		q.waiting--
	case q.limit > 0 && len(line) >= q.limit:
		// The first of those waiting moves up into the place that freed.
		close(line[q.limit-1].ready)
		q.waiting--
	}
	if len(line) == 0 {
		delete(q.lines, t.key)
	} else {
		q.lines[t.key] = line
	}
}
