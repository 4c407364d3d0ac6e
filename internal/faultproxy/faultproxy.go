// Package faultproxy is a fault-injecting TCP proxy for tests: it listens on
// 127.0.0.1:0, forwards every connection to one upstream address byte for
// byte, and, as a Plan says, cuts a connection after N bytes in either
// direction, resets it (RST), stalls it, slows it down, or injects a line
// towards the client (an IMAP "* BYE", a POP3 "-ERR").
//
// It never terminates TLS: it forwards the bytes, so faults by byte count
// work on any protocol, while an injected line is only meaningful on a
// plaintext connection (on a TLS one it corrupts the record stream, which
// the client sees as a broken connection).
//
// Faults are data, so a run is reproducible: RandomPlan builds a plan from a
// seed, and the same seed gives the same plan.
package faultproxy

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"time"
)

// Direction is which way bytes flow through the proxy.
type Direction int

const (
	// ServerToClient is upstream → client (greetings, replies, message data).
	ServerToClient Direction = iota
	// ClientToServer is client → upstream (commands, APPEND literals).
	ClientToServer
)

func (d Direction) String() string {
	switch d {
	case ServerToClient:
		return "server→client"
	case ClientToServer:
		return "client→server"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Kind is what a fault does.
type Kind int

const (
	// Cut closes both sides of the connection (a FIN each way).
	Cut Kind = iota
	// Reset closes both sides with SO_LINGER 0, so the client gets an RST.
	Reset
	// Stall stops forwarding in the fault's direction for Duration, or
	// until the connection ends when Duration is 0; the sockets stay open.
	Stall
	// Slow forwards the rest of the fault's direction at BytesPerSecond.
	Slow
	// Inject writes Line to the client, then goes on forwarding. Its
	// Direction is ignored: the offset counts server→client bytes. Put a Cut
	// at the same offset after it to make the line the last thing said.
	Inject
)

func (k Kind) String() string {
	switch k {
	case Cut:
		return "cut"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Slow:
		return "slow"
	case Inject:
		return "inject"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Fault is one failure on one connection.
type Fault struct {
	// Conn is the 1-based index of the accepted connection the fault
	// applies to; 0 means every connection.
	Conn int
	Kind Kind
	Dir  Direction
	// After is the number of bytes forwarded in Dir before the fault fires:
	// 0 fires before the first byte.
	After int64
	// AtLineStart delays the fault to the first line start (just after a
	// LF) at or after After, so an injected line is not spliced into
	// another one. Offset 0 counts as a line start.
	AtLineStart bool
	// Duration is how long a Stall lasts; 0 stalls until the connection
	// ends.
	Duration time.Duration
	// BytesPerSecond is the rate of a Slow fault; it must be positive.
	BytesPerSecond int
	// Line is what Inject writes, usually ending in CRLF.
	Line []byte
}

func (f Fault) String() string {
	conn := "every connection"
	if f.Conn > 0 {
		conn = fmt.Sprintf("connection %d", f.Conn)
	}
	dir := f.Dir
	if f.Kind == Inject {
		dir = ServerToClient
	}
	s := fmt.Sprintf("%s: %s %s after %d bytes", conn, f.Kind, dir, f.After)
	if f.AtLineStart {
		s += " (at a line start)"
	}
	switch f.Kind {
	case Stall:
		if f.Duration > 0 {
			s += fmt.Sprintf(" for %v", f.Duration)
		} else {
			s += " until the connection ends"
		}
	case Slow:
		s += fmt.Sprintf(" at %d B/s", f.BytesPerSecond)
	case Inject:
		s += fmt.Sprintf(" %q", f.Line)
	}
	return s
}

// Plan is the faults of a proxy. On each connection and direction faults
// fire in the order of their offsets; those at the same offset in the order
// listed.
type Plan struct {
	Faults []Fault
}

func (p Plan) validate() error {
	for i, f := range p.Faults {
		switch {
		case f.Conn < 0:
			return fmt.Errorf("faultproxy: fault %d: negative connection index %d", i, f.Conn)
		case f.After < 0:
			return fmt.Errorf("faultproxy: fault %d: negative offset %d", i, f.After)
		case f.Kind == Slow && f.BytesPerSecond <= 0:
			return fmt.Errorf("faultproxy: fault %d: slow needs a positive BytesPerSecond", i)
		case f.Kind == Inject && len(f.Line) == 0:
			return fmt.Errorf("faultproxy: fault %d: inject needs a Line", i)
		case f.Kind < Cut || f.Kind > Inject:
			return fmt.Errorf("faultproxy: fault %d: unknown kind %d", i, int(f.Kind))
		}
	}
	return nil
}

// Event is a fault that fired.
type Event struct {
	Conn   int   // 1-based connection index
	Fault  Fault // as planned
	Offset int64 // bytes forwarded in its direction when it fired
}

func (e Event) String() string {
	return fmt.Sprintf("connection %d: %s %s at byte %d", e.Conn, e.Fault.Kind, e.Fault.Dir, e.Offset)
}

// Proxy forwards connections from Addr to one upstream address. Its methods
// are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	closed   chan struct{}

	mu      sync.Mutex
	plan    Plan
	conns   int // accepted since the last SetPlan
	events  []Event
	traffic [2]int64 // bytes forwarded since the last SetPlan, by Direction
	live    map[*conn]struct{}
}

// Start listens on 127.0.0.1:0 and forwards each connection to upstream,
// applying plan. Close stops it.
func Start(upstream string, plan Plan) (*Proxy, error) {
	if err := plan.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, plan: plan, closed: make(chan struct{}), live: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the "127.0.0.1:port" clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetPlan replaces the plan for connections accepted from now on and
// restarts the connection count, so the next connection is number 1. It
// also clears the events. Connections already open keep their faults.
func (p *Proxy) SetPlan(plan Plan) error {
	if err := plan.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan, p.conns, p.events, p.traffic = plan, 0, nil, [2]int64{}
	return nil
}

// Traffic returns the bytes forwarded since the last SetPlan in each
// direction, for choosing fault offsets that fall inside a conversation.
func (p *Proxy) Traffic() (serverToClient, clientToServer int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.traffic[ServerToClient], p.traffic[ClientToServer]
}

// Conns is how many connections were accepted since the last SetPlan.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// Events returns the faults that fired since the last SetPlan, in order.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// WaitIdle waits until no proxied connection is open (those of finished
// runs included: a stalled connection delivers its bytes first), or the
// timeout passes; it reports whether the proxy became idle.
func (p *Proxy) WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		n := len(p.live)
		p.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops listening, drops every connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	select {
	case <-p.closed:
		return nil
	default:
	}
	close(p.closed)
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.live {
		c.teardown(false)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		c := &conn{p: p, index: p.conns, client: client, done: make(chan struct{})}
		for _, f := range p.plan.Faults {
			if f.Conn == 0 || f.Conn == c.index {
				if f.Kind == Inject {
					f.Dir = ServerToClient
				}
				c.faults[f.Dir] = append(c.faults[f.Dir], f)
			}
		}
		for _, fs := range c.faults {
			sort.SliceStable(fs, func(i, j int) bool { return fs[i].After < fs[j].After })
		}
		p.live[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.serve()
	}
}

func (p *Proxy) count(dir Direction, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.traffic[dir] += int64(n)
}

func (p *Proxy) record(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
}

// conn is one proxied connection.
type conn struct {
	p        *Proxy
	index    int
	client   net.Conn
	upstream net.Conn
	faults   [2][]Fault // by Direction, in plan order

	mu       sync.Mutex
	tornDown bool
	done     chan struct{} // closed by teardown
}

func (c *conn) serve() {
	defer c.p.wg.Done()
	defer func() {
		c.p.mu.Lock()
		delete(c.p.live, c)
		c.p.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", c.p.upstream, 10*time.Second)
	if err != nil {
		c.client.Close()
		return
	}
	c.mu.Lock()
	c.upstream = up
	torn := c.tornDown
	c.mu.Unlock()
	if torn { // Close ran while dialing
		up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(ServerToClient, up, c.client) }()
	go func() { defer wg.Done(); c.pump(ClientToServer, c.client, up) }()
	wg.Wait()
}

// teardown closes both sides once; with reset the client gets an RST.
func (c *conn) teardown(reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return
	}
	c.tornDown = true
	close(c.done)
	if reset {
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// pump copies one direction, firing that direction's faults at their
// offsets. It ends the whole connection when its source ends.
func (c *conn) pump(dir Direction, from, to net.Conn) {
	defer c.teardown(false)
	faults := c.faults[dir]
	var pos int64       // bytes forwarded so far
	atLineStart := true // whether pos is just after a LF (or 0)
	rate := 0           // bytes per second once a Slow fault fired
	buf := make([]byte, 32<<10)
	// fire runs the faults due at pos; it reports false when the
	// connection is gone.
	fire := func() bool {
		for len(faults) > 0 {
			f := faults[0]
			if f.After > pos || (f.AtLineStart && !atLineStart) {
				return true
			}
			faults = faults[1:]
			c.p.record(Event{Conn: c.index, Fault: f, Offset: pos})
			switch f.Kind {
			case Cut:
				c.teardown(false)
				return false
			case Reset:
				c.teardown(true)
				return false
			case Stall:
				var timeout <-chan time.Time
				if f.Duration > 0 {
					t := time.NewTimer(f.Duration)
					defer t.Stop()
					timeout = t.C
				}
				select {
				case <-timeout:
				case <-c.done:
					return false
				}
			case Slow:
				rate = f.BytesPerSecond
			case Inject:
				if _, err := c.client.Write(f.Line); err != nil {
					return false
				}
			}
		}
		return true
	}
	for {
		if !fire() {
			return
		}
		n, err := from.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			// Forward up to the next point where a fault may fire.
			chunk := len(data)
			if len(faults) > 0 {
				f := faults[0]
				if f.After > pos {
					chunk = int(min(int64(chunk), f.After-pos))
				} else if f.AtLineStart {
					// Due but waiting for a line start: go to the next LF.
					for i := 0; i < chunk; i++ {
						if data[i] == '\n' {
							chunk = i + 1
							break
						}
					}
				}
			}
			if rate > 0 {
				chunk = min(chunk, max(1, rate/20))
			}
			if rate > 0 { // pace: each chunk leaves when the rate allows it
				select {
				case <-time.After(time.Duration(chunk) * time.Second / time.Duration(rate)):
				case <-c.done:
					return
				}
			}
			if _, werr := to.Write(data[:chunk]); werr != nil {
				return
			}
			atLineStart = data[chunk-1] == '\n'
			pos += int64(chunk)
			c.p.count(dir, chunk)
			data = data[chunk:]
			if !fire() {
				return
			}
		}
		if err != nil { // io.EOF or a broken connection: end both sides
			return
		}
	}
}
