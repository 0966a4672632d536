package turns

import (
	"context"
	"testing"
)

// admitted reports whether the ticket's turn has come: with a context that
// is already done, Wait returns at once either way.
func admitted(t *Ticket) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return t.Wait(ctx) == nil
}

// Two at a time per key, in the order asked: a later ticket goes once an
// earlier one left, and keys do not wait for each other.
func TestAdmitsInOrderPerKey(t *testing.T) {
	q := New(2)
	a1, a2, a3, a4 := q.Enqueue("a.test"), q.Enqueue("a.test"), q.Enqueue("a.test"), q.Enqueue("a.test")
	b1 := q.Enqueue("b.test")
	if !admitted(a1) || !admitted(a2) || admitted(a3) || admitted(a4) {
		t.Fatal("want the first two of a.test admitted, the others waiting")
	}
	if !admitted(b1) {
		t.Fatal("b.test waits for a.test")
	}
	if n := q.Waiting(); n != 2 {
		t.Fatalf("Waiting() = %d, want 2", n)
	}
	a2.Leave()
	a2.Leave() // leaving twice frees one place, not two
	if !admitted(a3) || admitted(a4) {
		t.Fatal("after one left, want the third admitted and the fourth waiting")
	}
	a1.Leave()
	if !admitted(a4) {
		t.Fatal("after two left, the fourth still waits")
	}
	if n := q.Waiting(); n != 0 {
		t.Fatalf("Waiting() = %d, want 0", n)
	}
}

// A waiting ticket that gives up leaves the line without a turn, and the
// one behind it moves up in its stead when a place frees.
func TestWaitingTicketLeaves(t *testing.T) {
	q := New(1)
	first, second, third := q.Enqueue("a.test"), q.Enqueue("a.test"), q.Enqueue("a.test")
	second.Leave()
	if n := q.Waiting(); n != 1 {
		t.Fatalf("Waiting() = %d after a waiting ticket left, want 1", n)
	}
	first.Leave()
	if !admitted(third) {
		t.Fatal("the third waits though the two before it left")
	}
}

// A waiting ticket wakes when a place frees, and an empty line is not kept.
func TestWakesTheNextInLine(t *testing.T) {
	q := New(1)
	first, second := q.Enqueue("a.test"), q.Enqueue("a.test")
	done := make(chan error)
	go func() { done <- second.Wait(context.Background()) }()
	first.Leave()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	second.Leave()
	if len(q.lines) != 0 {
		t.Fatalf("lines left behind: %v", q.lines)
	}
}

// Without a limit nobody waits.
func TestNoLimit(t *testing.T) {
	q := New(0)
	for range 100 {
		if !admitted(q.Enqueue("a.test")) {
			t.Fatal("a ticket waits without a limit")
		}
	}
	if n := q.Waiting(); n != 0 {
		t.Fatalf("Waiting() = %d, want 0", n)
	}
}
