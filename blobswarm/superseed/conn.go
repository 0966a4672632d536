package superseed

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	pp "github.com/anacrolix/torrent/peer_protocol"
)

const (
	// maxRequest is the largest chunk a peer may ask for; mirrors ask for
	// 64 KiB, most clients for 16 KiB.
	maxRequest = 128 << 10
	// maxQueued bounds the requests a peer may have waiting; a client
	// keeps a few hundred in flight.
	maxQueued = 4096
	// idleTimeout drops a peer that sends nothing, not even a keep-alive.
	idleTimeout = 2 * time.Minute
	// keepAlive is sent on a connection with nothing else to say.
	keepAlive = 30 * time.Second
	// writeTimeout drops a peer that stops reading.
	writeTimeout = 30 * time.Second
)

// conn is one peer of one blob. Its reader handles what the peer says;
// its writer sends offers and the chunks asked for, in that order.
type conn struct {
	s  *Server
	t  *blob
	nc net.Conn
	id int // the blob's name for this peer, set by blob.add
	// peerID is what the peer called itself in the handshake.
	peerID [20]byte

	// mu guards the outgoing queue.
	mu    sync.Mutex
	haves []int
	reqs  []pp.RequestSpec

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newConn(s *Server, t *blob, nc net.Conn, peerID [20]byte) *conn {
	return &conn{s: s, t: t, nc: nc, peerID: peerID, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) queueHave(piece int) {
	c.mu.Lock()
	c.haves = append(c.haves, piece)
	c.mu.Unlock()
	c.signal()
}

// read handles the peer's messages until the connection ends.
func (c *conn) read() error {
	dec := pp.Decoder{
		R: bufio.NewReaderSize(c.nc, 64<<10),
		// The seeder never asks for pieces, so the pool is only there for
		// the decoder's sake; a peer sending one is dropped.
		Pool:      &sync.Pool{New: func() any { b := make([]byte, maxRequest); return &b }},
		MaxLength: 1 << 20,
	}
	n := c.t.info.NumPieces()
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(idleTimeout)); err != nil {
			return err
		}
		var msg pp.Message
		if err := dec.Decode(&msg); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if msg.Keepalive {
			continue
		}
		switch msg.Type {
		case pp.Have:
			c.t.have(c, []int{int(msg.Index)})
		case pp.Bitfield:
			var has []int
			for i, b := range msg.Bitfield[:min(n, len(msg.Bitfield))] {
				if b {
					has = append(has, i)
				}
			}
			c.t.have(c, has)
		case pp.Request:
			if err := c.request(msg.RequestSpec()); err != nil {
				return err
			}
		case pp.Cancel:
			c.cancel(msg.RequestSpec())
		case pp.Choke, pp.Unchoke, pp.Interested, pp.NotInterested, pp.Port:
			// The seeder unchokes everyone and never downloads.
		default:
			return fmt.Errorf("unexpected %v message from a leecher of an upload-only peer", msg.Type)
		}
	}
}

// request queues a chunk of a piece this peer was offered. Anything else
// is a protocol violation: a well-behaved client only asks for what it
// was told the seeder has.
func (c *conn) request(r pp.RequestSpec) error {
	piece := int(r.Index)
	if !c.t.mayRequest(c, piece) {
		return fmt.Errorf("request for piece %d, which was not offered", piece)
	}
	if r.Length == 0 || r.Length > maxRequest || int64(r.Begin)+int64(r.Length) > c.t.info.Piece(piece).Length() {
		return fmt.Errorf("request %v is outside piece %d or too large", r, piece)
	}
	c.mu.Lock()
	full := len(c.reqs) >= maxQueued
	if !full {
		c.reqs = append(c.reqs, r)
	}
	c.mu.Unlock()
	if full {
		return errors.New("too many requests queued")
	}
	c.signal()
	return nil
}

func (c *conn) cancel(r pp.RequestSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.reqs {
		if q == r {
			c.reqs = append(c.reqs[:i], c.reqs[i+1:]...)
			return
		}
	}
}

// next takes the queued offers and the next request: the earliest asked
// for of the lowest piece, so that pieces complete one after the other
// and the peer can pass each on as soon as possible, rather than all of
// them growing together and none being tradable until the end.
func (c *conn) next() (haves []int, r pp.RequestSpec, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	haves, c.haves = c.haves, nil
	if len(c.reqs) == 0 {
		return haves, r, false
	}
	best := 0
	for i, q := range c.reqs {
		if q.Index < c.reqs[best].Index {
			best = i
		}
	}
	r = c.reqs[best]
	c.reqs = append(c.reqs[:best], c.reqs[best+1:]...)
	return haves, r, true
}

// write sends offers, then chunks, flushing when there is nothing left to
// send so one write carries many messages.
func (c *conn) write() error {
	bw := bufio.NewWriterSize(c.nc, 256<<10)
	buf := make([]byte, maxRequest)
	send := func(m pp.Message) error {
		if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return err
		}
		return m.WriteTo(bw)
	}
	if err := send(pp.Message{Type: pp.Unchoke}); err != nil {
		return err
	}
	idle := time.NewTimer(keepAlive)
	defer idle.Stop()
	for {
		haves, r, ok := c.next()
		for _, i := range haves {
			if err := send(pp.Message{Type: pp.Have, Index: pp.Integer(i)}); err != nil {
				return err
			}
		}
		if ok {
			chunk := buf[:r.Length]
			off := int64(r.Index)*c.t.info.PieceLength + int64(r.Begin)
			if err := c.t.readAt(chunk, off); err != nil {
				return fmt.Errorf("read piece %d of %s: %w", r.Index, c.t.d, err)
			}
			if c.s.limiter != nil {
				if err := c.s.limiter.WaitN(c.s.ctx, len(chunk)); err != nil {
					return err
				}
			}
			if err := send(pp.Message{Type: pp.Piece, Index: r.Index, Begin: r.Begin, Piece: chunk}); err != nil {
				return err
			}
			c.s.uploaded.Add(int64(len(chunk)))
			continue
		}
		if len(haves) > 0 {
			continue
		}
		if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		idle.Reset(keepAlive)
		select {
		case <-c.done:
			return nil
		case <-c.wake:
		case <-idle.C:
			if err := send(pp.Message{Keepalive: true}); err != nil {
				return err
			}
		}
	}
}
