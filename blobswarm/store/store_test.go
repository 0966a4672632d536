package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommitInOrder(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	d := digest.FromBytes(data)
	p, err := s.NewPartial(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial visible before commit: %v", err)
	}
	p.Write(data[:4])
	p.Write(data[4:])
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	f, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if string(got) != string(data) {
		t.Fatalf("stored %q", got)
	}
	if n := entries(t, filepath.Join(s.Root(), "tmp")); len(n) != 0 {
		t.Fatalf("tmp not empty after commit: %v", n)
	}
}

func TestCommitOutOfOrder(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data[8:], 8)
	p.WriteAt(data[:8], 0)
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
}

// hashedUpTo waits until the background hash of p's verified prefix has
// reached n bytes.
func hashedUpTo(t *testing.T, p *Partial, n int64) {
	t.Helper()
	for {
		p.hashMu.Lock()
		hashed := p.hashed
		p.hashMu.Unlock()
		if hashed >= n {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("hash stuck at %d of %d verified bytes", hashed, n)
		case <-time.After(time.Millisecond):
		}
	}
}

// Pieces land anywhere; the verified prefix is hashed while the rest
// arrives, and the commit hashes only the tail.
func TestCommitWithHashedPrefix(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data[:6], 0)
	if p.Verified() != 0 {
		t.Fatalf("WriteAt made %d bytes final", p.Verified())
	}
	if !p.Advance(6) {
		t.Fatal("Advance(6) did not grow an empty prefix")
	}
	hashedUpTo(t, p, 6)
	p.WriteAt(data[6:], 6)
	if p.Advance(4) || p.Verified() != 6 { // shrinking is a no-op
		t.Fatalf("Advance(4) after Advance(6): verified %d", p.Verified())
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
}

// When the origin takes over from the swarm it asks for the bytes after
// the verified prefix, and Write appends them there.
func TestWriteResumesAfterVerifiedPrefix(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data[:8], 0)
	p.Advance(8)
	if _, err := p.Write(data[8:]); err != nil {
		t.Fatal(err)
	}
	if p.Verified() != int64(len(data)) {
		t.Fatalf("verified %d after the rest was written, want %d", p.Verified(), len(data))
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// An origin that ignores the Range sends the blob from the start again. If
// it sends other bytes than the swarm had verified and hashed, the stored
// file would not be what was hashed: the commit must judge the new bytes.
func TestRewriteAfterHashedPrefixIsJudgedOnTheNewBytes(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data, 0)
	p.Advance(8)
	hashedUpTo(t, p, 8)
	p.Rewind()
	bad := []byte("XXXXXXXX")
	p.Write(bad) // overwrites the hashed prefix
	if p.Verified() != 8 {
		t.Fatalf("verified %d after the rewrite, want the 8 readers may have", p.Verified())
	}
	if err := p.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit after a different rewrite = %v, want ErrDigestMismatch", err)
	}
	p.Close()
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob with rewritten bytes stored: %v", err)
	}
}

func TestMismatchIsDiscarded(t *testing.T) {
	s, _ := Open(t.TempDir())
	d := digest.FromString("what was asked for")
	p, _ := s.NewPartial(d)
	p.Write([]byte("something else"))
	if err := p.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	p.Close()
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mismatched blob stored: %v", err)
	}
	if n := entries(t, filepath.Join(s.Root(), "tmp")); len(n) != 0 {
		t.Fatalf("mismatched partial left behind: %v", n)
	}
}

// A process killed mid-download leaves a temp file; the next Open must not
// let it survive, let alone become a blob.
func TestOpenDiscardsPartials(t *testing.T) {
	root := t.TempDir()
	s, _ := Open(root)
	d := digest.FromString("full content")
	p, _ := s.NewPartial(d)
	p.Write([]byte("full"))
	// No Commit, no Abort: the process "dies" here.
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := entries(t, filepath.Join(root, "tmp")); len(n) != 0 {
		t.Fatalf("partial survived reopen: %v", n)
	}
	if _, err := s2.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial became visible: %v", err)
	}
}

func TestWalkAndDelete(t *testing.T) {
	s, _ := Open(t.TempDir())
	want := map[digest.Digest]int64{}
	for _, c := range []string{"a", "bb", "ccc"} {
		d := digest.FromString(c)
		p, _ := s.NewPartial(d)
		p.Write([]byte(c))
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
		p.Close()
		want[d] = int64(len(c))
	}
	got := map[digest.Digest]int64{}
	s.Walk(func(d digest.Digest, size int64) error { got[d] = size; return nil })
	if len(got) != 3 {
		t.Fatalf("Walk = %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Fatalf("Walk %s = %d, want %d", d, got[d], n)
		}
	}
	d := digest.FromString("a")
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatal("deleted blob still there")
	}
}

// ledger is a Quota that refuses what does not fit in limit and records
// how each reservation ended.
type ledger struct {
	limit, held int64
	ended       []string
}

func (l *ledger) Reserve(d digest.Digest, size int64) (Reservation, error) {
	if l.held+size > l.limit {
		return nil, errors.New("does not fit")
	}
	l.held += size
	return &held{l: l, size: size}, nil
}

type held struct {
	l    *ledger
	size int64
}

func (h *held) Stored()  { h.l.ended = append(h.l.ended, "stored") }
func (h *held) Release() { h.l.held -= h.size; h.l.ended = append(h.l.ended, "released") }

// Every partial holds its size against the store's quota from Reserve
// until it is stored or given up, whichever way: committed, aborted, or
// failing its digest. A refused size writes nothing.
func TestPartialsHoldRoomUntilSettled(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	q := &ledger{limit: 100}
	s.Account(q)
	data := []byte("0123456789")
	partial := func() *Partial {
		p, err := s.NewPartial(digest.FromBytes(data))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	big := partial()
	if err := big.Reserve(101); err == nil {
		t.Fatal("a size over the quota was reserved")
	}
	if fi, err := big.f.Stat(); err != nil || fi.Size() != 0 {
		t.Fatalf("a refused partial holds %d bytes (%v)", fi.Size(), err)
	}
	big.Abort()

	stored, aborted, wrong := partial(), partial(), partial()
	for _, p := range []*Partial{stored, aborted, wrong} {
		if err := p.Reserve(int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if err := p.Reserve(int64(len(data))); err != nil { // again: held once
			t.Fatal(err)
		}
	}
	if q.held != 30 {
		t.Fatalf("%d bytes held for three blobs of 10, want 30", q.held)
	}
	stored.Write(data)
	if err := stored.Commit(); err != nil {
		t.Fatal(err)
	}
	aborted.Abort()
	wrong.Write([]byte("9876543210"))
	if err := wrong.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit of wrong bytes = %v", err)
	}
	if want := []string{"stored", "released", "released"}; !slices.Equal(q.ended, want) {
		t.Fatalf("reservations ended %v, want %v", q.ended, want)
	}
}
