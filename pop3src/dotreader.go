package pop3src

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errBareLFTerminator is the protocol violation of a ".\n" at the start of a
// line inside a multi-line response.
var errBareLFTerminator = errors.New(`line ".<LF>" (a terminator with a bare LF, or an unstuffed data line)`)

// copyDotStuffed copies the body of a multi-line response (RFC 1939 §3) from
// r to w, undoing the byte-stuffing, and consumes the terminating ".CRLF".
// It returns the number of bytes written to w.
//
// The copy is byte-exact, so that a message arrives as the server stored it:
//
//   - Lines end at CRLF only. A bare LF or a bare CR is data inside a line, as
//     are 8-bit bytes and NUL.
//   - At the start of a line (the start of the body, or after CRLF), one
//     leading "." is removed; a line that is exactly ".CRLF" ends the body.
//     So "..CRLF" becomes ".CRLF" and "..x" becomes ".x".
//   - The CRLF before the terminator belongs to the message: a server adds one
//     when the message did not end in CRLF (RFC 1939 §3), which cannot be
//     undone here, and sends none for an empty message.
//   - Lines are read with ReadSlice and written piece by piece, so a line of
//     any length (a 50 MB single-line base64 part) passes unchanged and
//     memory stays at the size of r's buffer.
//   - ".LF" at the start of a line is a protocol violation, not a terminator:
//     a compliant server stuffs every line starting with ".", so this can only
//     be a broken terminator or an unstuffed data line, and guessing which
//     would either truncate a message or swallow the next reply. It is
//     reported as a *ProtocolError (with an empty Command; the caller fills
//     it in).
//
// If r ends before the terminator, copyDotStuffed returns
// io.ErrUnexpectedEOF (or r's error): never a short copy with a nil error.
// If w fails, copyDotStuffed keeps reading to the terminator, discarding, so
// the session stays in step, and then returns w's error wrapped in a
// *writerError.
func copyDotStuffed(w io.Writer, r *bufio.Reader) (int64, error) {
	var d dotCopier
	return d.copy(w, r)
}

// dotCopier is copyDotStuffed with a write buffer kept from one message to
// the next, so that a session allocates it once rather than per message.
// The zero value is ready to use; it is not safe for concurrent use.
type dotCopier struct {
	cw countingWriter
	bw *bufio.Writer // coalesces the line-sized pieces ReadSlice returns
}

// copy is copyDotStuffed(w, r), reusing d's buffer.
func (d *dotCopier) copy(w io.Writer, r *bufio.Reader) (int64, error) {
	d.cw = countingWriter{w: w}
	if d.bw == nil {
		d.bw = bufio.NewWriterSize(&d.cw, 32<<10)
	} else {
		d.bw.Reset(&d.cw)
	}
	// Forget w once done: the copier outlives the call.
	defer func() { d.cw.w = nil }()
	cw, bw := &d.cw, d.bw
	atLineStart := true // the next byte read starts a line
	prevCR := false     // the previous piece of this line ended in CR
	var werr error
	for {
		piece, rerr := r.ReadSlice('\n')
		if rerr != nil && !errors.Is(rerr, bufio.ErrBufferFull) {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			if werr == nil {
				werr = bw.Flush()
			}
			return cw.n, rerr
		}
		complete := rerr == nil // piece ends in '\n'
		data := piece
		if atLineStart && len(piece) > 0 && piece[0] == '.' {
			if complete {
				switch {
				case bytes.Equal(piece, []byte(".\r\n")):
					if werr == nil {
						werr = bw.Flush()
					}
					if werr != nil {
						return cw.n, &writerError{err: werr}
					}
					return cw.n, nil
				case bytes.Equal(piece, []byte(".\n")):
					if werr == nil {
						werr = bw.Flush()
					}
					return cw.n, &ProtocolError{Reason: errBareLFTerminator.Error()}
				}
			}
			data = piece[1:] // RFC 1939 §3: strip the stuffed termination octet
		}
		if werr == nil && len(data) > 0 {
			_, werr = bw.Write(data)
		}
		if complete {
			n := len(piece)
			atLineStart = (n >= 2 && piece[n-2] == '\r') || (n == 1 && prevCR)
			prevCR = false
		} else {
			atLineStart = false
			prevCR = piece[len(piece)-1] == '\r'
		}
	}
}

// writerError marks a failure of the caller's writer, as opposed to the
// connection: the session is still usable.
type writerError struct{ err error }

func (e *writerError) Error() string { return "writing message: " + e.err.Error() }
func (e *writerError) Unwrap() error { return e.err }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
