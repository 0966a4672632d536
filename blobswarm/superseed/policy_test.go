package superseed

import (
	"slices"
	"testing"
	"time"
)

func TestPolicyHandsEachArrivingPieceToOnePeer(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPolicy(4, 256<<10, 1, time.Second, true)
	if o := p.Join(1, t0); len(o) != 0 {
		t.Fatalf("offers before any piece is held: %v", o)
	}
	p.Join(2, t0)
	var got []Offer
	for i := range 2 {
		got = append(got, p.Hold(i, t0)...)
	}
	if want := []Offer{{1, 0}, {2, 1}}; !slices.Equal(got, want) {
		t.Fatalf("offers %v, want %v: each piece to one peer with room", got, want)
	}
	p.Hold(2, t0)
	if o := p.Have(1, []int{0}, t0); !slices.Equal(o, []Offer{{1, 2}}) {
		t.Errorf("after peer 1 has piece 0: offers %v, want piece 2 to it", o)
	}
	p.SetElsewhere(true)
	if o := p.Hold(3, t0); len(o) != 0 {
		t.Errorf("with the blob complete elsewhere, a new piece is offered: %v", o)
	}
}
