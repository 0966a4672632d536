package flight

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/blobswarm/blobswarm/blobswarm/store"
)

func newFlight(t *testing.T, data []byte) (*Flight, *store.Store) {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.NewPartial(digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	f := New(-1)
	f.Begin(p)
	return f, s
}

// A reader sees bytes as they are advanced, before the flight finishes.
func TestReaderStreamsWhileArriving(t *testing.T) {
	data := []byte("0123456789")
	fl, _ := newFlight(t, data)
	if err := fl.Reserve(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if !fl.Acquire() {
		t.Fatal("Acquire failed on a live flight")
	}
	r := fl.NewReader(context.Background(), 0, int64(len(data)))
	fl.WriteAt(data[:4], 0)
	fl.PieceChecked(0, 4)
	buf := make([]byte, 10)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "0123" {
		t.Fatalf("first read = %q, %v; want the advanced prefix", buf[:n], err)
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	fl.Write(data[4:]) // final as written: no Advance
	if err := fl.Commit(); err != nil {
		t.Fatal(err)
	}
	fl.Finish(nil)
	if b := <-got; string(b) != "456789" {
		t.Fatalf("rest = %q", b)
	}
	fl.Release()
	fl.Release()
	if fl.Acquire() {
		t.Fatal("Acquire succeeded after the last release closed the file")
	}
}

func TestReaderGetsFailure(t *testing.T) {
	fl, _ := newFlight(t, []byte("abc"))
	if err := fl.Reserve(3); err != nil {
		t.Fatal(err)
	}
	r := fl.NewReader(context.Background(), 0, 3)
	boom := errors.New("origin went away")
	go fl.Finish(boom)
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("ReadAll err = %v, want %v", err, boom)
	}
}

func TestSizeWaitsAndFails(t *testing.T) {
	fl, _ := newFlight(t, []byte("abc"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fl.Size(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Size on cancelled ctx = %v", err)
	}
	boom := errors.New("404")
	fl.Finish(boom)
	if _, err := fl.Size(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Size after failure = %v", err)
	}
}

// Progress wakes a follower on growth of the verified prefix, and ends
// with the flight's error when it fails.
func TestProgressFollowsTheVerifiedPrefix(t *testing.T) {
	data := []byte("0123456789")
	fl, _ := newFlight(t, data)
	if err := fl.Reserve(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64)
	go func() {
		n, _ := fl.Progress(context.Background(), 0)
		got <- n
	}()
	fl.WriteAt(data[:6], 0)
	fl.PieceChecked(0, 6)
	if n := <-got; n != 6 {
		t.Fatalf("Progress after 0 = %d, want 6", n)
	}
	failed := errors.New("origin gone")
	go fl.Finish(failed)
	if _, err := fl.Progress(context.Background(), 6); !errors.Is(err, failed) {
		t.Fatalf("Progress of a failed flight: %v, want its error", err)
	}
}

// SendTo from an offset, started before the bytes are there, sends
// exactly the span asked for as it arrives (its last byte once the blob
// matched its digest).
func TestSendToSendsTheSpanAsItArrives(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	fl, _ := newFlight(t, data)
	if err := fl.Reserve(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fl.Write(data[:5])
	type result struct {
		got []byte
		err error
	}
	sent := make(chan result)
	go func() {
		var got bytes.Buffer
		_, err := fl.SendTo(context.Background(), &got, 3, 12)
		sent <- result{got.Bytes(), err}
	}()
	fl.Write(data[5:11])
	fl.Write(data[11:])
	if err := fl.Commit(); err != nil {
		t.Fatal(err)
	}
	if r := <-sent; r.err != nil || string(r.got) != string(data[3:15]) {
		t.Fatalf("SendTo(3, 12) = %q, %v; want %q", r.got, r.err, data[3:15])
	}
}

// The last byte of the blob goes out only once the bytes matched the
// digest: a reader of bytes that fail it gets everything but the last
// byte and then the failure, never what looks like a complete blob.
func TestLastByteWaitsForTheDigest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrong bool
	}{{"match", false}, {"mismatch", true}} {
		t.Run(tc.name, func(t *testing.T) {
			want := []byte("0123456789")
			fl, _ := newFlight(t, want)
			if err := fl.Reserve(int64(len(want))); err != nil {
				t.Fatal(err)
			}
			written := bytes.Clone(want)
			if tc.wrong {
				written[9] = 'X'
			}
			fl.Write(written)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var early bytes.Buffer
			if _, err := fl.SendTo(ctx, &early, 0, int64(len(want))); !errors.Is(err, context.Canceled) || early.String() != "012345678" {
				t.Fatalf("before the check: SendTo sent %q, %v; want all but the last byte, then waiting", early.String(), err)
			}
			err := fl.Commit()
			if tc.wrong != errors.Is(err, store.ErrDigestMismatch) {
				t.Fatalf("Commit = %v", err)
			}
			if tc.wrong {
				fl.Finish(err)
			}
			var got bytes.Buffer
			_, sendErr := fl.SendTo(context.Background(), &got, 0, int64(len(want)))
			switch {
			case tc.wrong && (sendErr == nil || got.Len() == len(want)):
				t.Fatalf("after the mismatch: SendTo sent %q, %v; want an error before the last byte", got.String(), sendErr)
			case !tc.wrong && (sendErr != nil || got.String() != string(want)):
				t.Fatalf("after the commit: SendTo sent %q, %v; want the blob", got.String(), sendErr)
			}
		})
	}
}

// A range that ends before the blob does is no more trusted than the whole
// blob: its last byte waits for the digest, unless its bytes were checked
// piece by piece against hashes of a blob whose digest matched (Vouch).
func TestARangeEndsBeforeTheDigestOnlyWithinVouchedPieces(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pieces, vouch  bool
		off, n         int64
		wantBeforeDone string
	}{
		{"origin bytes", false, false, 0, 5, "0123"},
		{"pieces, hashes not vouched", true, false, 0, 5, "0123"},
		{"pieces, vouched", true, true, 0, 5, "01234"},
		{"pieces, vouched, past what was checked", true, true, 4, 4, "456"},
		{"pieces, vouched, the whole blob", true, true, 0, 10, "012345678"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte("0123456789")
			fl, _ := newFlight(t, data)
			if err := fl.Reserve(int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if tc.pieces {
				fl.WriteAt(data[:6], 0)
				fl.PieceChecked(0, 6)
			} else {
				fl.Write(data[:6])
			}
			if tc.vouch {
				fl.Vouch()
			}
			if tc.off+tc.n == 10 || tc.off+tc.n > 6 {
				// The rest comes from the origin, unchecked.
				fl.Write(data[6:])
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var got bytes.Buffer
			_, err := fl.SendTo(ctx, &got, tc.off, tc.n)
			if got.String() != tc.wantBeforeDone {
				t.Fatalf("before the digest check: SendTo(%d, %d) sent %q, %v; want %q", tc.off, tc.n, got.String(), err, tc.wantBeforeDone)
			}
			complete := int64(got.Len()) == tc.n
			if complete != (err == nil) {
				t.Fatalf("SendTo sent %d of %d bytes with error %v", got.Len(), tc.n, err)
			}
		})
	}
}

// A flight whose fetch never began holds no file: its readers wait for
// the size and get the fetch's error, and its last Release has nothing
// to close.
func TestFlightThatNeverBegan(t *testing.T) {
	f := New(-1)
	f.Acquire()
	failed := errors.New("no room for a partial file")
	go f.Finish(failed)
	if _, err := f.Size(t.Context()); !errors.Is(err, failed) {
		t.Fatalf("Size = %v, want the fetch's error", err)
	}
	if _, err := f.Progress(t.Context(), 0); !errors.Is(err, failed) {
		t.Fatalf("Progress = %v, want the fetch's error", err)
	}
	f.Release()
	f.Release()
}

// readNow is what SendTo sends of [off, off+n) without waiting.
func readNow(fl *Flight, off, n int64) string {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got bytes.Buffer
	fl.SendTo(ctx, &got, off, n)
	return got.String()
}

// A range need not wait for the prefix: pieces checked against vouched
// hashes are readable wherever they lie, the blob's last byte among them;
// the whole blob and unvouched pieces still wait.
func TestARangeReadsVouchedPiecesAheadOfThePrefix(t *testing.T) {
	data := []byte("0123456789")
	fl, _ := newFlight(t, data)
	if err := fl.Reserve(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fl.WriteAt(data[6:], 6)
	fl.PieceChecked(6, 10)
	fl.WriteAt(data[2:4], 2)
	fl.PieceChecked(2, 4)
	if got := readNow(fl, 6, 4); got != "" {
		t.Fatalf("before the vouch a range of checked pieces sent %q", got)
	}
	fl.Vouch()
	for _, tc := range []struct {
		off, n int64
		want   string
	}{
		{6, 4, "6789"}, // the table of contents at the end: all of it
		{7, 2, "78"},
		{2, 2, "23"},
		{2, 3, "23"}, // byte 4 is not in
		{0, 4, ""},   // nor is byte 0
		{0, 10, ""},  // the whole blob waits for the prefix and the digest
	} {
		if got := readNow(fl, tc.off, tc.n); got != tc.want {
			t.Errorf("range %d+%d sent %q, want %q", tc.off, tc.n, got, tc.want)
		}
	}
	if v := fl.Verified(); v != 0 {
		t.Fatalf("prefix %d with byte 0 missing", v)
	}
	fl.WriteAt(data[:2], 0)
	fl.PieceChecked(0, 2)
	fl.WriteAt(data[4:6], 4)
	fl.PieceChecked(4, 6)
	if v := fl.Verified(); v != 10 {
		t.Fatalf("prefix %d once every piece is in, want 10", v)
	}
	if got := readNow(fl, 0, 10); got != "012345678" {
		t.Fatalf("whole blob before the digest check sent %q", got)
	}
}

// A ranged reader that waits says what for, to whoever listens now or
// starts listening while it waits, and stops counting once it has its
// bytes; a reader of the whole blob never does: asking for the prefix
// first cost a fleet its rarest-first order.
func TestWaitingRangesAreWanted(t *testing.T) {
	data := []byte("0123456789")
	fl, _ := newFlight(t, data)
	if err := fl.Reserve(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fl.Vouch()
	wants := make(chan span, 10)
	read := func(off, n int64) chan string {
		got := make(chan string, 1)
		go func() {
			var b bytes.Buffer
			fl.SendTo(context.Background(), &b, off, n)
			got <- b.String()
		}()
		return got
	}
	whole := read(0, 10)
	toc := read(7, 3)
	waitWanted := func(want span) {
		t.Helper()
		for {
			fl.mu.Lock()
			n := fl.wanted[want]
			fl.mu.Unlock()
			if n > 0 {
				return
			}
			runtime.Gosched()
		}
	}
	waitWanted(span{7, 10})
	fl.OnWant(func(off, end int64) { wants <- span{off, end} })
	if got := <-wants; got != (span{7, 10}) {
		t.Fatalf("listener heard of %v, want the waiting range 7-10", got)
	}
	chunk := read(2, 2)
	if got := <-wants; got != (span{2, 4}) {
		t.Fatalf("listener heard of %v, want 2-4", got)
	}
	fl.WriteAt(data[7:], 7)
	fl.PieceChecked(7, 10)
	if got := <-toc; got != "789" {
		t.Fatalf("range 7-10 got %q", got)
	}
	fl.WriteAt(data[:7], 0)
	fl.PieceChecked(0, 7)
	if got := <-chunk; got != "23" {
		t.Fatalf("range 2-4 got %q", got)
	}
	if err := fl.Commit(); err != nil {
		t.Fatal(err)
	}
	fl.Finish(nil)
	if got := <-whole; got != string(data) {
		t.Fatalf("whole blob got %q", got)
	}
	fl.mu.Lock()
	left := len(fl.wanted)
	fl.mu.Unlock()
	if left != 0 || len(wants) != 0 {
		t.Fatalf("%d spans still wanted, %d more heard of; the whole-blob reader must not ask", left, len(wants))
	}
}
