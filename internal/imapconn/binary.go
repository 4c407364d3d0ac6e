package imapconn

import (
	"bytes"
	"io"
)

// Watch80 passes a message body through and notes a 0x80 byte that may
// be a NUL the server replaced (Suspect80): a server with BINARY (RFC
// 3516) may hold a message with NUL bytes, appended as a literal8, and
// serve it in BODY[] with each NUL replaced (Dovecot: 0x80), and exactly
// in BINARY[]. The sources and verify read such a message again as
// BINARY.PEEK[] when its BODY[] showed one.
type Watch80 struct {
	r       io.Reader
	prev    [3]byte // the last bytes read, the newest last
	suspect bool
}

// NewWatch80 watches r.
func NewWatch80(r io.Reader) *Watch80 { return &Watch80{r: r} }

// Reset makes w watch r afresh, as NewWatch80(r) would: a source reuses
// one Watch80 from one message to the next.
func (w *Watch80) Reset(r io.Reader) { *w = Watch80{r: r} }

// Suspect reports whether a suspect 0x80 passed.
func (w *Watch80) Suspect() bool { return w.suspect }

// Read reads from the watched reader.
func (w *Watch80) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 && !w.suspect {
		w.suspect = Suspect80(w.prev, p[:n])
		var t [6]byte // prev and up to 3 new bytes: the last 3 are the new prev
		copy(t[:], w.prev[:])
		k := copy(t[3:], p[max(0, n-3):n])
		copy(w.prev[:], t[k:k+3])
	}
	return n, err
}

// Suspect80 reports whether p, after the bytes prev, holds a 0x80 byte
// that cannot be the continuation of a UTF-8 character: one not preceded,
// within the character's length, by a lead byte (0xC2–0xF4) followed only
// by continuation bytes.
func Suspect80(prev [3]byte, p []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(p[off:], 0x80)
		if i < 0 {
			return false
		}
		i += off
		at := func(k int) byte { // byte k before i
			if i-k >= 0 {
				return p[i-k]
			}
			return prev[3-(k-i)]
		}
		ok := false
		for k := 1; k <= 3; k++ {
			if i-k < -3 {
				break
			}
			c := at(k)
			if c >= 0x80 && c <= 0xBF {
				continue // a continuation byte: look further back
			}
			length := 0
			switch {
			case c >= 0xC2 && c <= 0xDF:
				length = 2
			case c >= 0xE0 && c <= 0xEF:
				length = 3
			case c >= 0xF0 && c <= 0xF4:
				length = 4
			}
			ok = k < length
			break
		}
		if !ok {
			return true
		}
		off = i + 1
	}
}

// NULWriter passes bytes to W and notes in NUL whether a NUL byte passed:
// BINARY[] read again is the message's bytes only when it holds one.
type NULWriter struct {
	W   io.Writer
	NUL bool
}

func (w *NULWriter) Write(p []byte) (int, error) {
	if !w.NUL && bytes.IndexByte(p, 0) >= 0 {
		w.NUL = true
	}
	return w.W.Write(p)
}
