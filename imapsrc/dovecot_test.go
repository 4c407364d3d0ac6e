package imapsrc

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestDovecot reads a real Dovecot seeded through its Maildir: nested and
// non-ASCII folders, every system flag, internal dates, with "/" and "."
// as hierarchy separator. Dovecot serves a Maildir file's bytes with LF as
// CRLF, so the fixtures are CRLF already and must come back unchanged.
func TestDovecot(t *testing.T) {
	for _, sep := range []string{"/", "."} {
		t.Run("separator "+sep, func(t *testing.T) {
			t.Parallel()
			testDovecot(t, sep)
		})
	}
}

type seeded struct {
	mailbox string // with "/"; the instance's separator replaces it
	body    string
	flags   string // Maildir letters
	date    time.Time
}

func testDovecot(t *testing.T, sep string) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}, Separator: sep})
	big := crlfMessage("big", strings.Repeat("0123456789abcdef", 1<<14)) // 256 KiB
	fixtures := []seeded{
		{"INBOX", crlfMessage("plain", "hello"), "", time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)},
		{"INBOX", crlfMessage("all-flags", "every system flag"), "DFRST", time.Date(2010, 7, 8, 9, 10, 11, 0, time.FixedZone("", -(7*3600+30*60)))},
		{"INBOX", big, "S", time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"Sent", crlfMessage("sent", "sent mail"), "S", time.Date(2020, 2, 29, 12, 0, 0, 0, time.FixedZone("", 13*3600))},
		{"Archive/2019", crlfMessage("nested", "nested folder"), "R", time.Date(2019, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"Grüße/Ünter", crlfMessage("umlaut", "non-ASCII folder"), "F", time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)},
	}
	native := func(m string) string { return strings.ReplaceAll(m, "/", sep) }
	for _, f := range fixtures {
		if err := srv.SeedMaildir("alice", native(f.mailbox), []byte(f.body), f.flags, f.date); err != nil {
			t.Fatalf("seeding %s: %v", f.mailbox, err)
		}
	}
	opts := Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(), User: "alice", Password: secret.New("s3cret")}
	s := openSource(t, opts)

	folders, err := s.Folders(t.Context())
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	byName := map[string]Folder{}
	for _, f := range folders {
		byName[f.Name] = f
		if f.Delimiter != rune(sep[0]) {
			t.Errorf("folder %q delimiter %q, want %q", f.Name, f.Delimiter, sep)
		}
	}
	for _, want := range []string{"INBOX", "Sent", native("Archive/2019"), native("Grüße/Ünter")} {
		if _, ok := byName[want]; !ok {
			t.Errorf("Folders lacks %q: %+v", want, folders)
		}
	}
	if f := byName["Sent"]; !f.HasAttr(`\Sent`) || !f.Subscribed {
		t.Errorf("Sent = %+v, want \\Sent and subscribed", f)
	}

	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(fixtures) {
		t.Fatalf("List returned %d messages, want %d", len(list), len(fixtures))
	}
	flagsOf := map[string][]string{"": {}, "DFRST": {`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`},
		"S": {`\Seen`}, "R": {`\Answered`}, "F": {`\Flagged`}}
	for _, f := range fixtures {
		i := slices.IndexFunc(list, func(m pipeline.SourceMessage) bool {
			var b bytes.Buffer
			if _, err := s.Fetch(t.Context(), m, &b); err != nil {
				t.Fatalf("Fetch(%q): %v", m.Key, err)
			}
			return m.Mailbox == native(f.mailbox) && b.String() == f.body
		})
		if i < 0 {
			t.Errorf("no listed message in %q has the exact bytes of %q", native(f.mailbox), f.body[:60])
			continue
		}
		m := list[i]
		if m.Size != int64(len(f.body)) {
			t.Errorf("%q: Size %d, want %d", m.Key, m.Size, len(f.body))
		}
		if !m.InternalDate.Equal(f.date) {
			t.Errorf("%q: InternalDate %v, want %v", m.Key, m.InternalDate, f.date)
		}
		if got := slices.Sorted(slices.Values(m.Flags)); !slices.Equal(got, flagsOf[f.flags]) {
			t.Errorf("%q: Flags %q, want %q", m.Key, got, flagsOf[f.flags])
		}
	}

	// Delete one message of the nested folder and one of INBOX; the rest stays.
	var del []pipeline.SourceMessage
	for _, m := range list {
		if m.Mailbox == native("Archive/2019") || m.Size == int64(len(big)) {
			del = append(del, m)
		}
	}
	if err := s.Delete(t.Context(), del); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for mbox, want := range map[string]int{"INBOX": 2, native("Archive/2019"): 0, "Sent": 1} {
		if n, err := srv.MailboxCount("alice", mbox); err != nil || n != want {
			t.Errorf("after Delete, %q has %d messages (%v), want %d", mbox, n, err, want)
		}
	}
	if err := s.Close(true); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestDovecotBatches lists a folder larger than one FETCH batch.
func TestDovecotBatches(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	const n = 57
	for i := range n {
		if err := srv.SeedMaildir("alice", "INBOX", []byte(crlfMessage(fmt.Sprint("m", i), "x")), "", time.Unix(int64(1e9+i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Addr: srv.IMAPAddr(), TLS: TLSStartTLS, TLSConfig: srv.TLSConfig(), User: "alice", Password: secret.New("s3cret"), FetchBatch: 10}
	list, err := pipeline.ListAll(t.Context(), openSource(t, opts))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != n {
		t.Fatalf("List over STARTTLS with FetchBatch 10 returned %d messages, want %d", len(list), n)
	}
	seen := map[string]bool{}
	for _, m := range list {
		if seen[m.Key] {
			t.Errorf("key %q listed twice", m.Key)
		}
		seen[m.Key] = true
	}
}
