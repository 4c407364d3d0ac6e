package main

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// delayProxy forwards TCP connections from a 127.0.0.1 listener to a target
// address, holding every chunk of bytes for a fixed one-way delay in each
// direction, in order: a link with a round trip of twice the delay and no
// bandwidth limit, like a migration between data centres.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// maxDelayedChunks bounds the chunks held per direction (each at most
// chunkBytes), so a fast sender meets back-pressure instead of growing
// memory without limit.
const (
	maxDelayedChunks = 2048
	chunkBytes       = 64 << 10
)

// newDelayProxy listens on 127.0.0.1 (loopback only) and forwards to target
// with delay added in each direction. Close stops it.
func newDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	if delay < 0 {
		return nil, fmt.Errorf("delay proxy: negative delay %v", delay)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay proxy: listening on 127.0.0.1: %w", err)
	}
	p := &delayProxy{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets the one-way delay of the connections accepted from now on
// (the incr workload measures one account, whose identity is its servers'
// addresses, on loopback and far away through one proxy).
func (p *delayProxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Close stops accepting, closes every forwarded connection and waits for
// the forwarding goroutines to end.
func (p *delayProxy) Close() error {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

// track registers c so that Close can interrupt it; false when closing.
func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *delayProxy) forward(client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	// The connection to the server is made at once; its handshake is not
	// delayed, only the bytes are (a real client's SYN would be, but every
	// byte of the protocol, greeting included, still pays the delay).
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Add(2)
	p.mu.Lock()
	delay := p.delay
	p.mu.Unlock()
	go func() { defer wg.Done(); pipeDelayed(server, client, delay) }()
	go func() { defer wg.Done(); pipeDelayed(client, server, delay) }()
	wg.Wait()
}

type delayedChunk struct {
	data []byte
	due  time.Time
}

// pipeDelayed copies src to dst, each chunk written delay after it was
// read. At src's end of stream it half-closes dst; on any error it closes
// both, which also ends the other direction.
func pipeDelayed(dst, src net.Conn, delay time.Duration) {
	ch := make(chan delayedChunk, maxDelayedChunks)
	go func() {
		defer close(ch)
		buf := make([]byte, chunkBytes)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				ch <- delayedChunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(delay)}
			}
			if err != nil {
				ch <- delayedChunk{due: time.Now().Add(delay)} // end of stream
				return
			}
		}
	}()
	var failed bool
	for c := range ch {
		if failed {
			continue // drain so the reader can finish
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if c.data == nil {
			break // end of stream, due now
		}
		if _, err := dst.Write(c.data); err != nil {
			failed = true
			dst.Close()
			src.Close()
		}
	}
	if failed {
		return
	}
	// End of stream from src (or src failed): pass the end on, delayed like
	// the bytes were, then let the reader finish.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	for range ch {
	}
}
