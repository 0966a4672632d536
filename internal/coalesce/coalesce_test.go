package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in a synctest bubble: synctest.Wait returns once every
// asker is blocked in Do, so "they all joined" is a fact, not a sleep.

func TestManyAskersOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string]
		var calls atomic.Int32
		release := make(chan struct{})
		fn := func(context.Context) (string, error) {
			calls.Add(1)
			<-release
			return "answer", nil
		}
		const askers = 20
		got := make([]string, askers)
		errs := make([]error, askers)
		var wg sync.WaitGroup
		for i := range askers {
			wg.Go(func() { got[i], errs[i] = g.Do(t.Context(), "k", fn) })
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("%d askers made %d calls, want 1", askers, n)
		}
		for i := range askers {
			if got[i] != "answer" || errs[i] != nil {
				t.Errorf("asker %d got %q, %v", i, got[i], errs[i])
			}
		}

		// The key is free again once the call ended.
		if _, err := g.Do(t.Context(), "k", fn); err != nil || calls.Load() != 2 {
			t.Errorf("asking again after the call: %v, %d calls; want a second call", err, calls.Load())
		}
	})
}

func TestAskerWhoLeavesDoesNotCancelTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string]
		release := make(chan struct{})
		var shared context.Context
		fn := func(ctx context.Context) (string, error) {
			shared = ctx
			<-release
			return "answer", ctx.Err()
		}
		firstCtx, leave := context.WithCancel(t.Context())
		first := make(chan error, 1)
		go func() {
			_, err := g.Do(firstCtx, "k", fn)
			first <- err
		}()
		synctest.Wait()
		type result struct {
			v   string
			err error
		}
		second := make(chan result, 1)
		go func() {
			v, err := g.Do(t.Context(), "k", fn)
			second <- result{v, err}
		}()
		synctest.Wait()

		leave()
		synctest.Wait()
		stillWaiting := false
		select {
		case err := <-first:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("the asker who left got %v, want context.Canceled", err)
			}
		default:
			stillWaiting = true
			t.Error("the asker who left is still waiting on the call")
		}
		if err := shared.Err(); err != nil {
			t.Errorf("the first asker leaving ended the shared call: %v", err)
		}
		close(release)
		if res := <-second; res.v != "answer" || res.err != nil {
			t.Errorf("the asker who stayed got %q, %v; want the answer", res.v, res.err)
		}
		if stillWaiting {
			<-first
		}
	})
}

func TestFirstAskersDeadlineBoundsTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string]
		// fn stands for an upstream that never answers: only its context
		// ends it.
		fn := func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}
		const timeout = 5 * time.Second
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		go g.Do(ctx, "k", fn)
		synctest.Wait()
		// An asker without a deadline of its own waits on the same call,
		// and so is let go when the first asker's deadline ends it.
		_, err := g.Do(t.Context(), "k", fn)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting on a call that never answers: %v, want context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took != timeout {
			t.Errorf("the call ended after %v, want the first asker's deadline, %v", took, timeout)
		}
	})
}
