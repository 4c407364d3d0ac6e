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
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"os"
	"sync"
	"time"
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
	// Buffers, when set, lends the in-memory buffers and takes them back
	// when a Message is closed; nil allocates one per message.
	Buffers *Buffers
	// MaxBytes, when positive, is the most a message may hold (after line
	// end normalisation): the write that would pass it fails with an error
	// wrapping ErrTooBig, as does every later one and Finish, and nothing
	// past the bound is stored. A message never takes more memory or disk
	// than this, so
	// one message larger than the copy's size limit cannot fill the disk
	// however big it is or the source said it was. 0: no bound.
	MaxBytes int64
}

// ErrTooBig is wrapped by the Write (or Finish) that would make a message
// larger than Options.MaxBytes.
var ErrTooBig = errors.New("spool: message larger than the limit")

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
	mem    []byte // the message while it fits in MemoryBytes
	file   *os.File
	size   int64
	hash   hash.Hash
	head   []byte
	prevCR bool // the last byte written was a CR whose fate depends on the next byte
	fixed  int
	nul    bool
	closed bool
	err    error // sticky: the message passed MaxBytes

	// toFile: the message is bigger than MemoryBytes (Expect), so its
	// bytes go to the temp file from the first one.
	toFile bool
	// dirty: a ReadFrom chunk needed its line ends fixed, so the rest of
	// the message is read through scratch rather than in place.
	dirty   bool
	scratch []byte // ReadFrom's buffer where the bytes cannot go in place
	// extent is how many bytes file holds: a reused one (Buffers) may
	// hold more than this message, after its end.
	extent int64
}

// New starts an empty spool.
func New(opts *Options) *Writer {
	o := opts.withDefaults()
	return &Writer{opts: o, hash: sha256.New()}
}

// Expect tells the spool how big the message will probably be (the size the
// source announced), so that memory is allocated once instead of doubling
// its way up: that doubling was most of the allocations when moving large
// messages. Messages above MemoryBytes go to a file from their first byte:
// filling MemoryBytes first (append growing the buffer by a quarter at a
// time, copying it each time) and then writing it out cost 40 MB of
// allocations and 30 MB of copying per large message with 8 MB of spool
// memory.
func (w *Writer) Expect(size int64) {
	if size <= 0 || w.size > 0 {
		return
	}
	if size > w.opts.MemoryBytes {
		w.toFile = true
		return
	}
	// A little room for line ends that become CRLF.
	w.mem = w.opts.Buffers.get(int(min(size+size/64+64, w.opts.MemoryBytes)))
}

// Write normalises line ends to CRLF and stores the result. Servers differ on
// bare CR and LF: Dovecot stores "\r\r\n" as "\r\n", Cyrus refuses the
// message. Sending only CRLF line ends is what makes the destination's copy
// identical to what was sent, so its digest can be checked after a crash.
// A CR goes out at once; the next byte, possibly in the next Write, shows
// whether an LF must be added after it.
//
// The bytes are stored in runs between the line ends that need fixing, found
// with bytes.IndexByte, so a message that already has CRLF line ends (nearly
// all) is copied once, straight into the spool.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("spool: write after Finish")
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.nul && bytes.IndexByte(p, 0) >= 0 {
		w.nul = true
	}
	if clean(p, w.prevCR) {
		if err := w.store(p); err != nil {
			return 0, err
		}
		w.prevCR = p[len(p)-1] == '\r'
		return len(p), nil
	}
	start, i := 0, 0 // p[start:i] is still to be stored verbatim; p[i:] to be scanned
	if w.prevCR {
		// The CR ending the last Write is stored already.
		w.prevCR = false
		if p[0] == '\n' {
			i = 1
		} else if err := w.fix(lf); err != nil {
			return 0, err
		}
	}
	for i < len(p) {
		k := bytes.IndexByte(p[i:], '\n')
		end := len(p) // p[i:end] is the rest of the line, without its LF
		if k >= 0 {
			end = i + k
		}
		for {
			c := bytes.IndexByte(p[i:end], '\r')
			if c < 0 {
				break
			}
			c += i
			if c == end-1 {
				// Before the LF: a proper CRLF. At the end of p: held
				// until the next byte shows which.
				w.prevCR = k < 0
				break
			}
			// A bare CR (a byte other than LF follows): complete it.
			if err := w.store(p[start : c+1]); err != nil {
				return 0, err
			}
			if err := w.fix(lf); err != nil {
				return 0, err
			}
			start, i = c+1, c+1
		}
		if k < 0 {
			break
		}
		if end == 0 || p[end-1] != '\r' {
			// A bare LF (the CR before it, if any, was completed above or
			// belongs to the last Write, handled before the loop).
			if err := w.store(p[start:end]); err != nil {
				return 0, err
			}
			if err := w.fix(cr); err != nil {
				return 0, err
			}
			start = end
		}
		i = end + 1
	}
	if err := w.store(p[start:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

var cr, lf = []byte{'\r'}, []byte{'\n'}

// clean reports whether p (not empty) needs no line end fixed: every LF
// in it follows a CR (the one ending the last Write when p starts with
// the LF and prevCR says so), and every CR in it is followed by an LF or
// ends p (its fate then decided by the next byte). Nearly every message is
// clean, and this test is cheaper than the general loop: a walk over the
// LFs (crlfs) and counts of p's LFs and CRs, instead of a search for CRs
// in every line as well.
func clean(p []byte, prevCR bool) bool {
	if prevCR && p[0] != '\n' {
		return false // the last Write's CR is bare
	}
	found, pairs, ok := crlfs(p, prevCR, true)
	if ok && found != bytes.Count(p, lf) {
		// A guess skipped an LF: look at every line.
		found, pairs, ok = crlfs(p, prevCR, false)
	}
	if !ok {
		return false
	}
	if p[len(p)-1] == '\r' {
		pairs++ // held until the next byte shows which
	}
	// Each CR counted in pairs is a distinct one: any other is bare.
	return bytes.Count(p, cr) == pairs
}

// crlfs walks p's LFs, checking that each follows a CR: it returns how
// many LFs it found, how many of their CRs are in p (all but a first LF
// after prevCR), and false at the first bare LF. With guess, after each
// line it first looks where the next LF would be if the next line were as
// long: base64 parts, most of the bytes of mail, are lines of 76
// characters, so that is two byte comparisons instead of a search
// (IndexByte per line was most of the spool's time after the hash). A
// guess may skip an LF in a shorter line, which the caller tells by
// counting p's LFs.
func crlfs(p []byte, prevCR, guess bool) (found, pairs int, ok bool) {
	stride := 0
	for i := 0; ; {
		var j int
		if guess && stride > 0 && i+stride <= len(p) && p[i+stride-1] == '\n' {
			j = i + stride - 1
		} else {
			k := bytes.IndexByte(p[i:], '\n')
			if k < 0 {
				return found, pairs, true
			}
			j, stride = i+k, k+1
		}
		switch {
		case j > 0 && p[j-1] == '\r':
			pairs++
		case j == 0 && prevCR:
		default:
			return found, pairs, false // a bare LF
		}
		found++
		i = j + 1
	}
}

// ReadFrom reads r to its end into the message, exactly as Write would
// take the same bytes, but straight into the buffer Expect allocated
// while it has room: a message whose line ends need no change (nearly
// all) is then copied once, from the connection into the spool, and read
// with as few system calls as the buffer's room allows. Bytes that need a
// fix, and messages without room in memory (bigger than Expect said, or
// going to the temp file), are read through a buffer of the spool's and
// written as by Write. It returns how many bytes it read from r (before
// normalisation) and r's error other than io.EOF, or the spool's own
// (ErrTooBig, a temp file failure).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if w.closed {
			return total, errors.New("spool: write after Finish")
		}
		if w.err != nil {
			return total, w.err
		}
		var n int
		var rerr, werr error
		if room := w.room(); len(room) > 0 {
			n, rerr = r.Read(room)
			if n > 0 {
				werr = w.takeInPlace(n)
			}
		} else {
			if w.scratch == nil {
				w.scratch = make([]byte, scratchBytes)
			}
			n, rerr = r.Read(w.scratch)
			if n > 0 {
				_, werr = w.Write(w.scratch[:n])
			}
		}
		total += int64(n)
		switch {
		case werr != nil:
			return total, werr
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}

// scratchBytes is ReadFrom's buffer where bytes cannot be read in place:
// a read (and a temp file write) per 256 KB rather than per 32 KB.
const scratchBytes = 256 << 10

// room is the spare capacity of the memory buffer ReadFrom may read into:
// none once the message goes to a file or a chunk needed fixing, and
// never past MemoryBytes (a pooled buffer can be larger).
func (w *Writer) room() []byte {
	if w.file != nil || w.toFile || w.dirty {
		return nil
	}
	end := int64(cap(w.mem))
	if end > w.opts.MemoryBytes {
		end = w.opts.MemoryBytes
	}
	if int64(len(w.mem)) >= end {
		return nil
	}
	return w.mem[len(w.mem):end]
}

// takeInPlace takes the n bytes ReadFrom read into the buffer's spare
// capacity: as they are when they are clean, else as Write takes them,
// from a copy (Write appends to the buffer, over the bytes themselves).
func (w *Writer) takeInPlace(n int) error {
	l := len(w.mem)
	q := w.mem[l : l+n]
	if !w.nul && bytes.IndexByte(q, 0) >= 0 {
		w.nul = true
	}
	if !clean(q, w.prevCR) {
		w.dirty = true
		w.scratch = append(make([]byte, 0, max(n, scratchBytes)), q...)
		_, err := w.Write(w.scratch)
		w.scratch = w.scratch[:cap(w.scratch)]
		return err
	}
	if max := w.opts.MaxBytes; max > 0 && w.size+int64(n) > max {
		w.err = fmt.Errorf("%w: more than %d bytes", ErrTooBig, max)
		return w.err
	}
	w.hash.Write(q)
	w.size += int64(n)
	w.mem = w.mem[:l+n]
	w.prevCR = q[n-1] == '\r'
	return nil
}

// fix stores a byte added to complete a line end, and counts it.
func (w *Writer) fix(b []byte) error {
	w.fixed++
	return w.store(b)
}

// store adds b to the message: in memory while it fits, else in the temp
// file. The header copy (Options.HeaderBytes) is made only for messages that
// go to a file; in memory the message's start is the header.
func (w *Writer) store(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if max := w.opts.MaxBytes; max > 0 && w.size+int64(len(b)) > max {
		w.err = fmt.Errorf("%w: more than %d bytes", ErrTooBig, max)
		return w.err
	}
	w.hash.Write(b)
	w.size += int64(len(b))
	if w.file == nil && !w.toFile && int64(len(w.mem)+len(b)) <= w.opts.MemoryBytes {
		w.mem = append(w.mem, b...)
		return nil
	}
	if w.file == nil {
		f, extent, err := w.opts.Buffers.file(w.opts.Dir)
		if err != nil {
			return err
		}
		w.file, w.extent = f, extent
		if _, err := f.Write(w.mem); err != nil {
			return fmt.Errorf("spool: writing temp file: %w", err)
		}
		w.head = append([]byte(nil), w.mem[:min(w.opts.HeaderBytes, len(w.mem))]...)
		w.opts.Buffers.put(w.mem)
		w.mem = nil
	}
	if room := w.opts.HeaderBytes - len(w.head); room > 0 {
		w.head = append(w.head, b[:min(room, len(b))]...)
	}
	if _, err := w.file.Write(b); err != nil {
		return fmt.Errorf("spool: writing temp file: %w", err)
	}
	return nil
}

// Finish ends writing and returns the spooled message. The Writer must not be
// used afterwards; the Message's Close releases its storage.
func (w *Writer) Finish() (*Message, error) {
	if w.err != nil {
		w.Discard()
		return nil, w.err
	}
	if w.prevCR { // a bare CR at the very end
		w.prevCR = false
		w.fixed++
		if err := w.store(lf); err != nil {
			w.Discard()
			return nil, err
		}
	}
	w.closed = true
	head := w.head
	if w.file == nil {
		n := min(w.opts.HeaderBytes, len(w.mem))
		head = w.mem[:n:n]
	}
	m := &Message{
		buffers:  w.opts.Buffers,
		dir:      w.opts.Dir,
		extent:   max(w.extent, w.size),
		size:     w.size,
		header:   head,
		fixed:    w.fixed,
		hasNUL:   w.nul,
		file:     w.file,
		inMemory: w.mem,
	}
	w.hash.Sum(m.digest[:0]) // into the array: no allocation
	// The storage is the Message's now: a Discard after Finish must not
	// close or recycle it.
	w.mem, w.file = nil, nil
	return m, nil
}

// Discard releases the storage of a spool that will not be finished.
func (w *Writer) Discard() {
	w.closed = true
	if w.file != nil {
		w.file.Close()
		w.file = nil
	}
	w.opts.Buffers.put(w.mem)
	w.mem = nil
}

// Message is a spooled message, readable any number of times via ReadAt.
type Message struct {
	size     int64
	digest   [sha256.Size]byte
	header   []byte
	fixed    int
	hasNUL   bool
	file     *os.File
	dir      string // file's directory
	extent   int64  // the bytes file holds, this message's and maybe stale ones after it
	inMemory []byte
	buffers  *Buffers // where inMemory and file go back on Close
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
		// A reused file may hold another message's bytes after this one.
		if off >= m.size {
			return 0, io.EOF
		}
		if rest := m.size - off; int64(len(p)) > rest {
			n, err := m.file.ReadAt(p[:rest], off)
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
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

// CopyTo writes the whole message to w (unlike io.WriterTo, it keeps no
// read position: it can be called any number of times, as ReadAt): when
// it is in memory, as one Write of its own bytes, which a bufio.Writer
// passes to its connection mostly without copying them through its
// buffer; from a temp file, through w's SendFile when it has one that
// handles it (FileSender: the kernel sends the file's pages, which then
// pass through this process neither when read back nor when written),
// else in pieces of 256 KB.
func (m *Message) CopyTo(w io.Writer) (int64, error) {
	if m.file == nil {
		if int64(cap(m.inMemory)) < m.size {
			return 0, errors.New("spool: CopyTo after Close")
		}
		n, err := w.Write(m.inMemory[:m.size:m.size])
		return int64(n), err
	}
	if fs, ok := w.(FileSender); ok {
		// Only the message's bytes: a reused file may hold more after them.
		n, handled, err := fs.SendFile(m.file, 0, m.size)
		if handled {
			if err == nil && n != m.size {
				err = fmt.Errorf("spool: sent %d of the temp file's %d bytes", n, m.size)
			}
			return n, err
		}
	}
	buf := make([]byte, min(m.size, scratchBytes))
	var off int64
	for off < m.size {
		n, err := m.file.ReadAt(buf[:min(int64(len(buf)), m.size-off)], off)
		if n > 0 {
			k, werr := w.Write(buf[:n])
			off += int64(k)
			if werr != nil {
				return off, werr
			}
		}
		if err != nil && !(err == io.EOF && off == m.size) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return off, fmt.Errorf("spool: reading temp file: %w", err)
		}
	}
	return off, nil
}

// FileSender is a writer that can send a range of a file by itself,
// without the bytes passing through this process (sendfile(2) to a plain
// TCP connection): CopyTo hands it a message's temp file. SendFile writes
// n bytes of f from offset off, without using or moving f's position; it
// reports handled false, having written nothing, when it cannot (TLS,
// another system), and CopyTo then writes the bytes itself. Its error may
// be the file's or the writer's.
type FileSender interface {
	SendFile(f *os.File, off, n int64) (written int64, handled bool, err error)
}

// InMemoryBytes is how much memory the message holds: its buffer's
// capacity, which a reused buffer may have larger than the message (0 once
// spilled to disk).
func (m *Message) InMemoryBytes() int64 { return int64(cap(m.inMemory)) }

// Close releases the message's storage: its memory or its temp file goes
// back to its Buffers for the next message, so neither ReadAt nor a slice
// Header returned may be used afterwards (Header then returns nil).
func (m *Message) Close() error {
	if m.inMemory != nil {
		m.buffers.put(m.inMemory)
		m.inMemory = nil
	}
	m.header = nil
	if m.file == nil {
		return nil
	}
	f := m.file
	m.file = nil
	if m.buffers.keepFile(f, m.dir, m.extent) {
		return nil
	}
	return f.Close()
}

// Buffers caches message buffers by size class, so that spooling a small
// message reuses the memory of one already sent instead of faulting in
// fresh pages: allocating a new buffer per message was a tenth of
// mailferry's CPU time on small mail, nearly all of it in the kernel's
// page faults under the runtime's memclr. A buffer returns here when its
// Message is closed. Give one Buffers to all the spools of a command's
// accounts (Options.Buffers; account.Set makes one for all the accounts
// of a config, so that the accounts of a fleet, each of one batch, reuse
// each other's buffers); the zero value is ready, and it is safe for concurrent use (sync.Pool drops what two garbage collections find
// unused). Class k holds buffers of at least minPooled<<k bytes.
//
// Buffers above 1 MiB are kept too, in classes of whole MiB up to
// maxLarge (a power of two would waste up to half of them): allocating
// them anew was nearly all of mailferry's allocations on *mixed* (125 MB
// for its 57 messages of 1–4 MB), which set the pace of the garbage
// collector (10 collections, 5% of the CPU) and had the runtime zero each
// buffer before the socket's bytes overwrote it.
//
// It also keeps one spool file for the next message that does not fit in
// memory: writing a fresh temp file and closing it cost the kernel twice
// what overwriting one did (allocating, zeroing and freeing each page;
// BenchmarkSpoolLarge); the temp file was 7% of mailferry's CPU on
// *mixed*, whose four largest messages go there. It is closed when no message took it for
// idleFileTTL, and only a file of at most keptFileBytes is kept, so an
// account holds at most that much disk for that long after its last
// large message.
type Buffers struct {
	classes [pooledClasses]sync.Pool
	large   [largeClasses]sync.Pool // large[j] holds buffers of (j+2) MiB

	mu   sync.Mutex
	idle *idleFile // nil: none kept
	// ttl and keptMax replace idleFileTTL and keptFileBytes when
	// positive (tests).
	ttl     time.Duration
	keptMax int64
}

// idleFile is a spool file kept for the next message.
type idleFile struct {
	f      *os.File
	dir    string
	extent int64 // the bytes it holds, all stale
	timer  *time.Timer
}

const (
	idleFileTTL   = 10 * time.Second
	keptFileBytes = 64 << 20
)

// file returns a spool file in dir for a message, positioned at its
// start, and how many (stale) bytes it holds already: the kept one when
// there is one, else a new one (createSpoolFile).
func (p *Buffers) file(dir string) (*os.File, int64, error) {
	if p != nil {
		p.mu.Lock()
		idle := p.idle
		if idle != nil && idle.dir == dir && idle.timer.Stop() {
			p.idle = nil
		} else {
			idle = nil
		}
		p.mu.Unlock()
		if idle != nil {
			if _, err := idle.f.Seek(0, io.SeekStart); err == nil {
				return idle.f, idle.extent, nil
			}
			idle.f.Close()
		}
	}
	f, err := createSpoolFile(dir)
	return f, 0, err
}

// keepFile keeps f, a message's spool file in dir holding extent bytes,
// for the next message, and reports whether it did: not when one is kept
// already, nor when f holds more than keptFileBytes. The caller closes
// a file not kept.
func (p *Buffers) keepFile(f *os.File, dir string, extent int64) bool {
	if p == nil {
		return false
	}
	ttl, keptMax := cmp.Or(p.ttl, idleFileTTL), cmp.Or(p.keptMax, keptFileBytes)
	if extent > keptMax {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle != nil {
		return false
	}
	idle := &idleFile{f: f, dir: dir, extent: extent}
	idle.timer = time.AfterFunc(ttl, func() {
		p.mu.Lock()
		mine := p.idle == idle
		if mine {
			p.idle = nil
		}
		p.mu.Unlock()
		if mine {
			f.Close()
		}
	})
	p.idle = idle
	return true
}

const (
	minPooled     = 4 << 10
	pooledClasses = 9 // 4 KiB to 1 MiB; larger buffers are not kept
	maxPooled     = minPooled << (pooledClasses - 1)

	largeStep    = 1 << 20
	largeClasses = 15 // 2 MiB to 16 MiB; larger buffers are not kept
	maxLarge     = maxPooled + largeClasses*largeStep
)

// get returns an empty buffer with room for n bytes; a nil Buffers
// allocates a new one.
func (p *Buffers) get(n int) []byte {
	if p == nil || n > maxLarge {
		return make([]byte, 0, n)
	}
	if n > maxPooled {
		j := (n-1)/largeStep - 1 // smallest large class that holds n
		if b, ok := p.large[j].Get().(*[]byte); ok {
			return (*b)[:0]
		}
		return make([]byte, 0, (j+2)*largeStep)
	}
	k := 0
	if n > minPooled {
		k = bits.Len(uint(n-1)) - bits.Len(uint(minPooled-1)) // smallest class that holds n
	}
	if b, ok := p.classes[k].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, minPooled<<k)
}

// put gives b back for another message; nobody may use it after. A nil
// Buffers leaves b to the garbage collector.
func (p *Buffers) put(b []byte) {
	c := cap(b)
	if p == nil || c < minPooled || c > maxLarge {
		return
	}
	if c > maxPooled {
		if j := c/largeStep - 2; j >= 0 { // largest large class b fills
			b = b[:0]
			p.large[j].Put(&b)
		}
		return
	}
	k := bits.Len(uint(c)) - bits.Len(uint(minPooled)) // largest class b fills
	b = b[:0]
	p.classes[k].Put(&b)
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
