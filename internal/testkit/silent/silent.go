// Package silent is servers that do not answer, for tests of the clients'
// connect, TLS-handshake and greeting timeouts: a listener that accepts
// connections and never sends a byte, and an address whose connects are
// never accepted (a listen queue that is full, so the kernel drops the
// SYNs, as a firewall that drops packets does). Both listen on 127.0.0.1
// only.
package silent

import (
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Listener accepts connections and holds them open, reading and
// discarding what clients send, never writing.
type Listener struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

// Listen starts a Listener on 127.0.0.1:0; t's cleanup closes it and its
// connections.
func Listen(t testing.TB) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{ln: ln}
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// Addr is the listener's host:port.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Accepted is how many connections it accepted.
func (l *Listener) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

func (l *Listener) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.accepted++
		l.mu.Unlock()
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

func (l *Listener) close() {
	_ = l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// Unreachable returns an address on 127.0.0.1 whose connects never
// complete: a socket that listens with a backlog of 0, never accepts, and
// whose queue is filled by one connection made here; Linux then drops
// further SYNs, and a client's connect times out. t's cleanup closes it.
func Unreachable(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// The one connection the queue holds.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return addr
}

// Closed returns an address on 127.0.0.1 where nothing listens: connects
// are refused at once (ECONNREFUSED).
func Closed(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
