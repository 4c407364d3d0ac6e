package mapping

import (
	"bytes"
	"strings"
)

// Field is one header field as found in a message.
type Field struct {
	// Name is the field name as written ("Message-Id"), without the colon
	// and without obsolete whitespace before the colon (RFC 5322 §4.5.3).
	Name string
	// Value is the unfolded field body (RFC 5322 §2.2.3: every line break
	// that starts a continuation line is removed, the whitespace after it is
	// kept), with leading and trailing spaces and tabs trimmed. Bytes are
	// kept as found: 8-bit, NUL and stray CR bytes included.
	Value string
}

// crOnly reports whether b uses old-Mac line endings: bare CR and no LF at all.
// A message with any LF is read as LF or CRLF terminated; a stray CR inside
// such a line stays part of the line.
func crOnly(b []byte) bool {
	return bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') >= 0
}

// splitLine finds the line that starts at off. end is where its content ends
// (before CRLF, LF, or in cr mode CR) and next is where the next line starts.
// An unterminated last line has end == next == len(b).
func splitLine(b []byte, off int, cr bool) (end, next int) {
	sep := byte('\n')
	if cr {
		sep = '\r'
	}
	i := bytes.IndexByte(b[off:], sep)
	if i < 0 {
		return len(b), len(b)
	}
	end = off + i
	next = end + 1
	if !cr && end > off && b[end-1] == '\r' {
		end--
	}
	return end, next
}

// HeaderSection returns the header section of msg: every byte before the
// first empty line, including the line break that ends the last header line
// but not the empty line itself. Lines end in CRLF or bare LF; a message
// without any LF is read with bare CR line endings (old Mac mail). A message
// with no empty line (header only, or broken) is returned whole. The result
// aliases msg.
func HeaderSection(msg []byte) []byte {
	cr := crOnly(msg)
	for off := 0; off < len(msg); {
		end, next := splitLine(msg, off, cr)
		if end == off {
			return msg[:off]
		}
		off = next
	}
	return msg
}

// scanFields calls yield with each header field's name and raw (still folded)
// body, in order, until yield returns false. It stops at the first empty line,
// so it may be given a whole message. Lines that are not a field (no colon, a
// name that is not RFC 5322 ftext, such as an mbox "From " line) are skipped
// together with their continuation lines, as are continuation lines before the
// first field.
// cr tells unfold the line-ending mode (see crOnly) the header was read in.
func scanFields(header []byte, yield func(name, raw []byte, cr bool) bool) {
	cr := crOnly(header)
	var (
		name        []byte
		start, stop int
		have        bool
	)
	for off := 0; off < len(header); {
		end, next := splitLine(header, off, cr)
		line := header[off:end]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 §2.2.3: a line starting with WSP continues the field.
			if have {
				stop = end
			}
			off = next
			continue
		}
		if have {
			if !yield(name, header[start:stop], cr) {
				return
			}
			have = false
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			n := bytes.TrimRight(line[:colon], " \t")
			if validFieldName(n) {
				name, start, stop, have = n, off+colon+1, end, true
			}
		}
		off = next
	}
	if have {
		yield(name, header[start:stop], cr)
	}
}

// validFieldName reports whether n is an RFC 5322 §3.6.8 field-name:
// one or more printable US-ASCII characters other than colon.
func validFieldName(n []byte) bool {
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// unfold removes the line breaks from a raw field body (every line break in
// it starts a continuation line) and trims surrounding spaces and tabs. cr is
// the mode the header was read in: in LF mode a CR not before an LF is data.
func unfold(raw []byte, cr bool) string {
	var b []byte
	if cr {
		b = bytes.ReplaceAll(raw, []byte("\r"), nil)
	} else if bytes.IndexByte(raw, '\n') >= 0 {
		b = bytes.ReplaceAll(raw, []byte("\r\n"), nil)
		b = bytes.ReplaceAll(b, []byte("\n"), nil)
	} else {
		b = raw
	}
	return string(bytes.Trim(b, " \t"))
}

// Fields returns header's fields in the order they appear, each unfolded.
// header may be a header section or a whole message (scanning stops at the
// first empty line). Lines that are not fields are skipped.
func Fields(header []byte) []Field {
	var fs []Field
	scanFields(header, func(name, raw []byte, cr bool) bool {
		fs = append(fs, Field{Name: string(name), Value: unfold(raw, cr)})
		return true
	})
	return fs
}

// Values returns the unfolded bodies of every field called name (compared
// case-insensitively), in order; nil when there is none.
func Values(header []byte, name string) []string {
	var vs []string
	scanFields(header, func(n, raw []byte, cr bool) bool {
		if strings.EqualFold(string(n), name) {
			vs = append(vs, unfold(raw, cr))
		}
		return true
	})
	return vs
}

// MessageID returns the msg-id of header's first Message-ID field that has
// one, "" when there is none. The id is returned with its angle brackets
// ("<a@b>") and without the comments and whitespace around it or inside the
// brackets (RFC 5322 §3.6.4, with obs-id's CFWS). A field without angle
// brackets gives its first word ("a@b"); an unterminated "<" gives the rest
// of the field from the "<".
func MessageID(header []byte) string {
	var id string
	scanFields(header, func(n, raw []byte, cr bool) bool {
		if strings.EqualFold(string(n), "Message-ID") {
			id = msgID(unfold(raw, cr))
		}
		return id == ""
	})
	return id
}

// msgID extracts the msg-id from an unfolded Message-ID field body.
func msgID(v string) string {
	v = stripComments(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		rest := v[i:]
		if j := strings.IndexByte(rest, '>'); j >= 0 {
			rest = rest[:j+1]
		}
		if !strings.ContainsAny(rest, " \t\r\n") {
			// Nearly every msg-id: nothing to take out, nothing to copy
			// (this runs for every message fetched).
			if rest == "<>" {
				return ""
			}
			return rest
		}
		b := make([]byte, 0, len(rest))
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case ' ', '\t', '\r', '\n':
			default:
				b = append(b, rest[i])
			}
		}
		id := string(b)
		if id == "<>" {
			return ""
		}
		return id
	}
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

// stripComments replaces RFC 5322 §3.2.2 comments (nested parentheses with
// backslash quoted-pairs) outside quoted strings and angle brackets by a
// space. An unclosed comment runs to the end of s.
func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth := 0
	inQuote, inAngle := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case depth > 0:
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					b.WriteByte(' ')
				}
			}
		case inQuote:
			b.WriteByte(c)
			switch c {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				inQuote = false
			}
		case c == '(' && !inAngle:
			depth = 1
		default:
			switch c {
			case '"':
				inQuote = true
			case '<':
				inAngle = true
			case '>':
				inAngle = false
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}
