// Package spool holds one message between the source and the destination:
// in memory up to a bound, in a private temp file above it. While the bytes
// are written it applies the one change IMAP forces — a bare LF or a bare CR
// becomes CRLF (RFC 5322 §2.3: CR and LF occur only together, as CRLF) —
// counts each such change, notes NUL bytes (an IMAP literal cannot carry them, RFC 3501
// §9 "literal"), hashes what will be sent, and keeps the header section for
// the date, flag and Message-ID policies.
package spool

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// Options bounds a spool.
type Options struct {
	// MemoryBytes is how much of a message is kept in memory before it
	// spills to a temp file. Default 4 MiB.
	MemoryBytes int64
	// Dir is where temp files go; "" means os.TempDir().
	Dir string
	// HeaderBytes is how much of the message's start is kept for header
	// parsing. Default 64 KiB.
	HeaderBytes int
}

func (o *Options) withDefaults() Options {
	out := Options{}
	if o != nil {
		out = *o
	}
	if out.MemoryBytes <= 0 {
		out.MemoryBytes = 4 << 20
	}
	if out.HeaderBytes <= 0 {
		out.HeaderBytes = 64 << 10
	}
	return out
}

// Writer receives a message's bytes. It is not safe for concurrent use.
type Writer struct {
	opts   Options
	mem    bytes.Buffer
	file   *os.File
	size   int64
	hash   hash.Hash
	head   []byte
	prevCR bool // the last byte written was a CR whose fate depends on the next byte
	fixed  int
	nul    bool
	out    []byte // scratch for normalised chunks
	closed bool
}

// New starts an empty spool.
func New(opts *Options) *Writer {
	o := opts.withDefaults()
	return &Writer{opts: o, hash: sha256.New()}
}

// Expect tells the spool how big the message will probably be (the size the
// source announced), so that memory is allocated once instead of doubling
// its way up: that doubling was most of the allocations when moving large
// messages. Messages above MemoryBytes go to a file and need no buffer.
func (w *Writer) Expect(size int64) {
	if size <= 0 || size > w.opts.MemoryBytes || w.size > 0 {
		return
	}
	// A little room for line ends that become CRLF.
	w.mem.Grow(int(min(size+size/64+64, w.opts.MemoryBytes)))
}

// Write normalises line ends to CRLF and stores the result. Servers differ on
// bare CR and LF: Dovecot stores "\r\r\n" as "\r\n", Cyrus refuses the
// message. Sending only CRLF line ends is what makes the destination's copy
// identical to what was sent, so its digest can be checked after a crash.
// A CR goes out at once; the next byte, possibly in the next Write, shows
// whether an LF must be added after it.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("spool: write after Finish")
	}
	w.out = w.out[:0]
	start := 0 // p[start:i] is still to be copied out verbatim
	for i, b := range p {
		switch {
		case w.prevCR && b == '\n':
			// A proper CRLF: the held CR (already emitted) plus this LF.
		case w.prevCR:
			// The held CR was bare: complete it to CRLF before this byte.
			w.out = append(w.out, p[start:i]...)
			w.out = append(w.out, '\n')
			start = i
			w.fixed++
		case b == '\n':
			w.out = append(w.out, p[start:i]...)
			w.out = append(w.out, '\r')
			start = i
			w.fixed++
		}
		if b == 0 {
			w.nul = true
		}
		w.prevCR = b == '\r'
	}
	w.out = append(w.out, p[start:]...)
	if err := w.store(w.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *Writer) store(b []byte) error {
	if room := w.opts.HeaderBytes - len(w.head); room > 0 {
		w.head = append(w.head, b[:min(room, len(b))]...)
	}
	w.hash.Write(b)
	w.size += int64(len(b))
	if w.file == nil && int64(w.mem.Len()+len(b)) <= w.opts.MemoryBytes {
		w.mem.Write(b)
		return nil
	}
	if w.file == nil {
		f, err := createSpoolFile(w.opts.Dir)
		if err != nil {
			return err
		}
		w.file = f
		if _, err := f.Write(w.mem.Bytes()); err != nil {
			return fmt.Errorf("spool: writing temp file: %w", err)
		}
		w.mem = bytes.Buffer{}
	}
	if _, err := w.file.Write(b); err != nil {
		return fmt.Errorf("spool: writing temp file: %w", err)
	}
	return nil
}

// Finish ends writing and returns the spooled message. The Writer must not be
// used afterwards; the Message's Close releases its storage.
func (w *Writer) Finish() (*Message, error) {
	if w.prevCR { // a bare CR at the very end
		w.prevCR = false
		w.fixed++
		if err := w.store([]byte{'\n'}); err != nil {
			w.Discard()
			return nil, err
		}
	}
	w.closed = true
	m := &Message{
		size:     w.size,
		header:   w.head,
		fixed:    w.fixed,
		hasNUL:   w.nul,
		file:     w.file,
		inMemory: w.mem.Bytes(),
	}
	copy(m.digest[:], w.hash.Sum(nil))
	return m, nil
}

// Discard releases the storage of a spool that will not be finished.
func (w *Writer) Discard() {
	w.closed = true
	if w.file != nil {
		w.file.Close()
		w.file = nil
	}
	w.mem = bytes.Buffer{}
}

// Message is a spooled message, readable any number of times via ReadAt.
type Message struct {
	size     int64
	digest   [sha256.Size]byte
	header   []byte
	fixed    int
	hasNUL   bool
	file     *os.File
	inMemory []byte
}

// Size is the number of bytes that will be sent (after normalisation).
func (m *Message) Size() int64 { return m.size }

// Digest is the SHA-256 of the bytes that will be sent.
func (m *Message) Digest() [sha256.Size]byte { return m.digest }

// Header returns the start of the message (up to Options.HeaderBytes), enough
// for its header section in all but pathological cases.
func (m *Message) Header() []byte { return m.header }

// LineEndsFixed is how many bare LFs and bare CRs were turned into CRLF.
func (m *Message) LineEndsFixed() int { return m.fixed }

// HasNUL reports whether the message contains a NUL byte.
func (m *Message) HasNUL() bool { return m.hasNUL }

// ReadAt implements io.ReaderAt.
func (m *Message) ReadAt(p []byte, off int64) (int, error) {
	if m.file != nil {
		return m.file.ReadAt(p, off)
	}
	if off >= int64(len(m.inMemory)) {
		return 0, io.EOF
	}
	n := copy(p, m.inMemory[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// InMemoryBytes is how much memory the message holds (0 once spilled to disk).
func (m *Message) InMemoryBytes() int64 { return int64(len(m.inMemory)) }

// Close releases the message's storage.
func (m *Message) Close() error {
	m.inMemory = nil
	if m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// createSpoolFile opens a private (0600) file for one message's bytes that
// leaves nothing behind in dir when the run is killed: unnamed where the
// system allows (openUnnamed), else a named file removed at once with its
// open descriptor kept (a kill between the two leaves an empty file).
func createSpoolFile(dir string) (*os.File, error) {
	if f, ok := openUnnamed(dir); ok {
		return f, nil
	}
	f, err := os.CreateTemp(dir, "mailferry-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: creating temp file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: unlinking temp file: %w", err)
	}
	return f, nil
}
