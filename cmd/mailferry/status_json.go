package main

import (
	"bytes"
	"encoding/json"
	"io"
)

// writeStatusJSON writes the status report as writeJSON does, byte for
// byte, but indents it without json.Indent's validating scanner: at
// 10,000 accounts that scanner was more than half of the report's
// encoding, about 50 ms of CPU (issue 18).
func writeStatusJSON(w io.Writer, rep statusReport) error {
	var compact bytes.Buffer
	enc := json.NewEncoder(&compact)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		return err
	}
	_, err := w.Write(indentJSON(make([]byte, 0, compact.Len()*2), compact.Bytes()))
	return err
}

// indentJSON appends src, JSON as encoding/json writes it (no white space
// outside strings but the final newline), to dst indented as
// json.Indent(dst, src, "", "  ") does: each element and member on its own
// line, two spaces a level, ": " after a name, empty objects and arrays
// kept as {} and [].
func indentJSON(dst, src []byte) []byte {
	depth := 0
	opened := false // the last byte opened an object or array
	newline := func() {
		dst = append(dst, '\n')
		for range depth {
			dst = append(dst, ' ', ' ')
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		empty := opened && (c == '}' || c == ']')
		if opened && !empty {
			newline()
		}
		opened = false
		switch c {
		case '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(src)-1)
			dst = append(dst, src[i:j+1]...)
			i = j
		case '{', '[':
			dst = append(dst, c)
			depth++
			opened = true
		case '}', ']':
			depth--
			if !empty {
				newline()
			}
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, ':', ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
