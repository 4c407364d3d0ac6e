package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// appendWithFlags stores msg in user's mailbox on s over IMAP with flags.
func appendWithFlags(t *testing.T, s *dovecot.Server, user, password, mailbox string, msg []byte, flags []imap.Flag) {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	cmd := c.Append(mailbox, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("appending to %s on %s with %v: %v", mailbox, s.Name(), flags, err)
	}
}

// TestFaultKeywordsRefused: the source holds keywords longer than the
// destination Dovecot takes (mail_max_keyword_length, default 50: it
// answers "NO [CANNOT] Keyword length too long"). Each such message is
// stored without the long keywords, keeping its other flags; the dropped
// keywords are counted, and a second run neither copies nor fails anything.
func TestFaultKeywordsRefused(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-kwsrc", CA: ca, Users: map[string]string{"u": srcPassword},
		ExtraConfig: "mail_max_keyword_length = 200\n"})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-kwdst", CA: ca, Users: map[string]string{"u": dstPassword}})
	long := "Project_" + strings.Repeat("x", 60)
	longer := "Archive_" + strings.Repeat("y", 70)
	seeded := []struct {
		flags []imap.Flag
		want  string // flagSet of the copy
	}{
		{[]imap.Flag{imap.FlagSeen, "short", imap.Flag(long)}, `\seen short`},
		{[]imap.Flag{imap.FlagFlagged, "ok"}, `\flagged ok`},
		{nil, ""},
		{[]imap.Flag{imap.FlagAnswered, imap.Flag(long), imap.Flag(longer)}, `\answered`},
		{[]imap.Flag{imap.FlagSeen}, `\seen`},
	}
	var msgs [][]byte
	var want []string
	for i, s := range seeded {
		m := []byte(fmt.Sprintf("Message-ID: <kw-%d@example.test>\r\nSubject: keywords %d\r\n\r\nbody %d\r\n", i, i, i))
		appendWithFlags(t, src, "u", srcPassword, "INBOX", m, s.flags)
		msgs = append(msgs, m)
		want = append(want, digests([][]byte{m})[0][:12]+" "+s.want)
	}
	slices.Sort(want)
	p := &pair{src: src, dst: dst, dir: t.TempDir()}
	args := []string{"copy", "imaps://u@" + src.IMAPSAddr() + "/INBOX", "imaps://u@" + dst.IMAPSAddr() + "/Copy",
		"--tls-ca", src.CAFile(), "--state", filepath.Join(p.dir, "state.db"), "--json", "--progress", "none",
		"--batch-messages", "3", "--create-folders"}

	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != len(msgs) || a.Failed != 0 {
		t.Fatalf("keywords too long: exit %d, copied %d, failed %d %v; want %d, %d, 0\n%s",
			r.code, a.Copied, a.Failed, a.Failures, exitOK, len(msgs), r.stderr)
	}
	if a.FlagsDropped != 3 {
		t.Errorf("flags dropped %d, want 3 (one long keyword, then two)", a.FlagsDropped)
	}
	if !strings.Contains(r.stderr, long) || !strings.Contains(r.stderr, "without them") {
		t.Errorf("the log does not name the refused keyword:\n%s", r.stderr)
	}
	got := destMessagesOf(t, dst, "u", dstPassword, "Copy/INBOX")
	var have []string
	for _, m := range got {
		have = append(have, digests([][]byte{m.body})[0][:12]+" "+flagSet(m.flags))
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("destination (digest flags):\n  %s\nwant:\n  %s", strings.Join(have, "\n  "), strings.Join(want, "\n  "))
	}

	r = runInProcess(t, passwords, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != len(msgs) || a.Failed != 0 || a.FlagsUpdated != 0 {
		t.Errorf("second run: exit %d, copied %d, already done %d, failed %d, flags updated %d; want %d, 0, %d, 0, 0\n%s",
			r.code, a.Copied, a.AlreadyDone, a.Failed, a.FlagsUpdated, exitOK, len(msgs), r.stderr)
	}
	if n := len(destMessagesOf(t, dst, "u", dstPassword, "Copy/INBOX")); n != len(msgs) {
		t.Errorf("%d messages on the destination after the second run, want %d", n, len(msgs))
	}
}
