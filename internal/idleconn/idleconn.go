// Package idleconn wraps a net.Conn with an idle timeout that extends as bytes
// move, instead of an absolute deadline per operation: a 100 MB message on a
// slow link keeps going as long as it makes progress, and a stalled peer is
// noticed after the idle timeout. It also closes the conn when a context ends,
// so blocking protocol code without context support can be cancelled.
package idleconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a net.Conn whose reads and writes fail after Timeout without progress.
// Deadlines set by callers (e.g. libraries with fixed timeouts) are ignored:
// the idle timeout replaces them.
type Conn struct {
	net.Conn
	timeout time.Duration

	mu   sync.Mutex
	stop func() bool
}

// New wraps c. A timeout <= 0 disables the idle timeout.
func New(c net.Conn, timeout time.Duration) *Conn {
	return &Conn{Conn: c, timeout: timeout}
}

// Read reads with the idle deadline extended before each call.
func (c *Conn) Read(p []byte) (int, error) {
	if c.timeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	return c.Conn.Read(p)
}

// Write writes in chunks, extending the idle deadline before each, so a large
// write to a slow peer does not fail while bytes are still moving.
func (c *Conn) Write(p []byte) (int, error) {
	if c.timeout <= 0 {
		return c.Conn.Write(p)
	}
	const chunk = 256 << 10
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		m, err := c.Conn.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// SendFile writes n bytes of f, from offset off, to the connection
// without copying them through this process (sendfile(2)), extending the
// idle deadline before each chunk as Write does: the spool's temp file of
// a large message goes to the destination that way when the connection is
// plain TCP. The bytes go out as they are: a caller that runs TLS on top
// of this Conn must not use it. handled is false, with nothing written,
// when the connection is not a TCP connection or the system cannot: the
// caller writes the bytes itself. f's position is neither used nor moved.
func (c *Conn) SendFile(f *os.File, off, n int64) (written int64, handled bool, err error) {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok || n <= 0 {
		return 0, ok, nil
	}
	const chunk = 256 << 10
	for written < n {
		k := n - written
		if c.timeout > 0 {
			k = min(k, chunk)
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		}
		m, h, err := sendFile(tc, f, off+written, k)
		written += m
		if !h {
			if written == 0 {
				return 0, false, nil
			}
			return written, true, errors.New("idleconn: sendfile stopped working mid-message")
		}
		if err != nil {
			return written, true, err
		}
	}
	return written, true, nil
}

// SetDeadline is ignored; see Conn.
func (c *Conn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline is ignored; see Conn.
func (c *Conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is ignored; see Conn.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// CloseOnDone closes the conn when ctx ends, which unblocks any read or write.
// Calling it again replaces the previous context. Close stops watching.
// A context that never ends (context.Background(), as a release after
// each command binds) only stops the watch of the previous one: a watch
// costs allocations, and the sources bind and release once per message.
func (c *Conn) CloseOnDone(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	if ctx.Done() == nil {
		return
	}
	c.stop = context.AfterFunc(ctx, func() { _ = c.Conn.Close() })
}

// WithContextErr puts ctx's error in front of err when ctx has ended: a
// read or write that failed because CloseOnDone closed the conn is then
// reported as the cancellation it is (errors.Is(err, context.Canceled)),
// with the I/O error still in the chain. nil stays nil.
func WithContextErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// Close closes the conn and stops watching any context.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// Abort closes the conn with a TCP reset (SO_LINGER 0) when it is a TCP
// connection, so the kernel drops the bytes it has not sent yet instead of
// delivering them after the close. A client that gives up on a command
// whose outcome it does not know (an APPEND written but not answered) uses
// it: bytes still queued would let the server complete the command later,
// after the client's next session has looked for it and sent it again.
// Bytes already delivered to the peer are beyond its reach.
func (c *Conn) Abort() error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.Close()
}
