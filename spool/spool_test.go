package spool

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readAll(t *testing.T, m *Message) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(m, 0, m.Size()))
	if err != nil {
		t.Fatalf("reading spooled message: %v", err)
	}
	return b
}

func TestNormalisation(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
		fixed  int
		nul    bool
	}{
		{"crlf untouched", []string{"a\r\nb\r\n"}, "a\r\nb\r\n", 0, false},
		{"bare lf", []string{"a\nb\n"}, "a\r\nb\r\n", 2, false},
		{"mixed", []string{"a\r\nb\nc"}, "a\r\nb\r\nc", 1, false},
		{"cr split from lf across writes", []string{"a\r", "\nb"}, "a\r\nb", 0, false},
		{"lf at start of second write", []string{"a", "\nb"}, "a\r\nb", 1, false},
		{"bare cr completed", []string{"a\rb\r\n"}, "a\r\nb\r\n", 1, false},
		{"cr run before lf", []string{"a\r\r\n"}, "a\r\n\r\n", 1, false},
		{"cr-only lines", []string{"a\rb\rc"}, "a\r\nb\r\nc", 2, false},
		{"cr at end", []string{"a\r"}, "a\r\n", 1, false},
		{"cr at chunk end, bare", []string{"a\r", "b"}, "a\r\nb", 1, false},
		{"nul noted, kept", []string{"a\x00b\r\n"}, "a\x00b\r\n", 0, true},
		// After a 6-byte line, the next LF is looked for 6 bytes on: there
		// is one, and a shorter line's LF before it.
		{"guessed line end skips a short line", []string{"abcd\r\na\r\nb\r\n"}, "abcd\r\na\r\nb\r\n", 0, false},
		{"guessed line end skips a bare lf", []string{"abcd\r\na\nbc\r\n"}, "abcd\r\na\r\nbc\r\n", 1, false},
		{"lines of one length", []string{strings.Repeat("0123456789\r\n", 50)}, strings.Repeat("0123456789\r\n", 50), 0, false},
		{"lines of one length, then a bare cr", []string{strings.Repeat("0123456789\r\n", 5) + "01234567\r9"}, strings.Repeat("0123456789\r\n", 5) + "01234567\r\n9", 1, false},
		{"8-bit kept", []string{"\xff\xfe\n"}, "\xff\xfe\r\n", 1, false},
		{"empty", nil, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := New(nil)
			for _, c := range tc.chunks {
				if _, err := w.Write([]byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			m, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := string(readAll(t, m)); got != tc.want {
				t.Errorf("spooled %q = %q, want %q", tc.chunks, got, tc.want)
			}
			if m.Size() != int64(len(tc.want)) {
				t.Errorf("Size() = %d, want %d", m.Size(), len(tc.want))
			}
			if m.LineEndsFixed() != tc.fixed {
				t.Errorf("LineEndsFixed() = %d, want %d", m.LineEndsFixed(), tc.fixed)
			}
			if m.HasNUL() != tc.nul {
				t.Errorf("HasNUL() = %v, want %v", m.HasNUL(), tc.nul)
			}
			if m.Digest() != sha256.Sum256([]byte(tc.want)) {
				t.Error("Digest() is not the SHA-256 of the bytes to send")
			}
		})
	}
}

func TestSpillsToPrivateTempFile(t *testing.T) {
	dir := t.TempDir()
	w := New(&Options{MemoryBytes: 1024, Dir: dir, HeaderBytes: 16})
	body := strings.Repeat("0123456789abcdef\r\n", 1000)
	for i := 0; i < len(body); i += 700 {
		w.Write([]byte(body[i:min(i+700, len(body))]))
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if m.InMemoryBytes() != 0 {
		t.Errorf("InMemoryBytes() = %d after spilling, want 0", m.InMemoryBytes())
	}
	// The spill file is unlinked as soon as it is created: nothing is left
	// behind even if the process is killed; the open descriptor is private.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("temp dir holds %v, want nothing (the spill file is unlinked)", entries)
	}
	if m.file == nil {
		t.Fatal("the message did not spill to a file")
	}
	info, err := m.file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("spool file mode = %o, want 600", perm)
	}
	if got := readAll(t, m); !bytes.Equal(got, []byte(body)) {
		t.Error("spilled message differs from what was written")
	}
	if string(m.Header()) != body[:16] {
		t.Errorf("Header() = %q, want %q", m.Header(), body[:16])
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temp file left behind after Close: %v", entries)
	}
}

func TestDiscardRemovesTempFile(t *testing.T) {
	dir := t.TempDir()
	w := New(&Options{MemoryBytes: 4, Dir: dir})
	w.Write([]byte("more than four bytes"))
	w.Discard()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temp file left behind after Discard: %v", entries)
	}
}

// FuzzNormalise checks that whatever the input and however it is split,
// the output has no bare LF, differs from the input only by inserted CRs,
// and counts each insertion.
func FuzzNormalise(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd\n"), uint8(3))
	f.Add([]byte("\n\n\r\r\n"), uint8(1))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		w := New(&Options{MemoryBytes: 8})
		defer w.Discard()
		step := int(split)%7 + 1
		for i := 0; i < len(in); i += step {
			w.Write(in[i:min(i+step, len(in))])
		}
		m, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		out := readAll(t, m)
		if int64(len(out)) != m.Size() || len(out) != len(in)+m.LineEndsFixed() {
			t.Fatalf("len(out)=%d Size=%d len(in)=%d fixed=%d", len(out), m.Size(), len(in), m.LineEndsFixed())
		}
		// The reference, written differently: every CRLF, bare CR and bare
		// LF is one line end.
		want := bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n"))
		want = bytes.ReplaceAll(want, []byte("\r"), []byte("\n"))
		want = bytes.ReplaceAll(want, []byte("\n"), []byte("\r\n"))
		if !bytes.Equal(out, want) {
			t.Fatalf("normalise(%q) split by %d = %q, want %q", in, step, out, want)
		}
	})
}

func TestExpectAllocatesOnce(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 50_000) // 900 KB
	allocs := func(expect bool) float64 {
		return testing.AllocsPerRun(5, func() {
			w := New(&Options{MemoryBytes: 4 << 20})
			if expect {
				w.Expect(int64(len(body)))
			}
			for i := 0; i < len(body); i += 32 << 10 {
				w.Write(body[i:min(i+32<<10, len(body))])
			}
			m, _ := w.Finish()
			m.Close()
		})
	}
	with, without := allocs(true), allocs(false)
	if with >= without {
		t.Errorf("allocations with Expect %.0f, without %.0f: Expect should save the buffer regrowth", with, without)
	}
}

// TestHeader checks Header in memory and after spilling: the message's
// first HeaderBytes bytes, as sent (normalised).
func TestHeader(t *testing.T) {
	body := "Subject: x\nFrom: a@b\n\nbody line\n"
	want := strings.ReplaceAll(body, "\n", "\r\n")
	tests := []struct {
		name        string
		memoryBytes int64
		headerBytes int
		want        string
	}{
		{name: "in memory, whole message", memoryBytes: 1 << 20, headerBytes: 1 << 10, want: want},
		{name: "in memory, bounded", memoryBytes: 1 << 20, headerBytes: 12, want: want[:12]},
		{name: "spilled before the header ended", memoryBytes: 5, headerBytes: 1 << 10, want: want},
		{name: "spilled after the header bound", memoryBytes: 20, headerBytes: 12, want: want[:12]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := New(&Options{MemoryBytes: tc.memoryBytes, HeaderBytes: tc.headerBytes, Dir: t.TempDir()})
			for i := 0; i < len(body); i += 3 {
				if _, err := w.Write([]byte(body[i:min(i+3, len(body))])); err != nil {
					t.Fatal(err)
				}
			}
			m, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := string(m.Header()); got != tc.want {
				t.Errorf("Header() = %q, want %q", got, tc.want)
			}
			if got := string(readAll(t, m)); got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
		})
	}
}

// TestWriteCopiesOnce: a message with CRLF line ends, which needs no fix,
// costs no allocation beyond the spool's own buffer (Expect) and hash.
func TestWriteCopiesOnce(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 600) // 10.8 KB
	pool := &Buffers{}                                        // as the command shares one among all spools
	allocs := testing.AllocsPerRun(20, func() {
		w := New(&Options{MemoryBytes: 1 << 20, Buffers: pool})
		w.Expect(int64(len(body)))
		for i := 0; i < len(body); i += 4 << 10 {
			w.Write(body[i:min(i+4<<10, len(body))])
		}
		m, _ := w.Finish()
		m.Close()
	})
	// The Writer, its hash, the buffer, the Message.
	if allocs > 5 {
		t.Errorf("spooling a CRLF message allocates %.0f times, want at most 5", allocs)
	}
}

func TestBufferClasses(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantCap int
	}{
		{name: "tiny", n: 10, wantCap: 4 << 10},
		{name: "exactly a class", n: 8 << 10, wantCap: 8 << 10},
		{name: "just above a class", n: 8<<10 + 1, wantCap: 16 << 10},
		{name: "largest class of powers of two", n: 1 << 20, wantCap: 1 << 20},
		{name: "just above 1 MiB: the 2 MiB class", n: 1<<20 + 1, wantCap: 2 << 20},
		{name: "a whole MiB", n: 3 << 20, wantCap: 3 << 20},
		{name: "largest pooled", n: 16 << 20, wantCap: 16 << 20},
		{name: "above the pooled sizes", n: 16<<20 + 1, wantCap: 16<<20 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Buffers{}
			b := p.get(tc.n)
			if len(b) != 0 || cap(b) < tc.n {
				t.Fatalf("get(%d): len %d cap %d, want empty with room for %d", tc.n, len(b), cap(b), tc.n)
			}
			if cap(b) < tc.wantCap {
				t.Errorf("get(%d) cap %d, want at least %d", tc.n, cap(b), tc.wantCap)
			}
			p.put(b)
			// Without Buffers a buffer is just allocated, and put drops it.
			var none *Buffers
			if b := none.get(tc.n); len(b) != 0 || cap(b) < tc.n {
				t.Errorf("nil get(%d): len %d cap %d", tc.n, len(b), cap(b))
			}
			none.put(b)
		})
	}
}

// TestClosedMessageBufferReused: once a message is closed its memory may
// hold the next message, and the closed one reads as empty.
func TestClosedMessageBufferReused(t *testing.T) {
	pool := &Buffers{}
	spoolOne := func(body string) *Message {
		t.Helper()
		w := New(&Options{MemoryBytes: 1 << 20, Buffers: pool})
		w.Expect(int64(len(body)))
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		m, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := spoolOne(strings.Repeat("a\r\n", 2000))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := spoolOne(strings.Repeat("b\r\n", 2000))
	defer b.Close()
	if got := string(readAll(t, b)); got != strings.Repeat("b\r\n", 2000) {
		t.Errorf("second message reads %.20q…, want its own bytes", got)
	}
	if n, err := a.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Errorf("closed message ReadAt = %d, %v; want 0, EOF", n, err)
	}
	if a.Header() != nil {
		t.Errorf("closed message Header() = %q, want nil", a.Header())
	}
}

// TestInMemoryBytesCountsTheBuffer: the memory a message holds is its
// buffer's capacity, so the pipeline's byte budget bounds real memory.
func TestInMemoryBytesCountsTheBuffer(t *testing.T) {
	w := New(&Options{MemoryBytes: 1 << 20})
	w.Expect(5000)
	w.Write(bytes.Repeat([]byte("x"), 5000))
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.InMemoryBytes(); got < m.Size() || got != int64(cap(m.inMemory)) {
		t.Errorf("InMemoryBytes() = %d for a %d-byte message in a %d-byte buffer", got, m.Size(), cap(m.inMemory))
	}
}

// TestDiscardAfterFinishKeepsMessage: the storage belongs to the Message
// once Finish returns.
func TestDiscardAfterFinishKeepsMessage(t *testing.T) {
	for _, mem := range []int64{1 << 20, 4} { // in memory, in a temp file
		w := New(&Options{MemoryBytes: mem, Dir: t.TempDir(), Buffers: &Buffers{}})
		w.Expect(100)
		w.Write([]byte("hello\r\n"))
		m, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		w.Discard()
		if got := string(readAll(t, m)); got != "hello\r\n" {
			t.Errorf("MemoryBytes %d: message after Discard = %q, want %q", mem, got, "hello\r\n")
		}
		m.Close()
	}
}

// TestMaxBytes: a message may hold exactly MaxBytes (counted after line
// ends are normalised); the write that would pass it fails with ErrTooBig,
// so do the later ones and Finish, and the temp file never grows past it.
func TestMaxBytes(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		max    int64
		tooBig bool
	}{
		{"exactly at the limit", []string{"0123456789"}, 10, false},
		{"one over", []string{"0123456789", "a"}, 10, true},
		{"normalisation counts", []string{"abcdefgh\n"}, 9, true},
		{"normalised fits", []string{"abcdefg\n"}, 9, false},
		{"bare CR at the end counts", []string{"abcdefghi\r"}, 10, true},
		{"no bound", []string{strings.Repeat("x", 5000)}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := New(&Options{MaxBytes: tt.max})
			var werr error
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					werr = err
					break
				}
			}
			m, err := w.Finish()
			if werr != nil {
				err = werr
			}
			if tt.tooBig != errors.Is(err, ErrTooBig) {
				t.Fatalf("writes %q with MaxBytes %d: error %v, want too big: %v", tt.writes, tt.max, err, tt.tooBig)
			}
			if !tt.tooBig {
				if m.Size() > tt.max && tt.max > 0 {
					t.Errorf("Size() = %d over MaxBytes %d", m.Size(), tt.max)
				}
				m.Close()
			}
		})
	}

	// A large message that lies about its size: the spill file stops at
	// the bound, and every later write fails at once.
	dir := t.TempDir()
	w := New(&Options{MemoryBytes: 1024, Dir: dir, MaxBytes: 64 << 10})
	w.Expect(100)
	chunk := []byte(strings.Repeat("0123456789abcde\n", 1024)) // 16 KiB, 17 KiB normalised
	var written int
	for range 100 {
		if _, err := w.Write(chunk); err != nil {
			if !errors.Is(err, ErrTooBig) {
				t.Fatalf("Write: %v, want ErrTooBig", err)
			}
			break
		}
		written++
	}
	if written != 3 || w.file == nil {
		t.Fatalf("%d writes of 17 KiB accepted under a 64 KiB bound (file %v), want 3", written, w.file)
	}
	if info, err := w.file.Stat(); err != nil || info.Size() > 64<<10 {
		t.Errorf("spill file holds %d bytes (%v), want at most 64 KiB", info.Size(), err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrTooBig) {
		t.Errorf("a write after the bound = %v, want ErrTooBig", err)
	}
	if _, err := w.Finish(); !errors.Is(err, ErrTooBig) {
		t.Errorf("Finish = %v, want ErrTooBig", err)
	}
}

// chunkReader returns its bytes step at a time, as a connection does.
type chunkReader struct {
	p    []byte
	step int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(c.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.step)], c.p)
	c.p = c.p[n:]
	return n, nil
}

// FuzzReadFrom: ReadFrom takes a message exactly as Write does, whatever
// the chunks the reader returns, whether the bytes fit in the buffer
// Expect made (read in place), overflow it, or go to a temp file, and
// whether or not they need line ends fixed.
func FuzzReadFrom(f *testing.F) {
	f.Add([]byte("a\r\nb\r\nc\r\n"), uint8(3), uint8(0), int64(100))
	f.Add([]byte("a\nb\r\nc\rd\n"), uint8(3), uint8(1), int64(4))
	f.Add([]byte("\r\n\r\n\r\r\n\x00\n"), uint8(1), uint8(2), int64(0))
	f.Add([]byte("abc\r"), uint8(2), uint8(0), int64(3))
	f.Fuzz(func(t *testing.T, in []byte, split, mode uint8, expect int64) {
		step := int(split)%7 + 1
		mem := []int64{1 << 20, 16, 1}[int(mode)%3] // in memory; may spill; spills
		opts := &Options{MemoryBytes: mem, Dir: t.TempDir(), Buffers: &Buffers{}}
		ref := New(opts)
		for i := 0; i < len(in); i += step {
			ref.Write(in[i:min(i+step, len(in))])
		}
		want, err := ref.Finish()
		if err != nil {
			t.Fatal(err)
		}
		defer want.Close()
		w := New(opts)
		w.Expect(expect)
		n, err := w.ReadFrom(&chunkReader{p: in, step: step})
		if err != nil || n != int64(len(in)) {
			t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, len(in))
		}
		got, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		if !bytes.Equal(readAll(t, got), readAll(t, want)) || got.Digest() != want.Digest() ||
			got.LineEndsFixed() != want.LineEndsFixed() || got.HasNUL() != want.HasNUL() ||
			!bytes.Equal(got.Header(), want.Header()) {
			t.Fatalf("ReadFrom(%q) by %d (memory %d, expect %d) = %q (fixed %d, NUL %v), Write gives %q (fixed %d, NUL %v)",
				in, step, mem, expect, readAll(t, got), got.LineEndsFixed(), got.HasNUL(),
				readAll(t, want), want.LineEndsFixed(), want.HasNUL())
		}
	})
}

// TestReadFromInPlace: a clean message read with ReadFrom after Expect
// lands in the spool's own buffer with one read per chunk and no other
// allocation than Write's (the Writer, its hash, the buffer, the Message).
func TestReadFromInPlace(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 10_000) // 180 KB
	pool := &Buffers{}
	r := &chunkReader{step: 64 << 10}
	allocs := testing.AllocsPerRun(20, func() {
		w := New(&Options{MemoryBytes: 1 << 20, Buffers: pool})
		w.Expect(int64(len(body)))
		r.p = body
		w.ReadFrom(r)
		m, _ := w.Finish()
		m.Close()
	})
	if allocs > 5 {
		t.Errorf("ReadFrom of a clean message allocates %.0f times, want at most 5", allocs)
	}
	w := New(&Options{MemoryBytes: 1 << 20})
	w.Expect(int64(len(body)))
	if _, err := w.ReadFrom(&chunkReader{p: body, step: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if w.scratch != nil {
		t.Error("a clean message that fits was read through the scratch buffer, not in place")
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !bytes.Equal(readAll(t, m), body) || m.Digest() != sha256.Sum256(body) {
		t.Error("the message read in place differs from its bytes")
	}
}

// TestReadFromMaxBytes: ReadFrom stops at MaxBytes like Write, in place
// too, keeping nothing past the bound.
func TestReadFromMaxBytes(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcde\n"), 1024) // 16 KiB, 17 KiB normalised
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"clean, in place", bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))},
		{"bare LFs", body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := New(&Options{MemoryBytes: 1 << 20, MaxBytes: 10 << 10})
			w.Expect(5 << 10) // the source said less than it sends
			if _, err := w.ReadFrom(&chunkReader{p: tc.in, step: 4 << 10}); !errors.Is(err, ErrTooBig) {
				t.Fatalf("ReadFrom = %v, want ErrTooBig", err)
			}
			if w.size > 10<<10 || len(w.mem) > 10<<10 {
				t.Errorf("%d bytes kept (%d in memory) under a 10 KiB bound", w.size, len(w.mem))
			}
			if _, err := w.Finish(); !errors.Is(err, ErrTooBig) {
				t.Errorf("Finish = %v, want ErrTooBig", err)
			}
		})
	}
}

// TestExpectLargeGoesToFile: a message announced bigger than MemoryBytes
// goes to the temp file from its first byte; no memory buffer grows first.
func TestExpectLargeGoesToFile(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000) // 18 KB
	w := New(&Options{MemoryBytes: 4 << 10, Dir: t.TempDir(), HeaderBytes: 100})
	w.Expect(int64(len(body)))
	if _, err := w.Write(body[:10]); err != nil {
		t.Fatal(err)
	}
	if w.file == nil || len(w.mem) != 0 || cap(w.mem) != 0 {
		t.Fatalf("after the first write: file %v, memory %d of %d; want the file and no memory", w.file, len(w.mem), cap(w.mem))
	}
	if _, err := w.Write(body[10:]); err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !bytes.Equal(readAll(t, m), body) || !bytes.Equal(m.Header(), body[:100]) || m.InMemoryBytes() != 0 {
		t.Errorf("message from the file differs (header %q, %d bytes in memory)", m.Header(), m.InMemoryBytes())
	}
}

// BenchmarkSpool measures spooling a 1 MB base64 message with CRLF line
// ends (the bulk of real mail by bytes): Write in 32 KB chunks, as a copy
// loop does, and ReadFrom, as the IMAP source does.
func BenchmarkSpool(b *testing.B) {
	var body []byte
	for len(body) < 1<<20 {
		body = append(body, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"...)
	}
	pool := &Buffers{}
	for _, tc := range []struct {
		name string
		read bool
	}{{"Write", false}, {"ReadFrom", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				w := New(&Options{MemoryBytes: 8 << 20, Buffers: pool})
				w.Expect(int64(len(body)))
				if tc.read {
					w.ReadFrom(&chunkReader{p: body, step: 64 << 10})
				} else {
					for i := 0; i < len(body); i += 32 << 10 {
						w.Write(body[i:min(i+32<<10, len(body))])
					}
				}
				m, _ := w.Finish()
				m.Close()
			}
		})
	}
}

// TestCopyTo: CopyTo writes the whole message each time it is called, from
// memory or from the temp file, and fails after Close.
func TestCopyTo(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20_000) // 360 KB
	for _, mem := range []int64{1 << 20, 4 << 10} {
		w := New(&Options{MemoryBytes: mem, Dir: t.TempDir()})
		w.Expect(int64(len(body)))
		w.Write(body)
		m, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			var out bytes.Buffer
			if n, err := m.CopyTo(&out); err != nil || n != int64(len(body)) || !bytes.Equal(out.Bytes(), body) {
				t.Errorf("MemoryBytes %d: CopyTo = %d, %v; want the %d bytes", mem, n, err, len(body))
			}
		}
		m.Close()
		if _, err := m.CopyTo(io.Discard); err == nil {
			t.Errorf("MemoryBytes %d: CopyTo after Close succeeded", mem)
		}
	}
}

// spillMessage spools body through p with 4 KB of memory, so that it
// goes to a temp file in dir.
func spillMessage(t testing.TB, p *Buffers, dir string, body []byte) *Message {
	t.Helper()
	m := spoolChunked(t, &Options{MemoryBytes: 4 << 10, Dir: dir, Buffers: p}, body)
	if m.file == nil {
		t.Fatal("the message did not go to a temp file")
	}
	return m
}

// spoolChunked spools body, its size expected, through a new spool of
// opts, read in 64 KiB chunks.
func spoolChunked(t testing.TB, opts *Options, body []byte) *Message {
	t.Helper()
	w := New(opts)
	w.Expect(int64(len(body)))
	if _, err := w.ReadFrom(&chunkReader{p: body, step: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantMessage checks that m reads back as exactly body: through ReadAt
// (also across its end, where a reused file holds older bytes) and
// CopyTo, with body's digest.
func wantMessage(t *testing.T, m *Message, body []byte) {
	t.Helper()
	if got := readAll(t, m); !bytes.Equal(got, body) {
		t.Errorf("read back %d bytes, want the %d written", len(got), len(body))
	}
	var out bytes.Buffer
	if n, err := m.CopyTo(&out); err != nil || n != int64(len(body)) || !bytes.Equal(out.Bytes(), body) {
		t.Errorf("CopyTo = %d, %v; want the %d bytes", n, err, len(body))
	}
	tail := make([]byte, 100)
	n, err := m.ReadAt(tail, m.Size()-10)
	if n != 10 || err != io.EOF || !bytes.Equal(tail[:n], body[len(body)-10:]) {
		t.Errorf("ReadAt across the end = %d, %v; want the last 10 bytes and io.EOF", n, err)
	}
	if n, err := m.ReadAt(tail, m.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if m.Digest() != sha256.Sum256(body) {
		t.Error("Digest() is not the SHA-256 of the bytes written")
	}
}

// TestTempFileReused: a closed message's temp file is the next spilled
// message's (one kept per Buffers, in the same directory), and a shorter
// message in it reads back as itself, not with the older bytes after it.
func TestTempFileReused(t *testing.T) {
	dir := t.TempDir()
	p := &Buffers{}
	long := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20_000) // 360 KB
	short := bytes.Repeat([]byte("ABCDEFGHIJ\r\n"), 10_000)      // 120 KB
	a := spillMessage(t, p, dir, long)
	wantMessage(t, a, long)
	f := a.file
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := spillMessage(t, p, dir, short)
	if b.file != f {
		t.Fatal("the second message did not reuse the first one's temp file")
	}
	wantMessage(t, b, short)
	// Another message while b holds the kept file gets a new one; of the
	// two closed, one is kept and the other closed.
	c := spillMessage(t, p, dir, long)
	if c.file == f {
		t.Fatal("two messages share a temp file")
	}
	wantMessage(t, c, long)
	g := c.file
	b.Close()
	c.Close()
	if _, err := g.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the temp file not kept: Stat = %v, want it closed", err)
	}
	// A message in another directory does not take the kept file.
	d := spillMessage(t, p, t.TempDir(), short)
	if d.file == f {
		t.Error("a message in another directory took the kept temp file")
	}
	d.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temp dir holds %v, want nothing", entries)
	}
}

// TestTempFileKeptBriefly: the kept temp file is closed when no message
// took it within the TTL, and one larger than the bound is not kept.
func TestTempFileKeptBriefly(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20_000)
	p := &Buffers{ttl: 20 * time.Millisecond}
	m := spillMessage(t, p, dir, body)
	f := m.file
	m.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		idle := p.idle
		p.mu.Unlock()
		if idle == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept temp file is still kept 5 s after its TTL of 20 ms")
		}
	}
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Stat of the temp file after its TTL = %v, want it closed", err)
	}

	p = &Buffers{keptMax: int64(len(body)) - 1}
	m = spillMessage(t, p, dir, body)
	f = m.file
	m.Close()
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Stat of a temp file above the bound = %v, want it closed", err)
	}
}

// BenchmarkSpoolLarge is a message of 16 MB spooled to a temp file, sent
// (CopyTo) and closed, as a large message of *mixed* is: with a new temp
// file for every message (no Buffers, as before issue 18's change) and
// with the file kept for the next message. Run it with TMPDIR=/dev/shm,
// as the bench does; cpu-ns/op is the process's CPU time.
func BenchmarkSpoolLarge(b *testing.B) {
	body := bytes.Repeat([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"), 16<<20/78)
	for _, tc := range []struct {
		name string
		p    *Buffers
	}{{"NewFile", nil}, {"KeptFile", &Buffers{}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			cpu0 := cpuTime(b)
			n := 0
			for b.Loop() {
				spoolSendClose(b, tc.p, body)
				n++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}

// spoolSendClose is one message of the spool benchmarks: body spooled
// with 8 MiB of memory allowed (above it, to a temp file), through buffers
// p (nil: none), read in 64 KiB chunks, sent (CopyTo) and closed.
func spoolSendClose(b *testing.B, p *Buffers, body []byte) {
	m := spoolChunked(b, &Options{MemoryBytes: 8 << 20, Buffers: p}, body)
	if _, err := m.CopyTo(io.Discard); err != nil {
		b.Fatal(err)
	}
	m.Close()
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSpoolMiB is messages of 1–4 MB spooled in memory through one
// Buffers, sent (CopyTo) and closed, as *mixed*'s 57 messages of that
// size are; one op is one message, cpu-ns/op the process's CPU time
// (the garbage collector's included: the buffers' allocations set its
// pace).
func BenchmarkSpoolMiB(b *testing.B) {
	line := []byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n")
	body := bytes.Repeat(line, 4<<20/len(line))
	pool := &Buffers{}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	n := 0
	for b.Loop() {
		size := (1<<20 + (n*797_161)%(3<<20)) / len(line) * len(line) // 1–4 MB
		spoolSendClose(b, pool, body[:size])
		n++
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
}

// fileSink is a FileSender that takes a file's range by reading it
// (handled), or declines (not handled) and takes Writes.
type fileSink struct {
	handled bool
	err     error // SendFile's, after taking the range
	out     bytes.Buffer
	sends   [][2]int64 // off, n of each SendFile
	writes  int
}

func (s *fileSink) SendFile(f *os.File, off, n int64) (int64, bool, error) {
	s.sends = append(s.sends, [2]int64{off, n})
	if !s.handled {
		return 0, false, nil
	}
	b := make([]byte, n)
	k, err := f.ReadAt(b, off)
	s.out.Write(b[:k])
	if err == nil {
		err = s.err
	}
	return int64(k), true, err
}

func (s *fileSink) Write(p []byte) (int, error) {
	s.writes++
	return s.out.Write(p)
}

// TestCopyToSendsFile: a message in a temp file is handed to a writer
// that sends files by itself as the one range that is the message (not
// the older bytes a reused file holds after it), and written as before
// when the writer declines; a message in memory is written, never sent
// as a file; the sender's error is CopyTo's.
func TestCopyToSendsFile(t *testing.T) {
	dir := t.TempDir()
	p := &Buffers{}
	long := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20_000) // 360 KB
	short := bytes.Repeat([]byte("ABCDEFGHIJ\r\n"), 10_000)      // 120 KB
	spillMessage(t, p, dir, long).Close()
	m := spillMessage(t, p, dir, short) // in the file that holds long
	defer m.Close()

	s := &fileSink{handled: true}
	if n, err := m.CopyTo(s); err != nil || n != int64(len(short)) {
		t.Fatalf("CopyTo = %d, %v; want %d, nil", n, err, len(short))
	}
	if !bytes.Equal(s.out.Bytes(), short) || len(s.sends) != 1 || s.sends[0] != [2]int64{0, int64(len(short))} || s.writes != 0 {
		t.Errorf("sent %d bytes in ranges %v with %d Writes; want the message's %d bytes as one range from 0, no Write", s.out.Len(), s.sends, s.writes, len(short))
	}

	s = &fileSink{handled: false}
	if n, err := m.CopyTo(s); err != nil || n != int64(len(short)) || !bytes.Equal(s.out.Bytes(), short) || s.writes == 0 {
		t.Errorf("CopyTo to a writer that declines = %d, %v, %d Writes; want the %d bytes written", n, err, s.writes, len(short))
	}

	boom := errors.New("boom")
	s = &fileSink{handled: true, err: boom}
	if _, err := m.CopyTo(s); !errors.Is(err, boom) {
		t.Errorf("CopyTo with a failing sender = %v, want its error", err)
	}

	w := New(&Options{Buffers: p})
	w.Write(short)
	inMem, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer inMem.Close()
	s = &fileSink{handled: true}
	if n, err := inMem.CopyTo(s); err != nil || n != int64(len(short)) || !bytes.Equal(s.out.Bytes(), short) || len(s.sends) != 0 {
		t.Errorf("CopyTo of a message in memory = %d, %v, %d SendFiles; want the bytes written", n, err, len(s.sends))
	}
}
