package seeder

import (
	"context"
	"testing"
)

// admitted reports whether the ticket may read now: with a context that is
// already done, wait returns at once either way.
func admitted(t *ticket) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return t.wait(ctx) == nil
}

// Two at a time per registry, in the order asked: a later blob reads once
// an earlier one is done, and registries do not wait for each other.
func TestReadQueueAdmitsInOrderPerRegistry(t *testing.T) {
	q := newReadQueue(2)
	a1, a2, a3, a4 := q.enqueue("a.test"), q.enqueue("a.test"), q.enqueue("a.test"), q.enqueue("a.test")
	b1 := q.enqueue("b.test")
	if !admitted(a1) || !admitted(a2) || admitted(a3) || admitted(a4) {
		t.Fatal("want the first two of a.test reading, the others waiting")
	}
	if !admitted(b1) {
		t.Fatal("b.test waits for a.test")
	}
	a2.leave()
	a2.leave() // leaving twice frees one place, not two
	if !admitted(a3) || admitted(a4) {
		t.Fatal("after one left, want the third reading and the fourth waiting")
	}
	a1.leave()
	if !admitted(a4) {
		t.Fatal("after two left, the fourth still waits")
	}
}

// A waiting ticket wakes when a place frees.
func TestReadQueueWakesTheNextInLine(t *testing.T) {
	q := newReadQueue(1)
	first, second := q.enqueue("a.test"), q.enqueue("a.test")
	done := make(chan error)
	go func() { done <- second.wait(context.Background()) }()
	first.leave()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	second.leave()
	if len(q.queues) != 0 {
		t.Fatalf("queues left behind: %v", q.queues)
	}
}
