package main

import (
	"bytes"
	"io"
	"sync"
)

// traceWriter returns where protocol traces go: stderr with --trace, else
// nowhere. The protocol packages redact credentials before writing.
func traceWriter(o *commonOptions, e *env) io.Writer {
	if !o.trace {
		return nil
	}
	return &prefixWriter{w: e.stderr, prefix: []byte("trace: ")}
}

// prefixWriter writes each line with a prefix, whole lines at a time, so
// traces from several connections do not interleave mid-line.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, p.prefix...), p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
