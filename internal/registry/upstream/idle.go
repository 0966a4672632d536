package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// ErrIdle says an upstream sent no byte of a body for the idle timeout
// (Config.IdleTimeout) while it was read.
var ErrIdle = errors.New("upstream sent nothing")

// idleBody gives up a blob body that sends nothing for idle while it is
// being read: the request's context is cancelled, which closes the
// connection, and the read fails with ErrIdle. The time between reads
// does not count: the reader may hold a body back on purpose (the
// tracker's seeder leaves one unread until its turn to read).
type idleBody struct {
	io.ReadCloser
	idle    time.Duration
	timer   *time.Timer
	cancel  context.CancelCauseFunc
	expired atomic.Bool
}

// withIdleTimeout wraps body, whose request runs under the context that
// cancel ends; cancel is called on Close.
func withIdleTimeout(body io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc) io.ReadCloser {
	b := &idleBody{ReadCloser: body, idle: idle, cancel: cancel}
	b.timer = time.AfterFunc(idle, func() {
		b.expired.Store(true)
		cancel(ErrIdle)
	})
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	if err != nil && b.expired.Load() {
		err = fmt.Errorf("%w for %s", ErrIdle, b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
