package config

import (
	"strconv"
	"strings"
)

// keyPositions finds where each key of a TOML document is written.
// BurntSushi/toml v1.6.0 keeps key positions unexported (MetaData.keyInfo),
// so Load scans the text itself to name the line of an unknown key or a value
// of the wrong type. The result maps a path with array-of-tables indices,
// "account[1].source_user", to the key's position (Col) and its value's
// column (valCol). Keys inside inline tables are not recorded; lookups fall
// back to the nearest recorded parent. The scanner only runs on text the
// TOML parser accepted, and is lenient: on anything unexpected it skips to
// the next line.
type keyPos struct {
	line, col, valCol int
}

func keyPositions(doc string) map[string]keyPos {
	s := &keyScanner{src: doc, line: 1, out: map[string]keyPos{}, arrays: map[string]int{}}
	s.run()
	return s.out
}

type keyScanner struct {
	src    string
	i      int
	line   int
	bol    int    // byte offset of the current line's start
	table  string // indexed path of the current table
	out    map[string]keyPos
	arrays map[string]int // indexed path of an array of tables -> elements so far
}

func (s *keyScanner) col() int { return s.i - s.bol + 1 }

func (s *keyScanner) newline() {
	s.i++
	s.line++
	s.bol = s.i
}

func (s *keyScanner) skipBlank() {
	for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.i++
	}
}

func (s *keyScanner) skipLine() {
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		s.i++
	}
	if s.i < len(s.src) {
		s.newline()
	}
}

func (s *keyScanner) run() {
	for s.i < len(s.src) {
		s.skipBlank()
		if s.i >= len(s.src) {
			return
		}
		switch c := s.src[s.i]; {
		case c == '\n':
			s.newline()
		case c == '\r' || c == '#':
			s.skipLine()
		case c == '[':
			s.header()
			s.skipLine()
		default:
			s.keyValue()
		}
	}
}

// header handles [a.b] and [[a.b]].
func (s *keyScanner) header() {
	line, col := s.line, s.col()
	array := strings.HasPrefix(s.src[s.i:], "[[")
	if array {
		s.i += 2
	} else {
		s.i++
	}
	parts, ok := s.key()
	if !ok || len(parts) == 0 {
		return
	}
	prefix := s.resolve(parts[:len(parts)-1], "")
	path := join(prefix, parts[len(parts)-1])
	if array {
		n := s.arrays[path]
		s.arrays[path] = n + 1
		if _, seen := s.out[path]; !seen {
			s.out[path] = keyPos{line: line, col: col}
		}
		path += "[" + strconv.Itoa(n) + "]"
	}
	s.out[path] = keyPos{line: line, col: col}
	s.table = path
}

// resolve turns header parts into an indexed path: a part naming an array of
// tables refers to its last element.
func (s *keyScanner) resolve(parts []string, base string) string {
	p := base
	for _, part := range parts {
		p = join(p, part)
		if n, ok := s.arrays[p]; ok && n > 0 {
			p += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return p
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// keyValue handles `a.b = value` and records every dotted prefix.
func (s *keyScanner) keyValue() {
	line, col := s.line, s.col()
	parts, ok := s.key()
	if !ok || len(parts) == 0 || s.i >= len(s.src) || s.src[s.i] != '=' {
		s.skipLine()
		return
	}
	s.i++
	s.skipBlank()
	kp := keyPos{line: line, col: col, valCol: s.col()}
	p := s.table
	for _, part := range parts {
		p = join(p, part)
		if _, seen := s.out[p]; !seen {
			s.out[p] = kp
		}
	}
	s.out[p] = kp
	s.skipValue()
}

// key reads a dotted key of bare and quoted parts, then skips blanks.
func (s *keyScanner) key() ([]string, bool) {
	var parts []string
	for {
		s.skipBlank()
		if s.i >= len(s.src) {
			return nil, false
		}
		var part string
		switch c := s.src[s.i]; {
		case c == '"':
			end := s.i + 1
			for end < len(s.src) && s.src[end] != '"' && s.src[end] != '\n' {
				if s.src[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s.src) || s.src[end] != '"' {
				return nil, false
			}
			raw := s.src[s.i : end+1]
			if u, err := strconv.Unquote(raw); err == nil {
				part = u
			} else {
				part = raw[1 : len(raw)-1]
			}
			s.i = end + 1
		case c == '\'':
			end := strings.IndexAny(s.src[s.i+1:], "'\n")
			if end < 0 || s.src[s.i+1+end] != '\'' {
				return nil, false
			}
			part = s.src[s.i+1 : s.i+1+end]
			s.i += end + 2
		default:
			start := s.i
			for s.i < len(s.src) && isBareKeyChar(s.src[s.i]) {
				s.i++
			}
			if s.i == start {
				return nil, false
			}
			part = s.src[start:s.i]
		}
		parts = append(parts, part)
		s.skipBlank()
		if s.i < len(s.src) && s.src[s.i] == '.' {
			s.i++
			continue
		}
		return parts, true
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// skipValue skips a value, with nested arrays and inline tables, strings of
// all four kinds and comments inside multi-line arrays, up to the line's end.
func (s *keyScanner) skipValue() {
	depth := 0
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n':
			if depth == 0 {
				s.newline()
				return
			}
			s.newline()
		case c == '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		case c == '[' || c == '{':
			depth++
			s.i++
		case c == ']' || c == '}':
			depth--
			s.i++
		case strings.HasPrefix(s.src[s.i:], `"""`):
			s.skipString(`"""`, true)
		case strings.HasPrefix(s.src[s.i:], `'''`):
			s.skipString(`'''`, false)
		case c == '"':
			s.skipString(`"`, true)
		case c == '\'':
			s.skipString(`'`, false)
		default:
			s.i++
		}
	}
}

// skipString skips a string that starts at s.i with delim, counting newlines.
func (s *keyScanner) skipString(delim string, escapes bool) {
	s.i += len(delim)
	for s.i < len(s.src) {
		switch {
		case escapes && s.src[s.i] == '\\':
			s.i++
			if s.i < len(s.src) && s.src[s.i] == '\n' {
				s.newline()
			} else {
				s.i++
			}
		case strings.HasPrefix(s.src[s.i:], delim):
			s.i += len(delim)
			// A multi-line string may end with up to two extra quotes.
			for len(delim) == 3 && s.i < len(s.src) && s.src[s.i] == delim[0] {
				s.i++
			}
			return
		case s.src[s.i] == '\n':
			s.newline()
		default:
			s.i++
		}
	}
}
