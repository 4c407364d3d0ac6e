package dovecot

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// remoteProxy forwards connections from a 127.0.0.1 listener to a Dovecot
// listener configured with haproxy = yes, announcing each client with a
// HAProxy PROXY v1 header as coming from 192.0.2.1 (TEST-NET-1, never
// contacted).
//
// Why: Dovecot 2.3 treats a connection whose remote and local IP are equal
// as "secured" (login-common: client->secured) and then allows plaintext
// authentication even with ssl = required. Every test connection is
// 127.0.0.1 to 127.0.0.1, so without this proxy Options.SSLRequired could
// not be observed at all.
type remoteProxy struct {
	ln     net.Listener
	target string

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

func newRemoteProxy(target string) (*remoteProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dovecot: listening for the plaintext proxy: %w", err)
	}
	p := &remoteProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *remoteProxy) addr() string { return p.ln.Addr().String() }

func (p *remoteProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by close
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

// track registers c so that close can interrupt it; false if closing.
func (p *remoteProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *remoteProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *remoteProxy) forward(client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return // the client sees the connection close, as with a dead server
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	src := client.RemoteAddr().(*net.TCPAddr)
	dst := server.RemoteAddr().(*net.TCPAddr)
	// PROXY protocol v1 (haproxy.org/download/2.9/doc/proxy-protocol.txt §2.1).
	if _, err := fmt.Fprintf(server, "PROXY TCP4 192.0.2.1 %s %d %d\r\n", dst.IP, src.Port, dst.Port); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(server, client)
		server.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, server)
		client.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// close stops accepting, closes every forwarded connection and waits for
// the goroutines.
func (p *remoteProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
