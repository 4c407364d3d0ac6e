package providerfake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A command as the client sent it: its tag, its name in upper case ("UID
// FETCH" for the UID forms) and its arguments as tokens (RFC 3501 §9).
type command struct {
	tag  string
	name string
	args []token
	// line is the command's first line, without the literals, for hooks
	// and the log.
	line string
}

// tokenKind is what a token is.
type tokenKind int

const (
	tokAtom     tokenKind = iota // an atom, a number, a sequence set, BODY.PEEK[...]<...>
	tokString                    // a quoted string
	tokLiteral                   // a literal, {n} or {n+}
	tokList                      // ( ... )
	tokNIL                       // NIL
	tokLiteral8                  // ~{n} (RFC 3516)
)

type token struct {
	kind tokenKind
	s    string // atom or string value (a literal's bytes)
	list []token
}

func (t token) String() string {
	switch t.kind {
	case tokList:
		var parts []string
		for _, x := range t.list {
			parts = append(parts, x.String())
		}
		return "(" + strings.Join(parts, " ") + ")"
	case tokNIL:
		return "NIL"
	case tokString, tokLiteral, tokLiteral8:
		return strconv.Quote(t.s)
	}
	return t.s
}

// astring is the token as an IMAP astring (an atom or a string).
func (t token) astring() (string, bool) {
	switch t.kind {
	case tokAtom, tokString, tokLiteral, tokLiteral8:
		return t.s, true
	}
	return "", false
}

// errLineTooLong ends a session whose client sends a line without end.
var errLineTooLong = errors.New("command line too long")

const maxLine = 64 << 10

// literalGate is asked before the server sends the continuation of a
// synchronising literal (RFC 3501 §7.5): a non-nil reply refuses the
// command instead, and the client sends no literal.
type literalGate func(tag, sofar string, size int64) *Reply

// readCommand reads one command, its literals included. A synchronising
// literal gets "+ Ready" unless gate refuses it; then the command is
// returned with refused set, its rest unread (the client sends nothing
// more of it).
func readCommand(br *bufio.Reader, w *bufio.Writer, gate literalGate) (cmd command, refused *Reply, err error) {
	var raw []byte    // the command with each literal replaced by \x00<index>\x00
	var lits [][]byte // the literals
	var lit8 []bool
	var first string
	for {
		line, err := readLine(br)
		if err != nil {
			return command{}, nil, err
		}
		if first == "" {
			first = string(line)
		}
		n, sync, binary, ok := trailingLiteral(line)
		if !ok {
			raw = append(raw, line...)
			break
		}
		head := line[:bytes.LastIndexByte(line, '{')]
		if binary {
			head = head[:len(head)-1]
		}
		raw = append(raw, head...)
		if sync {
			tag, _, _ := strings.Cut(first, " ")
			if r := gate(tag, string(raw), n); r != nil {
				cmd.tag = tag
				return cmd, r, nil
			}
			if _, err := w.WriteString("+ Ready for literal data\r\n"); err != nil {
				return command{}, nil, err
			}
			if err := w.Flush(); err != nil {
				return command{}, nil, err
			}
		}
		if n > 1<<30 {
			return command{}, nil, fmt.Errorf("literal of %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return command{}, nil, err
		}
		raw = append(raw, 0)
		raw = append(raw, strconv.Itoa(len(lits))...)
		raw = append(raw, 0)
		lits = append(lits, b)
		lit8 = append(lit8, binary)
	}
	tag, rest, _ := bytes.Cut(raw, []byte(" "))
	cmd.tag = string(tag)
	cmd.line = first
	lx := &lexer{s: rest, lits: lits, lit8: lit8}
	name, err := lx.atom()
	if err != nil {
		return cmd, nil, err
	}
	cmd.name = strings.ToUpper(name)
	if cmd.name == "UID" {
		lx.space()
		sub, err := lx.atom()
		if err != nil {
			return cmd, nil, err
		}
		cmd.name += " " + strings.ToUpper(sub)
	}
	for {
		lx.space()
		if lx.done() {
			break
		}
		t, err := lx.token()
		if err != nil {
			return cmd, nil, fmt.Errorf("%s: %w", cmd.name, err)
		}
		cmd.args = append(cmd.args, t)
	}
	return cmd, nil, nil
}

// readLine reads a line without its CRLF (or LF).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(line) > maxLine {
			return nil, errLineTooLong
		}
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// trailingLiteral parses "{n}", "{n+}" (RFC 7888) or "~{n}" (RFC 3516) at
// the end of line.
func trailingLiteral(line []byte) (n int64, sync, binary, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, false, false
	}
	num := string(line[open+1 : len(line)-1])
	sync = true
	if strings.HasSuffix(num, "+") || strings.HasSuffix(num, "-") {
		num, sync = num[:len(num)-1], false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, false, false, false
	}
	return v, sync, open > 0 && line[open-1] == '~', true
}

// lexer splits a command's arguments into tokens.
type lexer struct {
	s    []byte
	i    int
	lits [][]byte
	lit8 []bool
}

func (l *lexer) done() bool { return l.i >= len(l.s) }

func (l *lexer) space() {
	for l.i < len(l.s) && l.s[l.i] == ' ' {
		l.i++
	}
}

func (l *lexer) token() (token, error) {
	if l.done() {
		return token{}, errors.New("missing argument")
	}
	switch c := l.s[l.i]; c {
	case '(':
		l.i++
		var list []token
		for {
			l.space()
			if l.done() {
				return token{}, errors.New("unterminated list")
			}
			if l.s[l.i] == ')' {
				l.i++
				return token{kind: tokList, list: list}, nil
			}
			t, err := l.token()
			if err != nil {
				return token{}, err
			}
			list = append(list, t)
		}
	case '"':
		l.i++
		var b []byte
		for {
			if l.done() {
				return token{}, errors.New("unterminated quoted string")
			}
			c := l.s[l.i]
			l.i++
			if c == '\\' && !l.done() {
				b = append(b, l.s[l.i])
				l.i++
				continue
			}
			if c == '"' {
				return token{kind: tokString, s: string(b)}, nil
			}
			b = append(b, c)
		}
	case 0:
		end := bytes.IndexByte(l.s[l.i+1:], 0)
		if end < 0 {
			return token{}, errors.New("bad literal marker")
		}
		idx, _ := strconv.Atoi(string(l.s[l.i+1 : l.i+1+end]))
		l.i += end + 2
		kind := tokLiteral
		if l.lit8[idx] {
			kind = tokLiteral8
		}
		return token{kind: kind, s: string(l.lits[idx])}, nil
	}
	a, err := l.atom()
	if err != nil {
		return token{}, err
	}
	if strings.EqualFold(a, "NIL") {
		return token{kind: tokNIL}, nil
	}
	return token{kind: tokAtom, s: a}, nil
}

// atom reads an atom; a "[" in it runs to its "]", spaces and parentheses
// included (BODY.PEEK[HEADER.FIELDS (Date)]), and "<...>" after it too.
func (l *lexer) atom() (string, error) {
	start := l.i
	depth := 0
	for l.i < len(l.s) {
		c := l.s[l.i]
		if depth == 0 && (c == ' ' || c == '(' || c == ')' || c == 0 || c == '"') {
			break
		}
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		}
		l.i++
	}
	if l.i == start {
		return "", fmt.Errorf("expected an atom at %q", l.s[start:])
	}
	return string(l.s[start:l.i]), nil
}

// quote writes s as an IMAP quoted string, or a literal when it cannot be
// quoted.
func quote(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") || len(s) > 1000 {
		return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
