package pop3src

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// readerSizes exercises the ErrBufferFull paths: bufio's minimum (16), an odd
// size, and the client's real one.
var readerSizes = []int{16, 17, 64 << 10}

func TestCopyDotStuffed(t *testing.T) {
	long := strings.Repeat("A", 100<<10)
	tests := []struct {
		name string
		wire string // what the server sends after +OK, terminator included
		want string
		rest string // what must be left unread
	}{
		{name: "empty message", wire: ".\r\n", want: ""},
		{name: "plain lines", wire: "Subject: x\r\n\r\nbody\r\n.\r\n", want: "Subject: x\r\n\r\nbody\r\n"},
		{name: "stuffed leading dot", wire: "..leading dot\r\n.\r\n", want: ".leading dot\r\n"},
		{name: "line that is only a dot", wire: "a\r\n..\r\nb\r\n.\r\n", want: "a\r\n.\r\nb\r\n"},
		{name: "two stuffed dots", wire: "...\r\n.\r\n", want: "..\r\n"},
		{name: "dot inside a line untouched", wire: "a.b\r\n a .\r\n.\r\n", want: "a.b\r\n a .\r\n"},
		{name: "100 KB single line", wire: long + "\r\n.\r\n", want: long + "\r\n"},
		{name: "100 KB stuffed line", wire: "." + long + "\r\n.\r\n", want: long + "\r\n"},
		{name: "bare CR kept", wire: "a\rb\r\r\n.\r\n", want: "a\rb\r\r\n"},
		{name: "bare LF inside a line kept", wire: "a\nb\r\n.\r\n", want: "a\nb\r\n"},
		{name: "dot after bare LF is data", wire: "a\n.b\r\n.\r\n", want: "a\n.b\r\n"},
		{name: "dot-CRLF after bare LF is data", wire: "a\n.\r\nb\r\n.\r\n", want: "a\n.\r\nb\r\n"},
		{name: "8-bit and NUL", wire: "\xff\xfe\x00\x80caf\xc3\xa9\r\n.\r\n", want: "\xff\xfe\x00\x80caf\xc3\xa9\r\n"},
		{name: "CR at buffer boundary then stuffed line", wire: strings.Repeat("x", 15) + "\r\n..y\r\n.\r\n", want: strings.Repeat("x", 15) + "\r\n.y\r\n"},
		{name: "CR at buffer boundary then terminator", wire: strings.Repeat("x", 15) + "\r\n.\r\n", want: strings.Repeat("x", 15) + "\r\n"},
		// A line's "." in the last bytes of the reader's buffer (16: the
		// first tests' size) is decided once the next bytes are read.
		{name: "stuffed dot last in the buffer", wire: strings.Repeat("x", 13) + "\r\n..y\r\n.\r\n", want: strings.Repeat("x", 13) + "\r\n.y\r\n"},
		{name: "terminator last in the buffer", wire: strings.Repeat("x", 13) + "\r\n.\r\n", want: strings.Repeat("x", 13) + "\r\n"},
		{name: "terminator split after its CR", wire: strings.Repeat("x", 12) + "\r\n.\r\n", want: strings.Repeat("x", 12) + "\r\n"},
		{name: "LF first in the buffer then stuffed line", wire: strings.Repeat("x", 15) + "\r\n..y\r\n.\r\n", want: strings.Repeat("x", 15) + "\r\n.y\r\n"},
		{name: "stuffed lines in a row", wire: "..a\r\n..\r\n...\r\n.b.\r\n.\r\n", want: ".a\r\n.\r\n..\r\nb.\r\n"},
		{name: "long run then stuffed line", wire: long + "\r\n..z\r\n" + long + "\r\n.\r\n", want: long + "\r\n.z\r\n" + long + "\r\n"},
		{name: "bytes after terminator left unread", wire: "m\r\n.\r\n+OK next\r\n", want: "m\r\n", rest: "+OK next\r\n"},
	}
	for _, tc := range tests {
		for _, size := range readerSizes {
			r := bufio.NewReaderSize(strings.NewReader(tc.wire), size)
			var out bytes.Buffer
			n, err := copyDotStuffed(&out, r)
			if err != nil {
				t.Errorf("%s (buffer %d): copyDotStuffed error %v", tc.name, size, err)
				continue
			}
			if got := out.String(); got != tc.want {
				t.Errorf("%s (buffer %d): copyDotStuffed(%q) = %q, want %q", tc.name, size, shorten(tc.wire), shorten(got), shorten(tc.want))
			}
			if n != int64(len(tc.want)) {
				t.Errorf("%s (buffer %d): count = %d, want %d", tc.name, size, n, len(tc.want))
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.rest {
				t.Errorf("%s (buffer %d): left unread %q, want %q", tc.name, size, rest, tc.rest)
			}
		}
	}
}

func TestCopyDotStuffedErrors(t *testing.T) {
	tests := []struct {
		name      string
		wire      string
		wantEOF   bool // io.ErrUnexpectedEOF
		wantProto bool // *ProtocolError
	}{
		{name: "no terminator", wire: "line\r\n", wantEOF: true},
		{name: "terminator cut before LF", wire: "line\r\n.\r", wantEOF: true},
		{name: "nothing at all", wire: "", wantEOF: true},
		{name: "no final CRLF and no terminator", wire: "line", wantEOF: true},
		{name: "terminator with bare LF", wire: "line\r\n.\n", wantProto: true},
		{name: "unstuffed dot-LF at start", wire: ".\nmore\r\n.\r\n", wantProto: true},
		{name: "dot-LF last in the buffer", wire: strings.Repeat("x", 14) + "\r\n.\nmore\r\n.\r\n", wantProto: true},
		{name: "body cut after a line's dot", wire: "line\r\n.", wantEOF: true},
		{name: "body cut inside a stuffed line", wire: "line\r\n..abc", wantEOF: true},
	}
	for _, tc := range tests {
		for _, size := range readerSizes {
			r := bufio.NewReaderSize(strings.NewReader(tc.wire), size)
			_, err := copyDotStuffed(io.Discard, r)
			var pe *ProtocolError
			switch {
			case tc.wantEOF && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("%s (buffer %d): copyDotStuffed(%q) error = %v, want unexpected EOF", tc.name, size, tc.wire, err)
			case tc.wantProto && !errors.As(err, &pe):
				t.Errorf("%s (buffer %d): copyDotStuffed(%q) error = %v, want *ProtocolError", tc.name, size, tc.wire, err)
			}
		}
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestCopyDotStuffedWriterFailureDrains(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789\r\n"), 10000)
	wire := append(pop3fake.Stuff(body), "+OK next\r\n"...)
	r := bufio.NewReaderSize(bytes.NewReader(wire), 4096)
	_, err := copyDotStuffed(&failingWriter{after: 1000}, r)
	var we *writerError
	if !errors.As(err, &we) {
		t.Fatalf("copyDotStuffed to failing writer: error = %v, want *writerError", err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "+OK next\r\n" {
		t.Fatalf("after writer failure, left unread %q, want the next reply", shorten(string(rest)))
	}
}

// servedBytes is what a client can get back for msg: RFC 1939 §3 makes the
// server end the last line with CRLF.
func servedBytes(msg []byte) []byte {
	if len(msg) == 0 || bytes.HasSuffix(msg, []byte("\r\n")) {
		return msg
	}
	return append(bytes.Clone(msg), '\r', '\n')
}

// FuzzDotRoundTrip: for any message, what the fake server stuffs, the client
// unstuffs to the served bytes exactly, and stops at the terminator.
func FuzzDotRoundTrip(f *testing.F) {
	for _, seed := range []string{
		"", ".", "..", ".\r\n", "..\r\n", "a\r\n.\r\nb", "\r\n.\r\n", "x\r", "x\n", "\n.\n", "\r\n.\n",
		".\r\n.\r\n..\r\n", "\x00\xff\r\n.", strings.Repeat("y", 40) + "\r\n." + strings.Repeat("z", 40),
		strings.Repeat("x", 15) + "\r\n.", strings.Repeat("x", 14) + "\r\r\n.",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		wire := append(pop3fake.Stuff(msg), "+OK\r\n"...)
		want := servedBytes(msg)
		for _, size := range readerSizes {
			r := bufio.NewReaderSize(bytes.NewReader(wire), size)
			var out bytes.Buffer
			n, err := copyDotStuffed(&out, r)
			if err != nil {
				t.Fatalf("buffer %d: copyDotStuffed(Stuff(%q)) error %v", size, msg, err)
			}
			if !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) {
				t.Fatalf("buffer %d: copyDotStuffed(Stuff(%q)) = %q (%d), want %q", size, msg, out.Bytes(), n, want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "+OK\r\n" {
				t.Fatalf("buffer %d: left unread %q, want %q", size, rest, "+OK\r\n")
			}
		}
	})
}

func BenchmarkCopyDotStuffed(b *testing.B) {
	b64 := make([]byte, 0, 4<<20)
	for i := 0; len(b64) < 4<<20; i++ {
		b64 = append(b64, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i), byte(i * 7), byte(i * 13)}, 19))...)
		b64 = append(b64, "\r\n"...)
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"text", bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\r\n"), 1<<15)},
		{"stuffed", bytes.Repeat([]byte(".The quick brown fox jumps over the lazy dog.\r\n"), 1<<15)},
		{"base64", b64}, // most of the bytes of mail: no "." at all
	} {
		b.Run(bc.name, func(b *testing.B) {
			wire := pop3fake.Stuff(bc.body)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			var d dotCopier
			r := bufio.NewReaderSize(bytes.NewReader(wire), 64<<10)
			for b.Loop() {
				r.Reset(bytes.NewReader(wire))
				if _, err := d.copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
