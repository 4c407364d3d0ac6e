package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// Mirror passes (issue 22, docs/mirror.md) against Dovecot at both ends.

// imapLogin logs in to s as alice.
func imapLogin(t *testing.T, s *dovecot.Server, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing %s: %v", s.IMAPSAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// uidsOf returns the UIDs of mailbox's messages whose subject contains one
// of subjects, selecting it.
func uidsOf(t *testing.T, c *imapclient.Client, mailbox string, match func(subject string) bool) imap.UIDSet {
	t.Helper()
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatalf("selecting %s: %v", mailbox, err)
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("fetching %s: %v", mailbox, err)
	}
	var set imap.UIDSet
	for _, m := range msgs {
		if match(m.Envelope.Subject) {
			set.AddNum(m.UID)
		}
	}
	return set
}

// mirrorMessage is a distinct message of the mirror tests.
func mirrorMessage(folder string, i int) []byte {
	return []byte(fmt.Sprintf("Message-ID: <mirror-%s-%d@example.test>\r\nFrom: a@example.test\r\nSubject: %s %d\r\n\r\nbody %s %d\r\n%s\r\n",
		folder, i, folder, i, folder, i, strings.Repeat("m", i%50)))
}

func subjectIn(folder string, lo, hi int) func(string) bool {
	return func(s string) bool {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(s, folder+" "), "%d", &n); err != nil || !strings.HasPrefix(s, folder+" ") {
			return false
		}
		return n >= lo && n < hi
	}
}

// assertMirrored fails unless each destination folder holds what its
// source folder holds (bytes, flags, dates), plus extra[folder].
func assertMirrored(t *testing.T, p *pair, folders map[string]string, extra map[string]int) {
	t.Helper()
	for src, dst := range folders {
		want := summary(p.srcMessages(t, src))
		got := summary(destMessages(t, p, dst))
		if n := extra[dst]; n > 0 {
			if len(got) != len(want)+n {
				t.Errorf("destination %s holds %d messages, want the source's %d and %d of its own", dst, len(got), len(want), n)
				continue
			}
			// The destination's own messages are compared apart.
			got = slices.DeleteFunc(got, func(s string) bool { return !slices.Contains(want, s) })
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("destination %s differs from source %s:\n got %d %q\nwant %d %q", dst, src, len(got), got, len(want), want)
		}
	}
}

// TestE2EMirror is the scenario: a bulk pass; then at the source 20
// messages deleted, 30 moved between folders, a folder renamed, an empty
// folder deleted, 10 new delivered; a mirror pass makes the destination
// equal to the source folder by folder, and a message the destination got
// from elsewhere stays.
func TestE2EMirror(t *testing.T) {
	p := imapPair(t)
	base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
	seedN := func(folder string, from, n int, flags string) {
		for i := from; i < from+n; i++ {
			if err := p.src.SeedMaildir("alice", folder, mirrorMessage(folder, i), flags, base.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	seedN("INBOX", 0, 60, "S")
	seedN("Work", 0, 20, "")
	seedN("Projects", 0, 10, "F")
	src := imapLogin(t, p.src, srcPassword)
	if err := src.Create("Empty", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 90 || a.Removed != 0 || a.Moved != 0 {
		t.Fatalf("bulk pass: exit %d, copied %d, removed %d, moved %d; want 0, 90, 0, 0\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
	// Mail that reached the destination another way (the MX switched).
	dst := imapLogin(t, p.dst, dstPassword)
	own := []byte("Message-ID: <own@example.test>\r\nSubject: delivered at the destination\r\n\r\nmine\r\n")
	app := dst.Append("INBOX", int64(len(own)), nil)
	if _, err := app.Write(own); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}

	// The user works at the source between the passes.
	if _, err := src.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	del := uidsOf(t, src, "INBOX", subjectIn("INBOX", 0, 20))
	if err := src.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.UIDExpunge(del).Close(); err != nil {
		t.Fatal(err)
	}
	mv := uidsOf(t, src, "INBOX", subjectIn("INBOX", 20, 50))
	if _, err := src.Move(mv, "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := src.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := src.Rename("Projects", "Archive2021", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := src.Delete("Empty").Wait(); err != nil {
		t.Fatal(err)
	}
	seedN("INBOX", 100, 10, "")

	// A dry run lists every removal and move and changes nothing.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror", "--dry-run")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 20 || a.Moved != 40 || len(a.MirrorActions) != 60 {
		t.Fatalf("dry run: exit %d, removed %d, moved %d, actions %d; want 0, 20, 40, 60\n%s", r.code, a.Removed, a.Moved, len(a.MirrorActions), r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 61 {
		t.Fatalf("the dry run changed the destination INBOX: %d messages, want 61", n)
	}

	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 10 || a.Removed != 20 || a.Moved != 40 {
		t.Fatalf("mirror pass: exit %d, copied %d, removed %d, moved %d; want 0, 10, 20, 40\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Work": "Work", "Archive2021": "Archive2021"}, map[string]int{"INBOX": 1})
	if !slices.ContainsFunc(destMessages(t, p, "INBOX"), func(m destMsg) bool { return string(m.body) == string(own) }) {
		t.Error("the message delivered at the destination is gone")
	}
	if n := len(destMessages(t, p, "Projects")); n != 0 {
		t.Errorf("the renamed folder's old destination folder still holds %d messages", n)
	}

	// A second mirror pass has nothing to do.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Removed != 0 || a.Moved != 0 {
		t.Fatalf("second mirror pass: exit %d, copied %d, removed %d, moved %d; want 0, 0, 0, 0\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
}
