package swarm

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
)

// maxTrackerAnswer bounds what one tracker answer may be. The library reads
// an announce answer whole into memory, so a tracker, or a man in the
// middle, sending without end would take the node's memory with it; an
// answer of max-peers 50 is under a kilobyte.
const maxTrackerAnswer = 1 << 20

var errTrackerAnswerTooLong = errors.New("tracker answer longer than 1 MiB")

// capTrackerAnswers makes every tracker connection refuse to read more than
// maxTrackerAnswer bytes after each request it sent.
func capTrackerAnswers(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &cappedConn{Conn: c}
		// HTTP/1 waits for an answer from the moment it dials.
		cc.left.Store(maxTrackerAnswer)
		return cc, nil
	}
}

// cappedConn is one tracker connection: HTTP/1 writes a request, then
// reads its answer, from two goroutines, so the budget is atomic.
type cappedConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cappedConn) Write(b []byte) (int, error) {
	c.left.Store(maxTrackerAnswer)
	return c.Conn.Write(b)
}

func (c *cappedConn) Read(b []byte) (int, error) {
	left := c.left.Load()
	if left <= 0 {
		return 0, errTrackerAnswerTooLong
	}
	if int64(len(b)) > left {
		b = b[:left]
	}
	n, err := c.Conn.Read(b)
	c.left.Add(-int64(n))
	return n, err
}
