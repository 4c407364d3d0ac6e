package imapsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mailferry/mailferry/internal/imapconn"
)

// maxTapLine bounds how much of a line tap keeps to recognise a BYE.
const maxTapLine = 256

// tap is go-imap's DebugWriter. It sees every byte read and written, and:
//
//   - remembers the last untagged BYE line (RFC 3501 §7.1.5), whose text
//     go-imap beta.8 drops (a command then just fails with "unexpected
//     EOF"), so that errors can say why the server hung up;
//   - forwards the conversation to Options.Trace while tracing is on: never
//     during authentication (the credentials), never during a body fetch
//     (the mail).
//
// A line of a message body that starts with "* BYE" is taken for a BYE too;
// it only changes the text of an error on a connection that failed anyway.
type tap struct {
	mu      sync.Mutex
	w       io.Writer // nil: no trace
	on      bool
	line    []byte
	lastBye string
	mid     bool // the trace is in the middle of a line
}

func newTap(trace io.Writer) *tap { return &tap{w: trace} }

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.keep(rest)
			break
		}
		t.keep(rest[:i])
		if l := bytes.TrimRight(t.line, "\r"); isBye(l) {
			t.lastBye = string(l)
		}
		t.line = t.line[:0]
		rest = rest[i+1:]
	}
	if t.w != nil && t.on {
		t.writeTrace(p)
	}
	return len(p), nil
}

// keep adds a piece of the current line to t.line as far as a BYE needs
// it: the first five bytes of every line, the rest (up to maxTapLine) only
// of a line that starts with "* BYE". Message bodies pass through here,
// so it does not look at their bytes one by one.
func (t *tap) keep(piece []byte) {
	if n := min(len(piece), 5-len(t.line)); n > 0 {
		t.line = append(t.line, piece[:n]...)
		piece = piece[n:]
	}
	if len(piece) == 0 || !isBye(t.line) {
		return
	}
	t.line = append(t.line, piece[:min(len(piece), maxTapLine-len(t.line))]...)
}

// isBye reports whether line starts with "* BYE", in any case.
func isBye(line []byte) bool {
	return len(line) >= 5 && bytes.EqualFold(line[:5], []byte("* BYE"))
}

// writeTrace writes p with "imapsrc " at the start of each line. The
// caller holds t.mu. Tracing never fails the protocol.
func (t *tap) writeTrace(p []byte) {
	var b bytes.Buffer
	for _, c := range p {
		if !t.mid {
			b.WriteString("imapsrc ")
			t.mid = true
		}
		b.WriteByte(c)
		if c == '\n' {
			t.mid = false
		}
	}
	_, _ = t.w.Write(b.Bytes())
}

// trace turns forwarding to the trace on or off.
func (t *tap) trace(on bool) {
	t.mu.Lock()
	t.on = on
	t.mu.Unlock()
}

// note writes a line of our own to the trace (e.g. a redacted LOGIN),
// whether or not forwarding is on.
func (t *tap) note(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	if t.mid {
		_, _ = io.WriteString(t.w, "\n")
		t.mid = false
	}
	_, _ = fmt.Fprintf(t.w, "imapsrc %s\n", line)
}

// annotate adds the server's last BYE to a transport error, unless
// imapconn's watcher found it already (an *imapconn.ByeError in err).
func (t *tap) annotate(err error) error {
	t.mu.Lock()
	bye := t.lastBye
	t.mu.Unlock()
	var be *imapconn.ByeError
	if bye == "" || errors.As(err, &be) {
		return err
	}
	return fmt.Errorf("%w (server said %q)", err, bye)
}
