package imapdst

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/spool"
)

// sentBody is a spooled message that notes whether the writer CopyTo was
// given sent its temp file by itself (spool.FileSender, handled).
type sentBody struct {
	*spool.Message
	sent, declined int
}

func (b *sentBody) CopyTo(w io.Writer) (int64, error) {
	return b.Message.CopyTo(&sendNoter{w: w, b: b})
}

type sendNoter struct {
	w io.Writer
	b *sentBody
}

func (s *sendNoter) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *sendNoter) SendFile(f *os.File, off, n int64) (int64, bool, error) {
	fs, ok := s.w.(spool.FileSender)
	if !ok {
		s.b.declined++
		return 0, false, nil
	}
	k, handled, err := fs.SendFile(f, off, n)
	if handled {
		s.b.sent++
	} else {
		s.b.declined++
	}
	return k, handled, err
}

// TestSendFileDovecot: a large message spooled to a temp file goes to
// Dovecot by sendfile(2) on a plain connection and as before under TLS,
// and either way Dovecot holds exactly its bytes (Digest: size and
// SHA-256 of BODY[]), also when the reused temp file holds an older,
// longer message's bytes after it.
func TestSendFileDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}})
	ctx := context.Background()
	dir := t.TempDir()
	p := &spool.Buffers{}
	spoolIt := func(body string) *spool.Message {
		w := spool.New(&spool.Options{MemoryBytes: 64 << 10, Dir: dir, Buffers: p})
		w.Expect(int64(len(body)))
		if _, err := w.ReadFrom(strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		m, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	message := func(lines int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "Subject: sendfile %d\r\n\r\n", lines)
		for i := range lines {
			fmt.Fprintf(&b, "line %d of a large message, with some text to make it longer\r\n", i)
		}
		b.WriteString("the end, without a line end")
		return b.String()
	}
	// The older, longer message leaves its bytes in the kept temp file.
	spoolIt(message(60_000)).Close()
	for _, tc := range []struct {
		name string
		opts Options
		sent bool
	}{
		{"plain", Options{Addr: srv.IMAPAddr(), TLS: TLSNone, AllowPlaintext: true}, true},
		{"TLS", Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.User, opts.Password, opts.IdleTimeout = "bob", secret.New("pw"), 10*time.Second
			d, err := Dial(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.EnsureMailbox(ctx, "INBOX"); err != nil {
				t.Fatal(err)
			}
			body := message(40_000) // 2.7 MB
			b := &sentBody{Message: spoolIt(body)}
			defer b.Close()
			res, err := d.Append(ctx, "INBOX", []pipeline.OutgoingMessage{{Body: b, Size: b.Size()}})
			if err != nil || res[0].Err != nil || res[0].UID == 0 {
				t.Fatalf("Append = %+v, %v", res, err)
			}
			if got := b.sent > 0; got != tc.sent || (tc.sent && b.declined > 0) {
				t.Errorf("the temp file sent by sendfile in %d pieces, declined in %d; want sent %v", b.sent, b.declined, tc.sent)
			}
			sum, size, err := d.Digest(ctx, "INBOX", res[0].UID)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(body)) || sum != sha256.Sum256([]byte(body)) {
				t.Errorf("Dovecot holds %d bytes with another digest; want exactly the %d appended", size, len(body))
			}
		})
	}
}
