package pipeline

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/mailferry/mailferry/spool"
)

// pieceTraffic records the pieces of bytes Traffic is told of.
type pieceTraffic struct {
	scriptTraffic
	reads []int
}

func (p *pieceTraffic) Read(ctx context.Context, n int) error {
	p.reads = append(p.reads, n)
	return p.scriptTraffic.Read(ctx, n)
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
