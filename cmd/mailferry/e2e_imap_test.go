package main

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// imapPair is an IMAP source with "." as separator and an IMAP destination
// with "/", as between a Courier-style and a Dovecot-style server.
func imapPair(t *testing.T) *pair {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-isrc", CA: ca, Separator: ".", Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-idst", CA: ca, Users: map[string]string{"alice": dstPassword}})
	p.state = p.dir + "/state.db"
	return p
}

func (p *pair) imapCopyArgs(extra ...string) []string {
	return append([]string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), "imaps://alice@" + p.dst.IMAPSAddr(),
		"--tls-ca", p.src.CAFile(), "--state", p.state, "--json", "--progress", "none"}, extra...)
}

// srcIMAP reads the source's folder over IMAP (pair.destMessages reads the
// destination).
func (p *pair) srcMessages(t *testing.T, mailbox string) []destMsg {
	t.Helper()
	q := &pair{dst: p.src}
	return q.destMessagesAs(t, mailbox, srcPassword)
}

type seeded struct {
	folder string // source folder, "." separated
	body   string
	flags  string // maildir letters
	date   time.Time
}

func flagSet(fs []imap.Flag) string {
	var out []string
	for _, f := range fs {
		if f != `\Recent` {
			out = append(out, strings.ToLower(string(f)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// summary is a folder's messages as comparable lines: digest, flags, date.
func summary(msgs []destMsg) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s | %s | %s", digests([][]byte{m.body})[0][:12], flagSet(m.flags), m.date.UTC().Format(time.RFC3339)))
	}
	sort.Strings(out)
	return out
}

func TestE2EIMAPToIMAP(t *testing.T) {
	p := imapPair(t)
	// Every run excludes Spam, which must get no destination folder.
	copyArgs := func(extra ...string) []string {
		return p.imapCopyArgs(append([]string{"--exclude-folder", "Spam"}, extra...)...)
	}
	d := func(day int) time.Time {
		return time.Date(2019, 3, day, 8, 30, 15, 0, time.FixedZone("", -7*3600-1800))
	}
	msgs := []seeded{
		{"INBOX", "Subject: in 1\r\n\r\none\r\n", "S", d(1)},
		{"INBOX", "Subject: in 2\r\n\r\ntwo\r\n", "FS", d(2)},
		{"INBOX", "Subject: in 3\r\n\r\n.dot line\r\n", "", d(3)},
		{"Archive.2019", "Subject: arch 1\r\n\r\narchived\r\n", "RS", d(4)},
		{"Archive.2019", "Subject: arch 2\r\n\r\narchived too\r\n", "DS", d(5)},
		{"Gesendete Elemente", "Subject: sent de\r\n\r\ngesendet\r\n", "S", d(6)},
		{"Deleted Items", "Subject: trash\r\n\r\nweg damit\r\n", "ST", d(7)},
		{"Grüße", "Subject: utf-7 folder\r\n\r\nhallo\r\n", "T", d(8)},
	}
	for _, m := range msgs {
		if err := p.src.SeedMaildir("alice", m.folder, []byte(m.body), m.flags, m.date); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.src.Doveadm("flags", "add", "-u", "alice", "$Forwarded", "mailbox", "INBOX", "subject", "in 1"); err != nil {
		t.Fatal(err)
	}

	if err := p.src.SeedMaildir("alice", "Spam", []byte("Subject: spam\r\n\r\nbuy\r\n"), "", d(1)); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, p.getenv, copyArgs()...)
	if r.code != exitOK {
		t.Fatalf("IMAP → IMAP copy exited %d\n%s", r.code, r.stderr)
	}
	if boxes, _ := p.dst.Mailboxes("alice"); slices.ContainsFunc(boxes, func(b string) bool { return b == "Spam" || b == "Junk" }) {
		t.Errorf("an excluded folder got a destination folder: %v", boxes)
	}
	if a := r.report.Accounts[0]; a.Copied != len(msgs) || a.DateSources["source"] != len(msgs) {
		t.Fatalf("copied %d (dates %v), want %d with source dates", a.Copied, a.DateSources, len(msgs))
	}
	// Each destination folder holds its source folder's messages: bytes,
	// flags (system flags and keywords), internal date to the second.
	want := map[string][]string{
		"INBOX":        summary(p.srcMessages(t, "INBOX")),
		"Archive/2019": summary(p.srcMessages(t, "Archive.2019")),
		"Grüße":        summary(p.srcMessages(t, "Grüße")),
		// No source folder has a special-use attribute, so roles come from
		// well-known names: into the destination's \Sent and \Trash.
		"Sent":  summary(p.srcMessages(t, "Gesendete Elemente")),
		"Trash": summary(p.srcMessages(t, "Deleted Items")),
	}
	for folder, w := range want {
		sort.Strings(w)
		got := summary(destMessages(t, p, folder))
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("destination %s:\n got %q\nwant %q", folder, got, w)
		}
	}
	if !slices.ContainsFunc(summary(destMessages(t, p, "INBOX")), func(s string) bool { return strings.Contains(s, "$forwarded") }) {
		t.Error("the $Forwarded keyword did not reach the destination")
	}

	// The user goes on reading mail: a new message and a changed flag.
	if err := p.src.SeedMaildir("alice", "INBOX", []byte("Subject: in 4\r\n\r\nnew\r\n"), "", d(9)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.src.Doveadm("flags", "add", "-u", "alice", `\Flagged`, "mailbox", "Archive.2019", "subject", "arch 1"); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, p.getenv, copyArgs()...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 1 || a.FlagsUpdated != 1 || a.AlreadyDone != len(msgs) {
		t.Fatalf("incremental run: exit %d, copied %d, flags updated %d, already done %d; want 0, 1, 1, %d\n%s",
			r.code, a.Copied, a.FlagsUpdated, a.AlreadyDone, len(msgs), r.stderr)
	}
	if got, w := summary(destMessages(t, p, "Archive/2019")), summary(p.srcMessages(t, "Archive.2019")); strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("flags not brought over:\n got %q\nwant %q", got, w)
	}

	// The source renumbers a folder (new UIDVALIDITY): nothing is copied twice.
	if _, err := p.src.Doveadm("mailbox", "update", "-u", "alice", "--uid-validity", "77", "Archive.2019"); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, p.getenv, copyArgs()...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Rematched != 2 {
		t.Fatalf("after a UIDVALIDITY change: exit %d, copied %d, rematched %d; want 0, 0, 2\n%s", r.code, a.Copied, a.Rematched, r.stderr)
	}
	if n := len(destMessages(t, p, "Archive/2019")); n != 2 {
		t.Errorf("Archive/2019 holds %d messages after the UIDVALIDITY change, want 2", n)
	}

	// --delete-source removes from the source exactly what was copied.
	if err := p.src.SeedMaildir("alice", "INBOX", []byte("Subject: in 5\r\n\r\nlast\r\n"), "", d(10)); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, p.getenv, copyArgs("--delete-source")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 1 || a.Deleted != len(msgs)+2 {
		t.Fatalf("--delete-source: exit %d, copied %d, deleted %d; want 0, 1, %d\n%s", r.code, a.Copied, a.Deleted, len(msgs)+2, r.stderr)
	}
	for _, f := range []string{"INBOX", "Archive.2019", "Gesendete Elemente", "Deleted Items", "Grüße"} {
		if n := len(p.srcMessages(t, f)); n != 0 {
			t.Errorf("source %s still holds %d messages after --delete-source", f, n)
		}
	}
	if n := len(destMessages(t, p, "INBOX")); n != 5 {
		t.Errorf("destination INBOX holds %d, want 5", n)
	}
}

// TestE2EIMAPAgeFilter: --max-age and --min-age take days, as the config
// and --delete-after do, and select by internal date: a message 10 days
// old, one 40 days old and one 400 days old.
func TestE2EIMAPAgeFilter(t *testing.T) {
	p := imapPair(t)
	now := time.Now()
	ages := map[int]string{10: "Subject: 10 days\r\n\r\nten\r\n", 40: "Subject: 40 days\r\n\r\nforty\r\n",
		400: "Subject: 400 days\r\n\r\nfour hundred\r\n"}
	for days, body := range ages {
		if err := p.src.SeedMaildir("alice", "INBOX", []byte(body), "S", now.Add(-time.Duration(days)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	subjects := func() []string {
		var out []string
		for _, m := range destMessages(t, p, "INBOX") {
			out = append(out, strings.SplitN(string(m.body), "\r\n", 2)[0])
		}
		sort.Strings(out)
		return out
	}
	steps := []struct {
		flags []string
		want  []string // the destination's subjects after the run
	}{
		{[]string{"--max-age", "30d"}, []string{"Subject: 10 days"}},
		{[]string{"--min-age", "30d", "--max-age", "1d12h"}, nil}, // refused: nothing would be copied
		{[]string{"--min-age", "30d", "--max-age", "365d"}, []string{"Subject: 10 days", "Subject: 40 days"}},
	}
	for _, st := range steps {
		r := runInProcess(t, p.getenv, p.imapCopyArgs(st.flags...)...)
		if st.want == nil {
			if r.code != exitUsage {
				t.Fatalf("%v: exit %d, want %d\n%s", st.flags, r.code, exitUsage, r.stderr)
			}
			continue
		}
		if r.code != exitOK || r.report.Totals.Copied != 1 {
			t.Fatalf("%v: exit %d, copied %d; want %d and 1\n%s", st.flags, r.code, r.report.Totals.Copied, exitOK, r.stderr)
		}
		if got := subjects(); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("after %v the destination holds %q, want %q", st.flags, got, st.want)
		}
	}
}
