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
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
	//
	// A client→server stall goes on reading from the client, as a real
	// network accepts what the client sends into its buffers, and so
	// notices the client going away. If the client resets the connection
	// (RST) during the stall, the proxy resets the upstream connection at
	// once and nothing it read during the stall reaches upstream: a reset
	// drops what has not been delivered yet. A client that closes normally
	// (FIN) during a timed stall has its bytes delivered when the stall
	// ends, then the close, as TCP would after the outage; during an
	// endless stall its close ends the connection the same way as a reset.
	// What the client sends during a timed stall is held in memory.
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
	// LF) at or after After that is a boundary between protocol units, so
	// an injected line is not spliced into another line or into a message:
	// in IMAP not inside a literal ({N} or {N+}) nor in the rest of the
	// line it belongs to, in POP3 not inside a RETR or TOP response before
	// its terminating "." (between the lines of a CAPA, LIST or UIDL
	// listing is allowed: that changes the listing visibly, not a
	// message). The server's
	// greeting tells the protocol ("* " IMAP, "+OK"/"-ERR" POP3); on
	// anything else (TLS, say) every line start counts. Offset 0 counts as
	// a line start.
	AtLineStart bool
	// Duration is how long a Stall lasts; 0 stalls until the connection
	// ends.
	Duration time.Duration
	// Until, when not nil, also ends a Stall when it is closed: with
	// Duration 0 the stall lasts until then (or until the connection
	// ends), so a test holds a direction exactly as long as it needs to
	// act, rather than for a guessed time. What a client→server stall
	// reads meanwhile is forwarded when it ends, as after a timed stall.
	Until <-chan struct{}
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
		switch {
		case f.Duration > 0 && f.Until != nil:
			s += fmt.Sprintf(" for at most %v, until released", f.Duration)
		case f.Duration > 0:
			s += fmt.Sprintf(" for %v", f.Duration)
		case f.Until != nil:
			s += " until released"
		default:
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
	epoch   int // SetPlan calls: tells a connection from an older one with the same index
	events  []Event
	traffic [2]int64 // bytes forwarded since the last SetPlan, by Direction
	live    map[*conn]struct{}
	spans   []*span // every connection accepted since the last SetPlan
}

// span is when a connection was open: from its accept to the first sign
// that it ended (the client closed or reset it, or the proxy tore it down).
type span struct {
	opened, closed time.Time // closed: zero while open
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
	p.plan, p.conns, p.events, p.traffic, p.spans = plan, 0, nil, [2]int64{}, nil
	p.epoch++
	return nil
}

// MaxOpen is the most connections open at once since the last SetPlan, as
// the proxy saw them. A client that closes one connection and opens the
// next at once can have the new one accepted a moment before the proxy
// reads the old one's end; grace is how long after a connection's accept
// the ends of others still count as before it (a few milliseconds on
// loopback).
func (p *Proxy) MaxOpen(grace time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	peak := 0
	for _, s := range p.spans {
		n := 0
		for _, o := range p.spans {
			if o.opened.After(s.opened) {
				continue
			}
			if o.closed.IsZero() || o.closed.After(s.opened.Add(grace)) {
				n++
			}
		}
		peak = max(peak, n)
	}
	return peak
}

// Unanswered returns how many IMAP commands connection conn (1-based,
// counted since the last SetPlan) has forwarded to the server that the
// server has not completed yet: no tagged reply to them has come back
// through the proxy. ok is false when no such connection is open or it
// does not speak plaintext IMAP. Commands a client→server stall holds
// have not been forwarded, so they do not count: with such a stall in
// place, 0 means the server has finished every command it got, and a
// test can act on the server between two commands, whatever the client
// pipelines. Each client line that ends at a command boundary counts as
// a command, so continuation lines (AUTHENTICATE responses, IDLE's DONE)
// count too: use it on sessions without them.
func (p *Proxy) Unanswered(conn int) (n int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.live {
		if c.index == conn && c.epoch == p.epoch {
			return c.session.unanswered()
		}
	}
	return 0, false
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
		c.teardown()
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
		c := &conn{p: p, index: p.conns, epoch: p.epoch, client: client, done: make(chan struct{}), span: &span{opened: time.Now()}}
		p.spans = append(p.spans, c.span)
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
	epoch    int // the Proxy's epoch when accepted
	client   net.Conn
	upstream net.Conn
	faults   [2][]Fault // by Direction, in plan order
	session  session    // what the connection speaks, for AtLineStart
	span     *span      // guarded by p.mu

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

// teardown closes both sides once; a side named in reset gets an RST.
func (c *conn) teardown(reset ...net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return
	}
	c.tornDown = true
	close(c.done)
	for _, side := range reset {
		if tc, ok := side.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// ended records the first sign that the connection ended.
func (c *conn) ended() {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.span.closed.IsZero() {
		c.span.closed = time.Now()
	}
}

// pump copies one direction, firing that direction's faults at their
// offsets. It ends the whole connection when its source ends.
func (c *conn) pump(dir Direction, from, to net.Conn) {
	defer c.teardown()
	defer c.ended()
	faults := c.faults[dir]
	fr := newFramer(&c.session, dir)
	var pos int64 // bytes forwarded so far
	rate := 0     // bytes per second once a Slow fault fired
	// held is what a client→server stall read from the client, to forward
	// after what was read before it; heldEOF: the client closed after it.
	var held []byte
	heldEOF := false
	buf := make([]byte, 32<<10)
	// fire runs the faults due at pos; it reports false when the
	// connection is gone.
	fire := func() bool {
		for len(faults) > 0 {
			f := faults[0]
			if f.After > pos || (f.AtLineStart && !fr.boundary()) {
				return true
			}
			faults = faults[1:]
			c.p.record(Event{Conn: c.index, Fault: f, Offset: pos})
			switch f.Kind {
			case Cut:
				c.teardown()
				return false
			case Reset:
				c.teardown(c.client)
				return false
			case Stall:
				if dir == ClientToServer {
					if !c.stallClient(from, to, f.Duration, f.Until, &held, &heldEOF) {
						return false
					}
					continue
				}
				var timeout <-chan time.Time
				if f.Duration > 0 {
					t := time.NewTimer(f.Duration)
					defer t.Stop()
					timeout = t.C
				}
				select {
				case <-timeout:
				case <-f.Until: // a nil Until never ends it
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
		var (
			data []byte
			err  error
		)
		if len(held) > 0 || heldEOF {
			data, held = held, nil
			if heldEOF {
				err = io.EOF
			}
		} else {
			var n int
			n, err = from.Read(buf)
			data = buf[:n]
		}
		for len(data) > 0 {
			// Forward up to the next point where a fault may fire.
			chunk := len(data)
			waiting := false // a due fault waits for a boundary
			if len(faults) > 0 {
				f := faults[0]
				if f.After > pos {
					chunk = int(min(int64(chunk), f.After-pos))
				} else {
					waiting = f.AtLineStart
				}
			}
			if rate > 0 {
				chunk = min(chunk, max(1, rate/20))
			}
			// Before the write: a POP3 command must be known before its
			// reply can come back.
			chunk = fr.scan(data[:chunk], waiting)
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

// stallClient is a client→server stall of duration d (0: endless) that
// until, when not nil, ends early: it reads from the client meanwhile,
// holding what it reads for later (an endless one, d 0 and no until, never
// forwards again, so it keeps nothing). It reports false when the
// connection is gone: torn down from elsewhere, or the client reset it (or,
// during an endless stall, closed it), in which case upstream gets an RST
// and nothing read here.
func (c *conn) stallClient(client, upstream net.Conn, d time.Duration, until <-chan struct{}, held *[]byte, eof *bool) bool {
	endless := d == 0 && until == nil
	if *eof && endless { // closed during an earlier stall: never delivered now
		*held = nil
		c.teardown(upstream)
		return false
	}
	var end time.Time
	var timeout <-chan time.Time
	if d > 0 {
		end = time.Now().Add(d)
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	defer client.SetReadDeadline(time.Time{}) // runs last, after the waker below has ended
	released := func() bool {
		select {
		case <-until:
			return true
		default:
			return false
		}
	}
	if until != nil {
		// Wakes the Read below when until closes, and ends before this
		// function returns, so that it never touches a later Read.
		stop, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(exited)
			select {
			case <-until:
				_ = client.SetReadDeadline(time.Unix(1, 0))
			case <-stop:
			}
		}()
		defer func() { close(stop); <-exited }()
	}
	buf := make([]byte, 32<<10)
	for !*eof {
		if err := client.SetReadDeadline(end); err != nil {
			return false // closed
		}
		// After the deadline is set: a release that came before it was
		// overwritten is seen here; one after it wakes the Read.
		if released() {
			return true
		}
		n, err := client.Read(buf)
		if !endless {
			*held = append(*held, buf[:n]...)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return true
		case errors.Is(err, io.EOF) && !endless:
			*eof = true
		default: // a reset, an endless stall's close, or a teardown
			*held = nil
			c.teardown(upstream)
			return false
		}
	}
	// The client closed during a timed or released stall: its bytes and
	// its close reach upstream when the stall ends.
	select {
	case <-timeout:
		return true
	case <-until:
		return true
	case <-c.done:
		return false
	}
}
