package imapdst

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// tracer writes protocol lines to a Trace writer: "C: " for what the client
// sends, "S: " for what the server sends. Credentials never reach it: the
// appender hands it redacted text, and message bodies only as a byte count.
// A nil *tracer traces nothing.
type tracer struct {
	mu   sync.Mutex
	w    io.Writer
	name string // connection name, e.g. "append"
	line strings.Builder
}

func newTracer(w io.Writer, name string) *tracer {
	if w == nil {
		return nil
	}
	return &tracer{w: w, name: name}
}

// client adds s to the client line being built.
func (t *tracer) client(s string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.line.WriteString(s)
	t.mu.Unlock()
}

// clientEnd ends the client line being built and writes it.
func (t *tracer) clientEnd() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.line.Len() == 0 {
		return
	}
	fmt.Fprintf(t.w, "%s C: %s\n", t.name, t.line.String())
	t.line.Reset()
}

// literal records a literal of n bytes the client sent.
func (t *tracer) literal(n int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s C: [%d bytes]\n", t.name, n)
}

// server records one server line.
func (t *tracer) server(line string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s S: %s\n", t.name, line)
}

// gateWriter forwards to w only while on: the control connection's raw
// go-imap debug stream is traced after authentication, never during it.
type gateWriter struct {
	mu sync.Mutex
	w  io.Writer
	on bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.on {
		_, _ = g.w.Write(p) // tracing never fails the protocol
	}
	return len(p), nil
}

func (g *gateWriter) set(on bool) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.on = on
	g.mu.Unlock()
}
