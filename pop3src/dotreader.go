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

// dotCopier is copyDotStuffed with its state kept from one message to
// the next. The zero value is ready to use; it is not safe for concurrent
// use.
//
// It writes what r holds buffered in runs, straight from r's buffer to w,
// up to the next line that starts with "." (rare in mail: base64 has no
// "." at all), found with one bytes.IndexByte pass: reading line by line
// with ReadSlice and gathering the lines in a write buffer cost a copy of
// every byte and two calls per line, most of POP3's CPU time after the
// hash on large messages.
type dotCopier struct {
	cw countingWriter
	bw *bufio.Writer // gathers runs shorter than smallRun (stuffed lines)
}

// smallRun is the longest run gathered in dotCopier's write buffer rather
// than written at once: a message whose every line starts with "." then
// costs its writer one write per 32 KB, not one per line.
const smallRun = 4 << 10

// copy is copyDotStuffed(w, r).
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
	prevCR := false     // the last byte read was a CR
	var werr error
	end := func() (int64, error) {
		if werr == nil {
			werr = bw.Flush()
		}
		if werr != nil {
			return cw.n, &writerError{err: werr}
		}
		return cw.n, nil
	}
	for {
		if atLineStart {
			// A line starting with "." whose first bytes are not all
			// buffered yet (or the body's first line).
			head, rerr := r.Peek(3)
			if len(head) > 0 && head[0] == '.' && len(head) < 3 {
				if len(head) == 2 && head[1] == '\n' {
					return cw.n, &ProtocolError{Reason: errBareLFTerminator.Error()}
				}
				return cw.n, unexpected(rerr)
			}
		}
		if _, rerr := r.Peek(1); rerr != nil {
			return cw.n, unexpected(rerr)
		}
		buf, _ := r.Peek(r.Buffered())
		i := 0 // buf[:i] is taken
		for i < len(buf) {
			if atLineStart && buf[i] == '.' {
				if len(buf)-i < 3 {
					break // the next round peeks at the line's start
				}
				switch {
				case buf[i+1] == '\r' && buf[i+2] == '\n':
					_, _ = r.Discard(i + 3)
					return end()
				case buf[i+1] == '\n':
					_, _ = r.Discard(i)
					return cw.n, &ProtocolError{Reason: errBareLFTerminator.Error()}
				}
				// RFC 1939 §3: strip the stuffed termination octet; the
				// rest of the line is data.
				i++
				atLineStart, prevCR = false, false
				continue
			}
			run := buf[i:]
			n := lineDot(run, prevCR)
			if n < 0 {
				n = len(run)
			}
			run = run[:n]
			switch {
			case werr != nil:
			case n < smallRun:
				_, werr = bw.Write(run)
			default:
				if werr = bw.Flush(); werr == nil {
					_, werr = cw.Write(run)
				}
			}
			atLineStart = (n >= 2 && run[n-2] == '\r' && run[n-1] == '\n') || (n == 1 && run[0] == '\n' && prevCR)
			prevCR = run[n-1] == '\r'
			i += n
		}
		_, _ = r.Discard(i)
	}
}

// lineDot returns the index of the first "." in p that starts a line
// (follows a CRLF; with prevCR, the CR before p), not counting p[0], or
// -1.
func lineDot(p []byte, prevCR bool) int {
	for i := 1; i < len(p); {
		k := bytes.IndexByte(p[i:], '.')
		if k < 0 {
			return -1
		}
		j := i + k
		if p[j-1] == '\n' && ((j >= 2 && p[j-2] == '\r') || (j == 1 && prevCR)) {
			return j
		}
		i = j + 1
	}
	return -1
}

// unexpected is a read error that ends a body before its terminator:
// io.EOF there is io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
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
