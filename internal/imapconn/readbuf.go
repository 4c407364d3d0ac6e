package imapconn

import (
	"bufio"
	"net"
)

// readBufferBytes is how much a read from the server's conn may take at
// once. go-imap v2.0.0-beta.8 reads through a 4 KB bufio.Reader of its
// own, so a FETCH reply of a small message cost two read system calls or
// more (a 4 KB fill for the reply's first line and the literal's start,
// then the rest of the literal read straight into the caller's buffer):
// about 1.7 per message on the *small* workload, and reading the socket
// was a tenth of mailferry's CPU there. Read 64 KB at a time, a FETCH
// reply of a small message costs a copy from this buffer instead, and a
// read system call is shared by several messages. Reads as large as the
// buffer, when it is empty, still go straight to the caller (a large
// message's body is not copied twice).
const readBufferBytes = 64 << 10

// bufferedConn is a net.Conn whose reads go through a buffer of
// readBufferBytes. It sits below extraConn and the BYE watcher, so every
// byte still reaches them when go-imap reads it, not when the buffer
// fills: to those above it, the buffer is the kernel's socket buffer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferBytes)}
}

// Read reads from the buffer, filling it with at most one read of the
// conn when it is empty. An error of the conn's comes after the bytes
// read before it.
func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
