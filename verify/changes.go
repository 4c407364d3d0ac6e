package verify

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// MboxFields are the header fields mbox-backed servers add to the
// messages they store and serve, and rewrite as a message is read or its
// flags change: Status, X-Status and X-Keywords (flags), X-UID and
// X-IMAPbase (UIDs), and Content-Length. GNU Mailutils 3.15 adds
// X-IMAPbase, X-UID and Status to what imap4d serves. X-UIDL, which its
// pop3d also writes, is not among them: it is the field the copy itself
// adds with --x-uidl, and verify checks that one exactly.
var MboxFields = []string{"Status", "X-Status", "X-Keywords", "X-UID", "X-IMAPbase", "Content-Length"}

// eightBitReplacements are the bytes servers put in place of each 8-bit
// byte of a header: Cyrus IMAP's munge8bit writes "X"; "?" and "_" are the
// usual others.
const eightBitReplacements = "X?_"

// change says how a destination copy differs from its source message in
// the ways servers are documented to change messages (docs/servers.md):
// nothing else may differ.
type change struct {
	lineEnds  bool     // line ends normalised (bare LF or CR ↔ CRLF)
	added     []string // mbox fields the destination has and the source has not
	rewritten []string // mbox fields both have, with other values
	eightBit  int      // 8-bit header bytes replaced one for one (Cyrus: "X")
}

// String is the change for a report: "header fields added by mbox
// storage (X-IMAPbase, X-UID), 4 8-bit header bytes replaced".
func (c change) String() string {
	var parts []string
	if len(c.added) > 0 {
		parts = append(parts, "header fields added by mbox storage ("+strings.Join(c.added, ", ")+")")
	}
	if len(c.rewritten) > 0 {
		parts = append(parts, "mbox header fields rewritten ("+strings.Join(c.rewritten, ", ")+")")
	}
	if c.eightBit > 0 {
		parts = append(parts, fmt.Sprintf("%d 8-bit header bytes replaced", c.eightBit))
	}
	if c.lineEnds {
		parts = append(parts, "line ends normalised")
	}
	return strings.Join(parts, ", ")
}

// allowedChange reports whether dst is src changed only in the ways a
// server is documented to change a message (DECISIONS #11 of issue 15):
// line ends normalised, mbox fields added or rewritten (MboxFields), and
// 8-bit header bytes each replaced by one of eightBitReplacements
// (Cyrus's munge8bit); the
// body must be the same byte for byte. It returns what changed; ok is
// false when anything else differs, or nothing does.
func allowedChange(src, dst []byte) (change, bool) {
	var c change
	s, d := crlf(src), crlf(dst)
	c.lineEnds = !bytes.Equal(s, src) || !bytes.Equal(d, dst)
	sh, sb := splitHeader(s)
	dh, db := splitHeader(d)
	if !bytes.Equal(sb, db) {
		return c, false
	}
	sh, sf := stripFields(sh, MboxFields)
	dh, df := stripFields(dh, MboxFields)
	for name, v := range df {
		if sv, ok := sf[name]; !ok {
			c.added = append(c.added, name)
		} else if sv != v {
			c.rewritten = append(c.rewritten, name)
		}
	}
	for name := range sf {
		if _, ok := df[name]; !ok {
			c.rewritten = append(c.rewritten, name) // dropped
		}
	}
	sort.Strings(c.added)
	sort.Strings(c.rewritten)
	if !bytes.Equal(sh, dh) {
		if len(sh) != len(dh) {
			return c, false
		}
		for i := range sh {
			if sh[i] == dh[i] {
				continue
			}
			if sh[i] < 0x80 || !strings.ContainsRune(eightBitReplacements, rune(dh[i])) {
				return c, false
			}
			c.eightBit++
		}
	}
	changed := c.lineEnds || len(c.added) > 0 || len(c.rewritten) > 0 || c.eightBit > 0
	return c, changed
}

// crlf makes every line end CRLF, as the copy's spool does: CRLF stays,
// a bare LF or CR becomes CRLF.
func crlf(b []byte) []byte {
	if !bytes.ContainsAny(b, "\r\n") {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// splitHeader splits a CRLF message after the CRLF CRLF that ends its
// header; a message without one is all header.
func splitHeader(m []byte) (header, body []byte) {
	if i := bytes.Index(m, []byte("\r\n\r\n")); i >= 0 {
		return m[:i+4], m[i+4:]
	}
	return m, nil
}

// stripFields returns header without the fields named in names (any case,
// with their continuation lines), and those fields' values by canonical
// name.
func stripFields(header []byte, names []string) ([]byte, map[string]string) {
	out := make([]byte, 0, len(header))
	found := map[string]string{}
	skip := ""
	for rest := header; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\r\n"))
		line := rest
		if i >= 0 {
			line = rest[:i+2]
		}
		rest = rest[len(line):]
		if (line[0] == ' ' || line[0] == '\t') && len(bytes.TrimSpace(line)) > 0 {
			if skip != "" {
				found[skip] += string(line)
				continue
			}
			out = append(out, line...)
			continue
		}
		skip = ""
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			for _, n := range names {
				if strings.EqualFold(string(bytes.TrimRight(line[:colon], " \t")), n) {
					skip = n
					found[n] += string(line[colon+1:])
					break
				}
			}
		}
		if skip == "" {
			out = append(out, line...)
		}
	}
	return out, found
}
