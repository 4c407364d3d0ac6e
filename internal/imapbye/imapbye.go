// Package imapbye remembers the untagged BYE (RFC 3501 §7.1.5, RFC 9051
// §7.1.5) an IMAP server sent on a connection that go-imap reads.
//
// go-imap v2.0.0-beta.8 parses an untagged BYE and drops it; the commands
// pending when the server then closes fail with only io.ErrUnexpectedEOF or
// "use of closed network connection", so an error could not say why the
// server hung up ("[UNAVAILABLE] going down for maintenance"). A Conn
// passes every byte through unchanged and watches the server's side of the
// stream for it.
//
// The Conn must carry clear text: below a TLS conn it sees records, not
// responses. internal/imapconn, which does STARTTLS itself rather than
// through go-imap, wraps the conn go-imap reads once it is secured.
package imapbye

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Bye is an untagged BYE response.
type Bye struct {
	Code string // response code atom, upper case ("UNAVAILABLE"), "" when none
	Text string // the human-readable text after the code
}

// Conn is a net.Conn that records the last untagged BYE read from it.
type Conn struct {
	net.Conn
	mu  sync.Mutex
	s   scanner
	bye *Bye
}

// New returns c watched for BYE responses. c must carry IMAP in clear
// text as the server sends it (plain TCP, or a TLS conn above the
// handshake), from the greeting on.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the underlying conn and scans what it returns.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if b := c.s.scan(p[:n]); b != nil {
			c.bye = b
		}
		c.mu.Unlock()
	}
	return n, err
}

// Bye returns the last BYE the server sent, or nil.
func (c *Conn) Bye() *Bye {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bye
}

// Bounds of what the scanner keeps of one line: a BYE line is short, and
// a literal announcement "{n}" ends a line.
const (
	maxHead = 1024
	maxTail = 32
)

// scanner follows the framing of server responses (RFC 3501 §4.3, §7): a
// response is a line, or lines joined by literals, each announced by
// "{n}" at the end of a line and followed by exactly n bytes. Only a line
// that starts a response can be a BYE; a literal's bytes (a message body
// that holds "* BYE" at a line start, say) never are.
type scanner struct {
	head []byte // the line so far, up to maxHead bytes
	tail []byte // its last bytes, up to maxTail
	cont bool   // the line goes on a response after a literal
	skip int64  // literal bytes still to pass
}

// scan takes the next bytes from the server and returns the last BYE
// that ended in them, or nil.
func (s *scanner) scan(p []byte) *Bye {
	var bye *Bye
	for len(p) > 0 {
		if s.skip > 0 {
			n := int64(len(p))
			if n > s.skip {
				n = s.skip
			}
			s.skip -= n
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		frag := p
		if i >= 0 {
			frag = p[:i]
		}
		if room := maxHead - len(s.head); room > 0 {
			s.head = append(s.head, frag[:min(room, len(frag))]...)
		}
		s.tail = append(s.tail, frag[max(0, len(frag)-maxTail):]...)
		if len(s.tail) > maxTail {
			s.tail = s.tail[len(s.tail)-maxTail:]
		}
		if i < 0 {
			return bye
		}
		p = p[i+1:]
		if b := s.endLine(); b != nil {
			bye = b
		}
	}
	return bye
}

// endLine finishes the current line and returns it as a BYE if it is one.
func (s *scanner) endLine() *Bye {
	head := bytes.TrimSuffix(s.head, []byte("\r"))
	tail := bytes.TrimSuffix(s.tail, []byte("\r"))
	var bye *Bye
	if !s.cont && len(head) >= len(byePrefix) && bytes.EqualFold(head[:len(byePrefix)], []byte(byePrefix)) {
		// Only then: the string is an allocation per line.
		bye = parseBye(string(head))
	}
	// A status response (OK, NO, BAD, BYE, PREAUTH) ends in text, never in
	// a literal, even when the text happens to end in "{5}".
	status := !s.cont && isStatus(head)
	s.head, s.tail = s.head[:0], s.tail[:0]
	s.cont = false
	if n, ok := trailingLiteral(tail); ok && !status {
		s.skip, s.cont = n, true
	}
	return bye
}

// isStatus reports whether line is a status response: a tag or "*", then
// OK, NO, BAD, BYE or PREAUTH (RFC 3501 §7.1).
func isStatus(line []byte) bool {
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return false
	}
	word, _, _ := bytes.Cut(rest, []byte(" "))
	for _, status := range [...]string{"OK", "NO", "BAD", "BYE", "PREAUTH"} {
		if upperIs(word, status) {
			return true
		}
	}
	return false
}

// upperIs reports whether strings.ToUpper(string(word)) == upper, an
// upper-case ASCII word without I or S, without allocating: of the
// non-ASCII letters only ı and ſ have an ASCII upper case (I, S).
func upperIs(word []byte, upper string) bool {
	if len(word) != len(upper) {
		return false
	}
	for i, c := range word {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// byePrefix starts every BYE line, in any case.
const byePrefix = "* BYE"

// parseBye parses `* BYE [CODE args] text`; nil for any other line.
func parseBye(line string) *Bye {
	if len(line) < len(byePrefix) || !strings.EqualFold(line[:len(byePrefix)], byePrefix) {
		return nil
	}
	rest := line[len(byePrefix):]
	if rest != "" && rest[0] != ' ' {
		return nil // "* BYEBYE": another word
	}
	rest = strings.TrimPrefix(rest, " ")
	b := &Bye{Text: rest}
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end > 0 {
			code, _, _ := strings.Cut(rest[1:end], " ")
			b.Code = strings.ToUpper(code)
			b.Text = strings.TrimPrefix(rest[end+1:], " ")
		}
	}
	return b
}

// trailingLiteral reports whether line ends in a literal announcement:
// "{n}" (RFC 3501 §4.3), also as "~{n}" (RFC 3516 literal8).
func trailingLiteral(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[open+1:len(line)-1]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
