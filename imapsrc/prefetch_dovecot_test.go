package imapsrc

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestDovecotPrefetch reads a real Dovecot through batched UID FETCHes:
// every body byte for byte, a message larger than a batch's byte bound,
// and messages expunged by doveadm (another process) between List and
// Fetch, in the selected folder and in one selected later.
func TestDovecotPrefetch(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	want := map[string][]string{} // mailbox -> bodies in UID order
	for _, box := range []string{"INBOX", "Archive"} {
		for i := range 25 {
			body := crlfMessage(fmt.Sprintf("%s-%d", box, i), fmt.Sprint("body ", i))
			if i == 7 {
				body = crlfMessage(box+"-big", strings.Repeat("0123456789abcdef\r\n", 20000)) // 360 KB
			}
			if err := srv.SeedMaildir("alice", box, []byte(body), "S", time.Date(2020, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			want[box] = append(want[box], body)
		}
	}
	opts := Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(), User: "alice",
		Password: secret.New("s3cret"), PrefetchMessages: 6, PrefetchBytes: 64 << 10}
	var trace bytes.Buffer
	opts.Trace = &trace
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 50 {
		t.Fatalf("List returned %d messages, want 50", len(list))
	}
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	gone := map[string][]uint32{"Archive": {2, 12, 13}, "INBOX": {1, 6, 25}}
	for box, uids := range gone {
		for _, uid := range uids {
			if _, err := srv.Doveadm("expunge", "-u", "alice", "mailbox", box, "uid", fmt.Sprint(uid)); err != nil {
				t.Fatalf("expunging UID %d of %s: %v", uid, box, err)
			}
		}
	}
	for _, m := range list {
		_, _, uid, _ := ParseKey(m.Key)
		var b bytes.Buffer
		_, err := s.Fetch(t.Context(), m, &b)
		if slices.Contains(gone[m.Mailbox], uid) {
			if !errors.Is(err, pipeline.ErrMessageGone) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
				t.Errorf("Fetch(%s UID %d, expunged) = %v (class %v), want ErrMessageGone, per message", m.Mailbox, uid, err, pipeline.ClassOf(err))
			}
			continue
		}
		if err != nil {
			t.Fatalf("Fetch(%s UID %d): %v", m.Mailbox, uid, err)
		}
		if b.String() != want[m.Mailbox][uid-1] {
			t.Errorf("Fetch(%s UID %d) = %d bytes, want the %d bytes seeded", m.Mailbox, uid, b.Len(), len(want[m.Mailbox][uid-1]))
		}
	}
	if err := s.Close(false); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// 25 messages per folder, 6 per batch, the big one alone: 5 to 7 per
	// folder, and a few more where expunged UIDs end a batch early.
	if n := batchesSent(trace.String()); n < 10 || n > 20 {
		t.Errorf("%d batched UID FETCHes, want 10 to 20", n)
	}
}
