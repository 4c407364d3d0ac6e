package faultproxy

import (
	"bytes"
	"strconv"
	"sync"
)

// protocol is what a connection speaks, as its server's greeting tells.
type protocol int

const (
	protoUnknown protocol = iota // the greeting has not started yet
	protoOther                   // not a plaintext IMAP or POP3 greeting (TLS, say)
	protoIMAP
	protoPOP3
)

// session is the protocol state a connection's two directions share: the
// protocol, and for POP3 the commands forwarded and not answered yet.
type session struct {
	mu    sync.Mutex
	proto protocol
	// pending has, for each POP3 command forwarded upstream and not
	// answered yet, what a +OK to it is.
	pending []pop3Reply
	// IMAP: command lines forwarded upstream, and tagged replies
	// forwarded back (see Proxy.Unanswered).
	commands, completions int
}

// unanswered is the IMAP commands forwarded and not completed yet; ok is
// false when the session does not speak IMAP.
func (s *session) unanswered() (n int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proto != protoIMAP {
		return 0, false
	}
	return s.commands - s.completions, true
}

// imapLine counts an IMAP line that ended at a boundary: from the client a
// command, from the server a completion when it is tagged (not "*", not
// "+").
func (s *session) imapLine(dir Direction, head []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case dir == ClientToServer:
		s.commands++
	case len(head) > 0 && head[0] != '*' && head[0] != '+':
		s.completions++
	}
}

// pop3Reply is what a +OK to a POP3 command is.
type pop3Reply int

const (
	singleLine pop3Reply = iota
	listing              // multi-line: CAPA, LIST, UIDL
	message              // multi-line: RETR, TOP
)

func (s *session) protocol() protocol {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proto
}

func (s *session) setProtocol(p protocol) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proto = p
	if p != protoPOP3 {
		s.pending = nil
	}
}

// command records a POP3 command line (or, before the greeting, a line
// that may be one).
func (s *session) command(r pop3Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proto == protoPOP3 || s.proto == protoUnknown {
		s.pending = append(s.pending, r)
	}
}

// answered pops the oldest unanswered POP3 command: what its +OK is
// (singleLine when none is pending).
func (s *session) answered() pop3Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return singleLine
	}
	r := s.pending[0]
	s.pending = s.pending[1:]
	return r
}

// framer follows the bytes of one direction and tells whether the point
// after them is a boundary: a line start that is not inside a message. In
// IMAP (either direction) the bytes of a literal {N} or {N+} and the rest
// of the line after it are not; in POP3 (server → client) the lines of a
// RETR or TOP response after its status line are not, up to and including
// the terminating ".". The line starts of a listing (CAPA, LIST, UIDL) are
// boundaries: a line injected there is a visibly malformed listing, or an
// extra capability, never a changed message. Other protocols have a
// boundary at every line start.
//
// The server's greeting tells the protocol: "* " starts an IMAP one, "+OK"
// or "-ERR" a POP3 one. Bytes the proxy injects never pass a framer.
type framer struct {
	s   *session
	dir Direction
	// lineStart: the next byte starts a line (offset 0 counts).
	lineStart bool
	lineLen   int64
	head      []byte    // the line's first bytes
	tail      []byte    // the line's last bytes (IMAP literal announcements)
	literal   int64     // IMAP: literal bytes still to come
	body      pop3Reply // POP3 server → client: the multi-line response inside, or singleLine
	greeted   bool      // server → client: the greeting line has ended
}

const (
	headLen = 16 // enough for a POP3 verb and whether an argument follows
	tailLen = 32 // enough for "{" + 19 digits + "+}\r\n"
)

func newFramer(s *session, dir Direction) *framer {
	return &framer{s: s, dir: dir, lineStart: true}
}

// boundary reports whether the bytes scanned so far end at a boundary.
func (f *framer) boundary() bool {
	return f.lineStart && f.literal == 0 && f.body != message
}

// scan follows p and returns how many of its bytes it took: all of them,
// or with stop the bytes up to the first boundary after at least one byte.
func (f *framer) scan(p []byte, stop bool) int {
	i := 0
	for i < len(p) {
		if f.literal > 0 {
			k := int(min(int64(len(p)-i), f.literal))
			f.literal -= int64(k)
			i += k
			continue
		}
		if f.lineStart {
			f.lineStart, f.lineLen, f.head, f.tail = false, 0, f.head[:0], f.tail[:0]
		}
		// The bytes up to and including the next LF, or the rest of p.
		seg := p[i:]
		if j := bytes.IndexByte(seg, '\n'); j >= 0 {
			seg = seg[:j+1]
		}
		i += len(seg)
		f.lineLen += int64(len(seg))
		if len(f.head) < headLen {
			f.head = append(f.head, seg[:min(len(seg), headLen-len(f.head))]...)
			if f.dir == ServerToClient && !f.greeted && f.s.protocol() == protoUnknown {
				if proto, ok := greetingProtocol(f.head); ok {
					f.s.setProtocol(proto)
				}
			}
		}
		f.tail = append(f.tail, seg[max(0, len(seg)-tailLen):]...)
		if len(f.tail) > tailLen {
			f.tail = append(f.tail[:0], f.tail[len(f.tail)-tailLen:]...)
		}
		if seg[len(seg)-1] == '\n' {
			f.endLine()
			if stop && f.boundary() {
				return i
			}
		}
	}
	return i
}

// endLine runs at each LF.
func (f *framer) endLine() {
	f.lineStart = true
	proto := f.s.protocol()
	if f.dir == ServerToClient && !f.greeted {
		f.greeted = true
		if proto == protoUnknown { // a greeting line too short to tell
			f.s.setProtocol(protoOther)
		}
		return
	}
	switch proto {
	case protoIMAP:
		if n, ok := literalSize(f.tail); ok {
			// The literal's bytes and the rest of the line follow.
			f.literal, f.lineStart, f.tail = n, false, f.tail[:0]
			return
		}
		f.s.imapLine(f.dir, f.head)
	case protoPOP3, protoUnknown:
		if f.dir == ClientToServer {
			f.s.command(pop3ReplyTo(f.head))
			return
		}
		if proto == protoUnknown {
			return
		}
		switch {
		case f.body != singleLine:
			if (f.lineLen == 3 && string(f.head) == ".\r\n") || (f.lineLen == 2 && string(f.head) == ".\n") {
				f.body = singleLine
			}
		default: // a status line answers the oldest command
			if r := f.s.answered(); bytes.HasPrefix(f.head, []byte("+OK")) {
				f.body = r
			}
		}
	}
}

// greetingProtocol tells the protocol from the first bytes of a server's
// greeting, once they suffice.
func greetingProtocol(head []byte) (protocol, bool) {
	for _, c := range []struct {
		prefix string
		proto  protocol
	}{{"* ", protoIMAP}, {"+OK", protoPOP3}, {"-ERR", protoPOP3}} {
		n := min(len(head), len(c.prefix))
		if string(head[:n]) != c.prefix[:n] {
			continue
		}
		if n == len(c.prefix) {
			return c.proto, true
		}
		return protoUnknown, false // a prefix so far: wait for more
	}
	return protoOther, true
}

// literalSize parses an IMAP literal announcement, "{N}" or "{N+}" (RFC
// 3501 §4.3, RFC 7888), at the end of a line.
func literalSize(line []byte) (int64, bool) {
	t := bytes.TrimSuffix(line, []byte("\n"))
	t = bytes.TrimSuffix(t, []byte("\r"))
	if !bytes.HasSuffix(t, []byte("}")) {
		return 0, false
	}
	t = bytes.TrimSuffix(t[:len(t)-1], []byte("+"))
	open := bytes.LastIndexByte(t, '{')
	if open < 0 {
		return 0, false
	}
	digits := t[open+1:]
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil
}

// pop3ReplyTo tells what a +OK to the POP3 command line that starts with
// head is (RFC 1939, RFC 2449 CAPA).
func pop3ReplyTo(head []byte) pop3Reply {
	verb, rest, _ := bytes.Cut(bytes.TrimRight(head, "\r\n"), []byte(" "))
	switch string(bytes.ToUpper(verb)) {
	case "RETR", "TOP":
		return message
	case "CAPA":
		return listing
	case "LIST", "UIDL":
		if len(bytes.TrimSpace(rest)) == 0 {
			return listing
		}
	}
	return singleLine
}
