package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/mailferry/mailferry/spool"
)

// pieceTraffic records the pieces of bytes Traffic is told of; writeErr
// fails every Write.
type pieceTraffic struct {
	scriptTraffic
	reads, writes []int
	writeErr      error
}

func (p *pieceTraffic) Read(ctx context.Context, n int) error {
	p.reads = append(p.reads, n)
	return p.scriptTraffic.Read(ctx, n)
}

func (p *pieceTraffic) Write(ctx context.Context, n int) error {
	p.writes = append(p.writes, n)
	if p.writeErr != nil {
		return p.writeErr
	}
	return p.scriptTraffic.Write(ctx, n)
}

// oneShot returns all of p in a single Read, as a socket holding the whole
// message would.
type oneShot struct{ p []byte }

func (o *oneShot) Read(b []byte) (int, error) {
	if len(o.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, o.p)
	o.p = o.p[n:]
	return n, nil
}

func spooled(t testing.TB, body []byte, memory int64) *spool.Message {
	t.Helper()
	w := spool.New(&spool.Options{MemoryBytes: memory, Dir: t.TempDir()})
	w.Expect(int64(len(body)))
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestPacedReadFrom: the spool reads a fetched message for itself through
// the paced writer, and Traffic is told of every byte, at most pacedChunk
// at a time, however much one read could take.
func TestPacedReadFrom(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 60_000) // 1 MB
	tr := &pieceTraffic{}
	w := spool.New(&spool.Options{MemoryBytes: 8 << 20})
	w.Expect(int64(len(body)))
	var dst io.Writer = pacedWriter{ctx: context.Background(), w: w, t: tr}
	n, err := dst.(io.ReaderFrom).ReadFrom(&oneShot{p: body})
	if err != nil || n != int64(len(body)) {
		t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, len(body))
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := make([]byte, m.Size())
	m.ReadAt(got, 0)
	if !bytes.Equal(got, body) {
		t.Error("the spooled message differs from what was read")
	}
	if tr.read != int64(len(body)) {
		t.Errorf("Traffic told %d bytes read, want %d", tr.read, len(body))
	}
	for _, r := range tr.reads {
		if r > pacedChunk {
			t.Errorf("Traffic told of %d bytes at once, more than %d", r, pacedChunk)
		}
	}
}

// TestPacedCopyTo: a body sent through CopyTo, in memory or from its temp
// file, arrives whole every time it is sent (a body refused in a
// MULTIAPPEND is sent again), and Traffic is told of every byte, at most
// pacedChunk at a time; its error stops the copy.
func TestPacedCopyTo(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 60_000) // 1 MB
	for _, tc := range []struct {
		name   string
		memory int64
	}{{"in memory", 8 << 20}, {"temp file", 64 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &pieceTraffic{}
			pb := pacedBody{ctx: context.Background(), r: spooled(t, body, tc.memory), t: tr}
			for range 2 {
				var out bytes.Buffer
				n, err := pb.CopyTo(&out)
				if err != nil || n != int64(len(body)) || !bytes.Equal(out.Bytes(), body) {
					t.Fatalf("CopyTo = %d, %v (%d bytes out, equal %v); want %d, nil", n, err, out.Len(), bytes.Equal(out.Bytes(), body), len(body))
				}
			}
			if tr.written != 2*int64(len(body)) {
				t.Errorf("Traffic told %d bytes written, want %d", tr.written, 2*len(body))
			}
			for _, w := range tr.writes {
				if w > pacedChunk {
					t.Errorf("Traffic told of %d bytes at once, more than %d", w, pacedChunk)
				}
			}
			stop := errors.New("quota")
			tr = &pieceTraffic{writeErr: stop}
			pb.t = tr
			if _, err := pb.CopyTo(io.Discard); !errors.Is(err, stop) || len(tr.writes) != 1 {
				t.Errorf("CopyTo with Traffic failing = %v after %d pieces, want its error after 1", err, len(tr.writes))
			}
		})
	}
}

// rangeSink sends files by itself (spool.FileSender), reading each range
// asked for; it takes no Write.
type rangeSink struct {
	out    bytes.Buffer
	pieces []int64
}

func (s *rangeSink) SendFile(f *os.File, off, n int64) (int64, bool, error) {
	s.pieces = append(s.pieces, n)
	b := make([]byte, n)
	k, err := f.ReadAt(b, off)
	s.out.Write(b[:k])
	return int64(k), true, err
}

func (s *rangeSink) Write([]byte) (int, error) {
	return 0, errors.New("rangeSink takes no Write")
}

// TestPacedSendFile: a body in a temp file goes to a writer that sends
// files by itself (the destination's plain TCP connection) through the
// paced sink, whole, in pieces of at most pacedChunk, Traffic told of
// each; Traffic's error stops it after the piece.
func TestPacedSendFile(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 60_000) // 1 MB
	tr := &pieceTraffic{}
	pb := pacedBody{ctx: context.Background(), r: spooled(t, body, 64<<10), t: tr}
	s := &rangeSink{}
	n, err := pb.CopyTo(s)
	if err != nil || n != int64(len(body)) || !bytes.Equal(s.out.Bytes(), body) {
		t.Fatalf("CopyTo = %d, %v (%d bytes sent); want the %d bytes", n, err, s.out.Len(), len(body))
	}
	if len(s.pieces) != (len(body)+pacedChunk-1)/pacedChunk || tr.written != int64(len(body)) || len(tr.writes) != len(s.pieces) {
		t.Errorf("sent in pieces %v, Traffic told of %v; want pieces of %d, each told", s.pieces, tr.writes, pacedChunk)
	}
	for _, p := range s.pieces {
		if p > pacedChunk {
			t.Errorf("a piece of %d bytes, more than %d", p, pacedChunk)
		}
	}
	stop := errors.New("quota")
	tr = &pieceTraffic{writeErr: stop}
	pb.t = tr
	s = &rangeSink{}
	if _, err := pb.CopyTo(s); !errors.Is(err, stop) || len(s.pieces) != 1 {
		t.Errorf("CopyTo with Traffic failing = %v after %d pieces, want its error after 1", err, len(s.pieces))
	}
}
