// Package coalesce folds simultaneous identical requests into one: when a
// fleet resolves app:latest within the same seconds, the upstream is asked
// once and everyone gets that answer. The mirror and the tracker both
// coalesce tag resolution through it, so they agree on who may cancel the
// shared call and how long it may take.
package coalesce

import (
	"context"

	"golang.org/x/sync/singleflight"
)

// Group runs at most one call per key at a time. The zero Group is ready
// to use.
type Group[V any] struct {
	g singleflight.Group
}

// Do runs fn for key, or joins the call of fn for key already running, and
// returns its result.
//
// The call outlives any one asker, since others may be waiting on it: fn's
// context is not cancelled when the asker that started it leaves. It does
// keep that first asker's deadline, so a stalled upstream cannot hold the
// key, and everyone queued on it, forever. Each asker stops waiting when
// its own ctx ends, with ctx's error; the call goes on for the others.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (V, error) {
	ch := g.g.DoChan(key, func() (any, error) {
		shared := context.WithoutCancel(ctx)
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			shared, cancel = context.WithDeadline(shared, deadline)
			defer cancel()
		}
		return fn(shared)
	})
	select {
	case res := <-ch:
		// Comma-ok: fn's zero V may be a nil interface, which any holds as nil.
		v, _ := res.Val.(V)
		return v, res.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
