package store

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkWrite is a source of final bytes writing a 64 MiB blob into a
// Partial, which hashes it on the way, in the chunk sizes its callers
// use: the tracker's seeder copies 32 KiB at a time, a mirror's origin
// fetch 1 MiB. Not committed: the fsync would measure the disk. The
// baseline, "sequential", writes each chunk to a file and then hashes it,
// as Partial.Write did before it hashed on another core.
func BenchmarkWrite(b *testing.B) {
	const size = 64 << 20
	blob := make([]byte, size)
	rand.NewChaCha8([32]byte{}).Read(blob)
	d := digest.FromBytes(blob)
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, chunk := range []int{32 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("partial/chunk=%dKiB", chunk>>10), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				p, err := s.NewPartial(d)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < size; off += chunk {
					if _, err := p.Write(blob[off:min(off+chunk, size)]); err != nil {
						b.Fatal(err)
					}
				}
				p.Abort()
				p.Close()
			}
		})
		b.Run(fmt.Sprintf("sequential/chunk=%dKiB", chunk>>10), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, err := os.CreateTemp(s.tmpDir(), "baseline-*")
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				for off := 0; off < size; off += chunk {
					c := blob[off:min(off+chunk, size)]
					if _, err := f.WriteAt(c, int64(off)); err != nil {
						b.Fatal(err)
					}
					h.Write(c)
				}
				os.Remove(f.Name())
				f.Close()
			}
		})
	}
}
