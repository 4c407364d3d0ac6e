package imapsrc

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// tap is go-imap's DebugWriter. It sees every byte read and written, and
// forwards the conversation to Options.Trace while tracing is on: never
// during authentication (the credentials), never during a body fetch (the
// mail). (The server's BYE, which go-imap drops, is internal/imapconn's:
// Conn.Explain adds it to errors.)
type tap struct {
	mu  sync.Mutex
	w   io.Writer // nil: no trace
	on  bool
	mid bool // the trace is in the middle of a line
}

func newTap(trace io.Writer) *tap { return &tap{w: trace} }

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
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
