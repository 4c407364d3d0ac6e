package imapdst

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
)

// maxLineBytes bounds one response line (literals excluded), so a broken or
// hostile server cannot make the appender buffer without limit.
const maxLineBytes = 1 << 20

// errLineTooLong is returned for a response line longer than maxLineBytes.
var errLineTooLong = errors.New("imapdst: response line too long")

// response is one server response (RFC 3501 §7, RFC 9051 §7).
type response struct {
	Tag string // "*" untagged, "+" continuation request, else the command tag
	// Status is OK, NO, BAD, BYE or PREAUTH for status responses, upper case;
	// "" for untagged data (CAPABILITY, EXISTS, …).
	Status  string
	Code    string // response code atom, upper case, "" when none
	CodeArg string // what follows the code atom inside the brackets
	Text    string // human-readable text after the code
	Num     uint32 // for "* n EXISTS" and the like
	HasNum  bool
	Kind    string // untagged data kind, upper case ("CAPABILITY", "EXISTS")
	Rest    string // untagged data after Kind
	Line    string // the line as received, literals replaced by "{n}[n bytes]"
}

// readResponse reads one response from br. Literals in untagged data (which
// the appender never needs) are read and discarded, so a line with a literal
// is still one response. Continuation requests, tagged and untagged lines
// are told apart by parseResponse.
func readResponse(br *bufio.Reader) (response, error) {
	var line []byte
	for {
		part, err := readLine(br, maxLineBytes-len(line))
		if err != nil {
			return response{}, err
		}
		line = append(line, part...)
		n, ok := trailingLiteral(part)
		if !ok || !mayHaveLiterals(line) {
			break
		}
		if _, err := io.CopyN(io.Discard, br, n); err != nil {
			return response{}, fmt.Errorf("imapdst: reading %d-byte literal in server response: %w", n, noEOF(err))
		}
		line = append(line, fmt.Sprintf("[%d bytes]", n)...)
	}
	return parseResponse(string(line))
}

// readLine reads up to CRLF (or a bare LF, tolerated) and returns the line
// without it.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > limit {
			return nil, errLineTooLong
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, noEOF(err)
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// noEOF turns a mid-response io.EOF into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// mayHaveLiterals reports whether the response starting with line can
// carry literals: only untagged data can (RFC 3501 §7, §9). Status
// responses, tagged or untagged (OK, NO, BAD, BYE, PREAUTH), and
// continuation requests end in resp-text, which has none (§7.1): a "{5}"
// at their end is text, and the next line is the next response.
func mayHaveLiterals(line []byte) bool {
	tag, rest, _ := bytes.Cut(line, []byte(" "))
	if string(tag) != "*" {
		return false // "+" or a command tag
	}
	word, _, _ := bytes.Cut(rest, []byte(" "))
	switch strings.ToUpper(string(word)) {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return false
	}
	return true
}

// trailingLiteral reports whether line ends in a literal announcement "{n}"
// (RFC 3501 §4.3; servers never send "{n+}").
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

// parseResponse parses one response line (without CRLF).
func parseResponse(line string) (response, error) {
	r := response{Line: line}
	if line == "+" || strings.HasPrefix(line, "+ ") {
		r.Tag = "+"
		r.Text = strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
		return r, nil
	}
	tag, rest, ok := strings.Cut(line, " ")
	if !ok || tag == "" {
		return r, fmt.Errorf("imapdst: malformed server response %q", truncate(line))
	}
	r.Tag = tag
	if tag != "*" && !validTag(tag) {
		return r, fmt.Errorf("imapdst: malformed tag in server response %q", truncate(line))
	}
	word, after, _ := strings.Cut(rest, " ")
	upper := strings.ToUpper(word)
	switch upper {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		if tag != "*" && (upper == "BYE" || upper == "PREAUTH") {
			return r, fmt.Errorf("imapdst: tagged %s in server response %q", upper, truncate(line))
		}
		r.Status = upper
		r.Code, r.CodeArg, r.Text = imapconn.ParseRespText(after)
		return r, nil
	}
	if tag != "*" {
		return r, fmt.Errorf("imapdst: malformed tagged server response %q", truncate(line))
	}
	if n, err := strconv.ParseUint(word, 10, 32); err == nil {
		r.Num, r.HasNum = uint32(n), true
		word, after, _ = strings.Cut(after, " ")
	}
	if word == "" {
		return r, fmt.Errorf("imapdst: malformed untagged server response %q", truncate(line))
	}
	r.Kind = strings.ToUpper(word)
	r.Rest = after
	return r, nil
}

// validTag reports whether s is a tag: ASTRING-CHARs except "+" (RFC 3501 §9).
func validTag(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '+' || !isAtomChar(c) && c != ']' {
			return false
		}
	}
	return s != ""
}

// isAtomChar reports whether c is an ATOM-CHAR (RFC 3501 §9).
func isAtomChar(c byte) bool {
	if c <= 0x20 || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// capSet is a server's CAPABILITY list (RFC 3501 §7.2.1), upper case.
type capSet map[string]bool

// parseCaps parses a space-separated capability list.
func parseCaps(s string) capSet {
	caps := capSet{}
	for _, c := range strings.Fields(s) {
		caps[strings.ToUpper(c)] = true
	}
	return caps
}

// forAppend is what a server with these capabilities and quirks q offers
// for appending; sh says which optional features the account's sessions
// found refused.
func (c capSet) forAppend(q provider.Quirks, sh *Shared) pipeline.Capabilities {
	return pipeline.Capabilities{
		MultiAppend:     c.multiAppend(sh),
		LiteralPlus:     c["LITERAL+"],
		UIDPlus:         c["UIDPLUS"],
		AppendLimit:     c.appendLimit(),
		Binary:          c["BINARY"],
		DropsDuplicates: q.DropsDuplicates,
		CrawlsAtLimit:   q.CrawlsAtLimit,
	}
}

// multiAppend reports whether MULTIAPPEND (RFC 3502) is offered and not
// found refused.
func (c capSet) multiAppend(sh *Shared) bool {
	return c["MULTIAPPEND"] && !sh.Quirks.Refused(imapconn.FeatureMultiAppend)
}

// appendLimit returns the server-wide APPENDLIMIT=n (RFC 7889 §3), or 0.
func (c capSet) appendLimit() int64 {
	for k := range c {
		if v, ok := strings.CutPrefix(k, "APPENDLIMIT="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// parseAppendUID parses the arguments of an APPENDUID response code
// (RFC 4315 §3): "uidvalidity SP uid-set". want is the number of messages the
// command appended; a uid-set of another size is an error.
func parseAppendUID(arg string, want int) (uint32, []uint32, error) {
	v, set, ok := strings.Cut(arg, " ")
	if !ok {
		return 0, nil, fmt.Errorf("imapdst: malformed APPENDUID %q", truncate(arg))
	}
	validity, err := parseNZNumber(v)
	if err != nil {
		return 0, nil, fmt.Errorf("imapdst: malformed APPENDUID %q: %w", truncate(arg), err)
	}
	uids, err := parseUIDSet(set, want)
	if err != nil {
		return 0, nil, fmt.Errorf("imapdst: malformed APPENDUID %q: %w", truncate(arg), err)
	}
	if len(uids) != want {
		return 0, nil, fmt.Errorf("imapdst: APPENDUID %q names %d UIDs for %d messages", truncate(arg), len(uids), want)
	}
	return validity, uids, nil
}

// parseUIDSet expands a uid-set (RFC 4315 §4: uniqueid / uid-range, comma
// separated) in the order given; a range runs from its lower to its upper
// end, as "4:2" equals "2:4" (RFC 3501 §9). It fails as soon as more than max
// UIDs are named, so a hostile "1:4294967295" costs nothing.
func parseUIDSet(s string, max int) ([]uint32, error) {
	if s == "" {
		return nil, errors.New("empty uid-set")
	}
	var uids []uint32
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, ":")
		a, err := parseNZNumber(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseNZNumber(hi); err != nil {
				return nil, err
			}
			if a > b {
				a, b = b, a
			}
		}
		if uint64(b-a)+1 > uint64(max-len(uids)) {
			return nil, fmt.Errorf("uid-set names more than %d UIDs", max)
		}
		for u := uint64(a); u <= uint64(b); u++ {
			uids = append(uids, uint32(u))
		}
	}
	return uids, nil
}

// parseNZNumber parses nz-number (RFC 3501 §9): 1 to 4294967295, no sign,
// no leading zero.
func parseNZNumber(s string) (uint32, error) {
	if s == "" || s[0] == '0' {
		return 0, fmt.Errorf("bad number %q", truncate(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad number %q", truncate(s))
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", truncate(s))
	}
	return uint32(n), nil
}
