// Package flight shares one in-progress blob download with every reader that
// wants it. The fetcher (HTTP from an origin, or pieces from a swarm) writes
// through the flight and says how far the verified prefix reaches; readers
// stream that prefix as it grows instead of waiting for the whole blob.
//
// A flight is the one owner of its partial file, from the moment its fetch
// starts (Begin): a flight waiting for its turn holds no file, so a queue
// of fetches costs no file descriptors. Sources write through it
// (a swarm sees it only as a small sink: reserve, write at, read at,
// advance), readers read through it, and the fetcher commits or aborts
// through it. The verified prefix, the bytes that are final, is recorded
// once, in the store.Partial underneath: it bounds what readers see, where
// another source resumes, and how far the digest may be hashed before the
// commit, and the last is the store's guarantee, so the record sits next
// to the hash. The flight adds what readers wait on (the size, the
// outcome, a wake-up on every change) and the pieces that passed their
// check wherever they lie: torrent storage says so of each piece, and the
// flight advances the prefix over them.
//
// A range (a lazy-pull snapshotter reads a layer's table of contents near
// its end, then scattered chunks) need not wait for the prefix: bytes
// checked piece by piece against hashes of a blob whose digest matched
// are the blob's own wherever they lie. A ranged reader that waits says
// which bytes it waits for, and the source (a swarm download) asks for
// those pieces first.
package flight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
)

// Flight is one blob on its way into the store.
type Flight struct {
	// want is the size a manifest gives the blob, -1 if none is known.
	want int64

	mu sync.Mutex
	// partial is set once by Begin, under mu, before the size can be
	// known: whoever has seen the size may use it without the lock.
	partial *store.Partial

	size    int64 // -1 until the source said how big the blob is
	checked bool  // the bytes matched the digest: readers may have the last one
	// pieces are the bytes checked piece by piece, where Write's are
	// only as good as the origin sent them.
	pieces spans
	// vouched says the piece hashes came from a source that checked the
	// whole blob's digest, so the bytes in pieces are the blob's own.
	vouched bool
	done    bool
	err     error
	refs    int
	changed chan struct{} // closed and replaced on every change readers wait for
	// wanted counts the ranged readers waiting for each span, and
	// onWant hears of every span when its first reader starts waiting.
	wanted map[span]int
	onWant func(off, end int64)
}

// New returns a flight whose fetch has yet to start, for a blob a
// manifest says is want bytes (-1: no manifest is known). The caller holds
// the first reference and must Release it when the fetch is over.
func New(want int64) *Flight {
	return &Flight{want: want, size: -1, refs: 1, changed: make(chan struct{})}
}

// Begin gives the flight the partial file its fetch writes, when the
// fetch starts. The flight owns it from now on: Commit or Abort judges
// it, the last Release closes it.
func (f *Flight) Begin(p *store.Partial) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = p
}

func (f *Flight) notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notifyLocked()
}

func (f *Flight) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// SizeError refuses a blob whose source claims another size than the
// manifest that named it: its bytes cannot match the digest, and a claim
// above the manifest's would take disk for bytes the blob does not have.
type SizeError struct {
	Digest     digest.Digest
	Size, Want int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("blob %s: the source claims %d bytes, the manifest's descriptor %d: not fetched", e.Digest, e.Size, e.Want)
}

// Reserve gives the blob its size once the source knows it: the disk
// space is taken, and readers learn how much is coming. A size other than
// the manifest's is refused (*SizeError), and so is one the store's quota
// has no room for.
func (f *Flight) Reserve(size int64) error {
	if f.want >= 0 && size != f.want {
		return &SizeError{Digest: f.partial.Digest(), Size: size, Want: f.want}
	}
	if err := f.partial.Reserve(size); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size = size
	f.notifyLocked()
	return nil
}

// Write appends bytes that are final as they come (an origin's stream)
// to the verified prefix; readers may have them at once.
func (f *Flight) Write(b []byte) (int, error) {
	n, err := f.partial.Write(b)
	if n > 0 {
		f.notify()
	}
	return n, err
}

// Rewind makes the next Write start at offset 0 again; see store.Partial.
func (f *Flight) Rewind() { f.partial.Rewind() }

// WriteAt writes bytes not yet checked, beyond the verified prefix.
func (f *Flight) WriteAt(b []byte, off int64) (int, error) { return f.partial.WriteAt(b, off) }

// ReadAt reads what has been written, checked or not.
func (f *Flight) ReadAt(b []byte, off int64) (int, error) { return f.partial.ReadAt(b, off) }

// PieceChecked says the piece [off, end) passed its check: it is final,
// and the prefix grows over it once the pieces before it are in.
func (f *Flight) PieceChecked(off, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pieces = f.pieces.add(off, end)
	f.partial.Advance(f.pieces.reach(0))
	f.notifyLocked()
}

// OnWant has fn hear of every span ranged readers wait for, those waiting
// now first, until OnWant(nil). fn is called without the flight's lock,
// and may still be called once just after OnWant(nil).
func (f *Flight) OnWant(fn func(off, end int64)) {
	f.mu.Lock()
	f.onWant = fn
	waiting := slices.Collect(maps.Keys(f.wanted))
	f.mu.Unlock()
	if fn == nil {
		return
	}
	for _, sp := range waiting {
		fn(sp.off, sp.end)
	}
}

// waiting counts one more reader waiting for sp, and returns how to count it
// out.
func (f *Flight) waiting(sp span) (done func()) {
	f.mu.Lock()
	if f.wanted == nil {
		f.wanted = make(map[span]int)
	}
	f.wanted[sp]++
	fn := f.onWant
	f.mu.Unlock()
	if fn != nil {
		fn(sp.off, sp.end)
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.wanted[sp]--; f.wanted[sp] == 0 {
			delete(f.wanted, sp)
		}
	}
}

// Vouch says the hashes PieceChecked's pieces were checked against are of
// bytes that matched the blob's digest (the tracker's seeder hands out the
// last hash only after its check): a range within them may be read before
// the blob's own check.
func (f *Flight) Vouch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vouched = true
	f.notifyLocked()
}

// Verified is how many bytes from offset 0 are final.
func (f *Flight) Verified() int64 { return f.partial.Verified() }

// Commit moves the blob into the store if its bytes match the digest; see
// store.Partial.Commit. Readers get the blob's last byte once the digest
// matched, without waiting for the file to be made durable.
func (f *Flight) Commit() error {
	if err := f.partial.Check(); err != nil {
		return err
	}
	f.mu.Lock()
	f.checked = true
	f.notifyLocked()
	f.mu.Unlock()
	return f.partial.Commit()
}

// Abort discards the partial file.
func (f *Flight) Abort() { f.partial.Abort() }

// Finish ends the flight: nil once the blob is committed to the store, else
// the reason readers will get.
func (f *Flight) Finish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done, f.err = true, err
	f.notifyLocked()
}

// Acquire keeps the partial file open for one more reader. It fails once the
// flight is over and every earlier holder left, because the file is closed.
func (f *Flight) Acquire() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs == 0 {
		return false
	}
	f.refs++
	return true
}

// Release drops a reference; the last one closes the partial file, if the
// fetch began (its name has by then either become a stored blob or been
// removed).
func (f *Flight) Release() {
	f.mu.Lock()
	f.refs--
	p := f.partial
	last := f.refs == 0
	f.mu.Unlock()
	if last && p != nil {
		p.Close()
	}
}

// Size waits until the size is known or the flight failed.
func (f *Flight) Size(ctx context.Context) (int64, error) {
	for {
		f.mu.Lock()
		size, done, err, ch := f.size, f.done, f.err, f.changed
		f.mu.Unlock()
		switch {
		case size >= 0:
			return size, nil
		case done && err != nil:
			return 0, err
		case done:
			return 0, errors.New("flight finished without a size")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// Wait blocks until the flight is over and returns its outcome.
func (f *Flight) Wait(ctx context.Context) error {
	for {
		f.mu.Lock()
		done, err, ch := f.done, f.err, f.changed
		f.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// waitFor blocks until byte off of the span r is readable and returns how
// many bytes from off are readable now. The whole blob's last byte waits
// for the digest; so does a range's, unless the range lies within pieces
// checked against vouched hashes, which it may read wherever they lie: a
// reader of bytes that fail the digest gets an error, never what looks
// like a complete blob or range. A ranged reader that has to wait says
// what for (OnWant).
func (f *Flight) waitFor(ctx context.Context, r span, off int64) (int64, error) {
	for wanted := false; ; {
		f.mu.Lock()
		size, checked, done, err, ch, p := f.size, f.checked, f.done, f.err, f.changed, f.partial
		ranged := r.off > 0 || r.end < size
		vouched := f.vouched && ranged
		fromPieces, rangeInPieces := f.pieces.reach(off), f.pieces.reach(r.off) >= r.end
		f.mu.Unlock()
		// Read after the channel: growth from here on closes it.
		var avail int64
		if p != nil {
			avail = p.Verified()
		}
		if vouched {
			avail = max(avail, fromPieces)
		}
		final := checked || (done && err == nil) || (vouched && rangeInPieces)
		if avail >= r.end && !final {
			avail = r.end - 1
		}
		if avail > off {
			return avail - off, nil
		}
		if done {
			if err != nil {
				return 0, err
			}
			return 0, io.ErrUnexpectedEOF
		}
		if ranged && !wanted && size >= 0 {
			wanted = true
			defer f.waiting(span{off, r.end})()
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// Progress blocks until more than n bytes are verified, and returns how
// many are: a follower of the fetch learns its progress without reading
// the bytes.
func (f *Flight) Progress(ctx context.Context, n int64) (int64, error) {
	size, err := f.Size(ctx)
	if err != nil {
		return n, err
	}
	more, err := f.waitFor(ctx, span{0, size}, n)
	return n + more, err
}

// SendTo writes n bytes from off to w as they become available, from a
// file of its own rather than through a buffer: an HTTP/1 response on a
// TCP connection takes them with sendfile, straight from the page cache,
// where reading them back into a buffer cost a copy per byte on a cold
// miss. The caller must hold a reference (Acquire).
func (f *Flight) SendTo(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	file, err := f.partial.Open()
	if err != nil {
		// Committed or aborted a moment ago: the shared file still has
		// the bytes.
		return io.Copy(w, f.NewReader(ctx, off, n))
	}
	defer file.Close()
	if _, err := file.Seek(off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("blob %s: %w", f.partial.Digest(), err)
	}
	var sent int64
	for sent < n {
		ready, err := f.waitFor(ctx, span{off, off + n}, off+sent)
		if err != nil {
			return sent, fmt.Errorf("blob %s at offset %d: %w", f.partial.Digest(), off+sent, err)
		}
		want := min(ready, n-sent)
		k, err := io.Copy(w, &io.LimitedReader{R: file, N: want})
		sent += k
		if err != nil {
			return sent, err
		}
		if k < want {
			return sent, fmt.Errorf("blob %s at offset %d: %w", f.partial.Digest(), off+sent, io.ErrUnexpectedEOF)
		}
	}
	return sent, nil
}

// NewReader reads n bytes from off as they become available. The caller
// must hold a reference (Acquire) for as long as it reads.
func (f *Flight) NewReader(ctx context.Context, off, n int64) io.Reader {
	return &reader{ctx: ctx, f: f, r: span{off, off + n}, off: off}
}

type reader struct {
	ctx context.Context
	f   *Flight
	r   span
	off int64
}

func (r *reader) Read(b []byte) (int, error) {
	if r.off >= r.r.end {
		return 0, io.EOF
	}
	ready, err := r.f.waitFor(r.ctx, r.r, r.off)
	if err != nil {
		return 0, fmt.Errorf("blob %s at offset %d: %w", r.f.partial.Digest(), r.off, err)
	}
	want := min(int64(len(b)), ready, r.r.end-r.off)
	n, err := r.f.partial.ReadAt(b[:want], r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
