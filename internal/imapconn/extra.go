package imapconn

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// FetchExtra makes every FETCH go-imap sends, until stop is called, ask
// for items besides its own, and takes their values out of the server's
// FETCH responses before go-imap reads them: got receives each one with
// the message's sequence number and the value as the server wrote it
// (a number, a parenthesised list). It is for the items of extensions
// go-imap v2.0.0-beta.8 can neither ask for nor parse (it fails a FETCH
// response with an item it does not know): Gmail's X-GM-MSGID and
// X-GM-LABELS (X-GM-EXT-1). got runs on go-imap's reader goroutine, before
// the FETCH it belongs to completes.
//
// Call it while no command is in flight, and stop once the FETCH has
// completed. The protocol trace shows the FETCH as go-imap wrote it and
// its responses without the extra items.
func (s *Conn) FetchExtra(items []string, got func(seq uint32, item, value string)) (stop func()) {
	x := s.extra
	x.mu.Lock()
	x.items, x.got = items, got
	x.mu.Unlock()
	x.on.Store(true)
	x.busy.Store(true)
	return func() {
		x.mu.Lock()
		x.items, x.got = nil, nil
		x.mu.Unlock()
		x.on.Store(false)
	}
}

// extraConn is the conn go-imap reads and writes, between the gate and the
// BYE watcher: while FetchExtra is on, it rewrites FETCH commands and
// responses; otherwise it passes every byte through, looking at none.
type extraConn struct {
	net.Conn
	on atomic.Bool
	// busy is on, or bytes still buffered from when it was: reads go
	// through the buffers. Off and idle, a read is the conn's own.
	busy atomic.Bool

	mu    sync.Mutex
	items []string
	got   func(seq uint32, item, value string)
	in    []byte // read, not yet a whole response
	out   []byte // rewritten, not yet read by go-imap
	wbuf  []byte // written, not yet a whole command line
}

func newExtraConn(c net.Conn) *extraConn { return &extraConn{Conn: c} }

func (x *extraConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if !x.busy.Load() {
		// go-imap's reader waits here between commands, so FetchExtra
		// may begin while it does: what comes back after that is a
		// reply to the FETCH it rewrote, and is rewritten too.
		if n, err = x.Conn.Read(p); n == 0 || !x.busy.Load() {
			return n, err
		}
	}
	for {
		x.mu.Lock()
		if n == 0 && err == nil && len(x.out) > 0 {
			k := copy(p, x.out)
			x.out = x.out[k:]
			x.settle()
			x.mu.Unlock()
			return k, nil
		}
		x.mu.Unlock()
		if n == 0 && err == nil {
			n, err = x.Conn.Read(p)
		}
		x.mu.Lock()
		x.in = append(x.in, p[:n]...)
		x.process()
		n = 0
		k := copy(p, x.out)
		x.out = x.out[k:]
		x.settle()
		x.mu.Unlock()
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// settle clears busy once off with nothing buffered. Called with mu held.
func (x *extraConn) settle() {
	if !x.on.Load() && len(x.in) == 0 && len(x.out) == 0 {
		x.busy.Store(false)
	}
}

// process moves whole responses from in to out, rewriting FETCH
// responses while on; off, it moves everything.
func (x *extraConn) process() {
	if x.items == nil {
		x.out = append(x.out, x.in...)
		x.in = x.in[:0]
		return
	}
	for {
		end, ok := responseEnd(x.in)
		if !ok {
			return
		}
		x.out = append(x.out, x.rewrite(x.in[:end])...)
		x.in = x.in[end:]
	}
}

// responseEnd returns the length of the first whole response in b: a line,
// or lines joined by literals ("{n}" at a line's end, n bytes after it).
func responseEnd(b []byte) (int, bool) {
	pos := 0
	for {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			return 0, false
		}
		line := bytes.TrimSuffix(b[pos:pos+i], []byte("\r"))
		pos += i + 1
		n, ok := literalAtEnd(line)
		if !ok {
			return pos, true
		}
		if int64(len(b)-pos) < n {
			return 0, false
		}
		pos += int(n)
	}
}

func literalAtEnd(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(string(line[open+1:len(line)-1]), "+"), 10, 64)
	return n, err == nil && n >= 0
}

// rewrite takes the extra items out of a FETCH response (RFC 3501 §7.4.2:
// "* n FETCH (name value name value …)") and hands them to got.
func (x *extraConn) rewrite(r []byte) []byte {
	if !bytes.HasPrefix(r, []byte("* ")) {
		return r
	}
	rest := r[2:]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 || !bytes.HasPrefix(bytes.ToUpper(rest[sp+1:]), []byte("FETCH (")) {
		return r
	}
	seq, err := strconv.ParseUint(string(rest[:sp]), 10, 32)
	if err != nil {
		return r
	}
	start := 2 + sp + 1 + len("FETCH (")
	out := append([]byte(nil), r[:start]...)
	i := start
	first, took := true, false
	for i < len(r) && r[i] != ')' {
		for i < len(r) && r[i] == ' ' {
			i++
		}
		nameEnd := i
		for nameEnd < len(r) && r[nameEnd] != ' ' && r[nameEnd] != ')' && r[nameEnd] != '[' {
			nameEnd++
		}
		if nameEnd < len(r) && r[nameEnd] == '[' { // BODY[…]<n>: up to "]" and the origin
			if j := bytes.IndexByte(r[nameEnd:], ']'); j >= 0 {
				nameEnd += j + 1
				for nameEnd < len(r) && r[nameEnd] != ' ' && r[nameEnd] != ')' {
					nameEnd++
				}
			}
		}
		name := string(r[i:nameEnd])
		vStart := nameEnd
		if vStart < len(r) && r[vStart] == ' ' {
			vStart++
		}
		vEnd := valueEnd(r, vStart)
		if vEnd <= i || vEnd > len(r) {
			// Not a FETCH this code understands: leave it to go-imap.
			return r
		}
		if x.wanted(name) {
			x.got(uint32(seq), strings.ToUpper(name), string(r[vStart:vEnd]))
			took = true
		} else {
			if !first {
				out = append(out, ' ')
			}
			out = append(out, r[i:vEnd]...)
			first = false
		}
		i = vEnd
	}
	if !took {
		return r
	}
	return append(out, r[i:]...)
}

func (x *extraConn) wanted(name string) bool {
	for _, it := range x.items {
		if strings.EqualFold(it, name) {
			return true
		}
	}
	return false
}

// valueEnd returns where the value of a FETCH item starting at i ends: an
// atom or number, a quoted string, a literal, NIL, or a parenthesised list
// of those.
func valueEnd(r []byte, i int) int {
	if i >= len(r) {
		return i
	}
	switch r[i] {
	case '(':
		i++
		for i < len(r) && r[i] != ')' {
			if r[i] == ' ' {
				i++
				continue
			}
			j := valueEnd(r, i)
			if j <= i {
				return -1
			}
			i = j
		}
		if i >= len(r) {
			return -1
		}
		return i + 1
	case '"':
		for j := i + 1; j < len(r); j++ {
			switch r[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '~':
		nl := bytes.IndexByte(r[i:], '\n')
		if nl < 0 {
			return -1
		}
		n, ok := literalAtEnd(bytes.TrimSuffix(r[i:i+nl], []byte("\r")))
		if !ok || int64(len(r)-(i+nl+1)) < n {
			return -1
		}
		return i + nl + 1 + int(n)
	}
	j := i
	for j < len(r) && r[j] != ' ' && r[j] != ')' && r[j] != '\r' && r[j] != '\n' {
		j++
	}
	return j
}

func (x *extraConn) Write(p []byte) (int, error) {
	if !x.on.Load() {
		return x.Conn.Write(p)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.wbuf = append(x.wbuf, p...)
	for {
		i := bytes.Index(x.wbuf, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := x.withItems(x.wbuf[:i])
		if _, err := x.Conn.Write(append(line, '\r', '\n')); err != nil {
			return 0, err
		}
		x.wbuf = x.wbuf[i+2:]
	}
	return len(p), nil
}

// withItems adds the extra items to a "tag [UID] FETCH set (items)
// [(modifiers)]" command line, inside the list of items: not into a
// modifier list that follows it (CHANGEDSINCE, RFC 7162 §3.1.4.1). Other
// lines pass unchanged.
func (x *extraConn) withItems(line []byte) []byte {
	f := strings.Fields(string(line))
	if len(f) < 4 || x.items == nil {
		return line
	}
	k := 1
	if strings.EqualFold(f[1], "UID") {
		k = 2
	}
	if !strings.EqualFold(f[k], "FETCH") || !bytes.HasSuffix(line, []byte(")")) {
		return line
	}
	open := bytes.IndexByte(line, '(')
	if open < 0 {
		return line
	}
	// The ")" that closes the items' list: parentheses nest (BODY.PEEK
	// [HEADER.FIELDS (…)]); item names hold no quotes or literals.
	end, depth := -1, 0
	for i := open; i < len(line) && end < 0; i++ {
		switch line[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				end = i
			}
		}
	}
	if end < 0 {
		return line
	}
	out := append([]byte(nil), line[:end]...)
	for _, it := range x.items {
		out = append(out, ' ')
		out = append(out, it...)
	}
	return append(out, line[end:]...)
}
