package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

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

// Pieces land anywhere; the verified prefix is hashed while the rest
// arrives, and the commit hashes only the tail.
func TestCommitWithHashedPrefix(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data[:6], 0)
	if err := p.HashPrefix(6); err != nil {
		t.Fatal(err)
	}
	p.WriteAt(data[6:], 6)
	if err := p.HashPrefix(4); err != nil { // shrinking is a no-op
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
}

// When the origin takes over from the swarm it writes from the start
// again. If it sends other bytes than the swarm had hashed, the stored
// file would not be what was hashed: the commit must judge the new bytes.
func TestRewriteAfterHashedPrefixIsJudgedOnTheNewBytes(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("0123456789abcdef")
	d := digest.FromBytes(data)
	p, _ := s.NewPartial(d)
	p.Reserve(int64(len(data)))
	p.WriteAt(data, 0)
	if err := p.HashPrefix(8); err != nil {
		t.Fatal(err)
	}
	bad := []byte("XXXXXXXX")
	p.Write(bad) // overwrites the hashed prefix
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
