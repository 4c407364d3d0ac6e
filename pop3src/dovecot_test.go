package pop3src

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestDovecotPrefetch reads a real Dovecot maildrop (which announces
// PIPELINING) with Prefetch, in order and out of order, and checks every
// message byte for byte against what plain RETRs serve and against the
// seeded files; then deletes some and commits.
func TestDovecotPrefetch(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	var bodies [][]byte
	for i := range 60 {
		var b strings.Builder
		fmt.Fprintf(&b, "From: a@example.org\r\nSubject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\n", i, i)
		switch i % 4 {
		case 0:
			b.WriteString(".\r\n..\r\n.leading dot\r\n")
		case 1:
			b.WriteString(strings.Repeat("a line of text\r\n", 1000*i)) // up to ~900 KB
		case 2:
			b.WriteString("8-bit \xe9\xff and no final CRLF")
		case 3:
			b.WriteString(strings.Repeat("x", 200<<10) + "\r\n") // one long line
		}
		body := []byte(b.String())
		bodies = append(bodies, body)
		if err := srv.SeedMaildir("alice", "INBOX", body, "", time.Unix(int64(1e9+i), 0)); err != nil {
			t.Fatalf("seeding message %d: %v", i, err)
		}
	}
	opts := Options{
		Addr: srv.POP3SAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: "alice", Password: secret.New("s3cret"),
		PrefetchMessages: 8, PrefetchBytes: 1 << 20, // the window moves, and is bounded by bytes
	}
	ctx := context.Background()

	// The reference: plain RETRs, one per round trip.
	ref := open(t, opts)
	list, err := pipeline.ListAll(ctx, ref)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(bodies) {
		t.Fatalf("List returned %d messages, want %d", len(list), len(bodies))
	}
	if !ref.pipelining {
		t.Fatal("Dovecot's CAPA after login lacks PIPELINING")
	}
	want := fetchAll(t, ref, list)
	for i, got := range want {
		// Maildir order is the seeding order (the file names sort by time).
		if !bytes.Equal(got, servedBytes(bodies[i])) {
			t.Errorf("plain RETR of %q = %q, want the seeded %q", list[i].Key, shorten(string(got)), shorten(string(bodies[i])))
		}
	}
	if err := ref.Close(false); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		order []int // indexes into list, fetched in this order
	}{
		{name: "in order", order: seq(0, 60)},
		{name: "out of order", order: append(append(append(seq(0, 10), 30, 11, 12), seq(31, 60)...), 13, 14)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, opts)
			l, err := pipeline.ListAll(ctx, s)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if err := s.Prefetch(ctx, l); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			for _, i := range tc.order {
				var buf bytes.Buffer
				n, err := s.Fetch(ctx, l[i], &buf)
				if err != nil {
					t.Fatalf("Fetch(%q): %v", l[i].Key, err)
				}
				if !bytes.Equal(buf.Bytes(), want[i]) || n != int64(len(want[i])) {
					t.Fatalf("prefetched Fetch(%q) = %d, %q; want %q", l[i].Key, n, shorten(buf.String()), shorten(string(want[i])))
				}
			}
			if err := s.Close(false); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Delete with replies in flight, then commit.
	s := open(t, opts)
	l, err := pipeline.ListAll(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prefetch(ctx, l); err != nil {
		t.Fatal(err)
	}
	for _, m := range l[:3] {
		if _, err := s.Fetch(ctx, m, &bytes.Buffer{}); err != nil {
			t.Fatalf("Fetch(%q): %v", m.Key, err)
		}
	}
	if err := s.Delete(ctx, l[:3]); err != nil {
		t.Fatalf("Delete with prefetched replies in flight: %v", err)
	}
	if err := s.Close(true); err != nil {
		t.Fatalf("Close(true): %v", err)
	}
	if n, err := srv.MailboxCount("alice", "INBOX"); err != nil || n != len(bodies)-3 {
		t.Fatalf("INBOX holds %d messages (%v) after deleting 3 of %d", n, err, len(bodies))
	}
}

// seq returns from, from+1, ..., to-1.
func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

var _ interface {
	Prefetch(context.Context, []pipeline.SourceMessage) error
} = (*Source)(nil)
