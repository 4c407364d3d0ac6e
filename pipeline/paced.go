package pipeline

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/mailferry/mailferry/spool"
)

// pacedChunk is the most the paced wrappers hand on between two calls to
// Traffic: large enough that a bufio.Writer passes a piece straight to its
// connection and a read takes what the socket holds, small enough that a
// bandwidth limit paces a large message rather than waiting once after
// all of it.
const pacedChunk = 256 << 10

// ReadFrom lets the spool read for itself (spool.Writer.ReadFrom reads
// into its own buffer: a copy of every byte fewer than through Write),
// telling Traffic of the bytes of each read as Write does. The IMAP source
// hands the body to a writer that reads for itself.
func (p pacedWriter) ReadFrom(r io.Reader) (int64, error) {
	pr := &pacedReader{ctx: p.ctx, r: r, t: p.t}
	if rf, ok := p.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(pr)
	}
	return io.Copy(p.w, pr)
}

// pacedReader tells Traffic the bytes read through it, at most pacedChunk
// a read.
type pacedReader struct {
	ctx context.Context
	r   io.Reader
	t   Traffic
}

func (p *pacedReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b[:min(len(b), pacedChunk)])
	if n > 0 {
		if terr := p.t.Read(p.ctx, n); terr != nil && (err == nil || err == io.EOF) {
			err = terr
		}
	}
	return n, err
}

// CopyTo lets the body write itself whole (spool.Message.CopyTo: a
// message in memory is handed to the destination's connection without a
// copy through its buffer) in pieces of at most pacedChunk, telling
// Traffic of each piece as ReadAt does. A body that cannot is read
// through ReadAt.
func (p pacedBody) CopyTo(w io.Writer) (int64, error) {
	c, ok := p.r.(interface {
		CopyTo(io.Writer) (int64, error)
	})
	if !ok {
		return io.Copy(w, io.NewSectionReader(p, 0, 1<<62))
	}
	return c.CopyTo(pacedSink{ctx: p.ctx, w: w, t: p.t})
}

// pacedSink writes to w in pieces of at most pacedChunk, telling Traffic
// of each piece written.
type pacedSink struct {
	ctx context.Context
	w   io.Writer
	t   Traffic
}

// SendFile lets the destination's connection send a range of the spool's
// temp file by itself (spool.FileSender: sendfile(2) on a plain TCP
// connection) when w can, in pieces of at most pacedChunk, telling Traffic
// of each piece sent as Write does.
func (p pacedSink) SendFile(f *os.File, off, n int64) (int64, bool, error) {
	fs, ok := p.w.(spool.FileSender)
	if !ok {
		return 0, false, nil
	}
	var sent int64
	for sent < n {
		piece := min(n-sent, pacedChunk)
		k, handled, err := fs.SendFile(f, off+sent, piece)
		if !handled {
			if sent == 0 {
				return 0, false, nil
			}
			return sent, true, errors.New("pipeline: the destination stopped sending the spool file mid-message")
		}
		sent += k
		if k > 0 {
			if terr := p.t.Write(p.ctx, int(k)); terr != nil && err == nil {
				err = terr
			}
		}
		if err == nil && k < piece {
			err = io.ErrShortWrite
		}
		if err != nil {
			return sent, true, err
		}
	}
	return sent, true, nil
}

func (p pacedSink) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), pacedChunk)]
		n, err := p.w.Write(piece)
		written += n
		if n > 0 {
			if terr := p.t.Write(p.ctx, n); terr != nil && err == nil {
				err = terr
			}
		}
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
