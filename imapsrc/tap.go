package imapsrc

import (
	"bytes"
	"fmt"
	"io"
	"sync"
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
	for _, c := range p {
		if c == '\n' {
			if l := bytes.TrimRight(t.line, "\r"); len(l) >= 5 && bytes.EqualFold(l[:5], []byte("* BYE")) {
				t.lastBye = string(l)
			}
			t.line = t.line[:0]
			continue
		}
		if len(t.line) < maxTapLine {
			t.line = append(t.line, c)
		}
	}
	if t.w != nil && t.on {
		t.writeTrace(p)
	}
	return len(p), nil
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

// annotate adds the server's last BYE to a transport error.
func (t *tap) annotate(err error) error {
	t.mu.Lock()
	bye := t.lastBye
	t.mu.Unlock()
	if bye == "" {
		return err
	}
	return fmt.Errorf("%w (server said %q)", err, bye)
}
