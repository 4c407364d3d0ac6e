package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/pipeline"
)

// Mirror passes (issue 22, docs/mirror.md) against Dovecot at both ends.

// imapLogin logs in to s as alice.
func imapLogin(t *testing.T, s *dovecot.Server, password string) *imapclient.Client {
	t.Helper()
	return imapLoginAs(t, s, "alice", password)
}

// imapLoginAs logs in to s as user.
func imapLoginAs(t *testing.T, s *dovecot.Server, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing %s: %v", s.IMAPSAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
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
	seedN("Old", 0, 2, "S")
	src := imapLogin(t, p.src, srcPassword)
	if err := src.Create("Empty", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 92 || a.Removed != 0 || a.Moved != 0 {
		t.Fatalf("bulk pass: exit %d, copied %d, removed %d, moved %d; want 0, 92, 0, 0\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
	// Mail that reached the destination another way (the MX switched),
	// and a message the user filed on the destination into a folder the
	// source then deletes.
	dst := imapLogin(t, p.dst, dstPassword)
	own := []byte("Message-ID: <own@example.test>\r\nSubject: delivered at the destination\r\n\r\nmine\r\n")
	for _, box := range []string{"INBOX", "Old"} {
		app := dst.Append(box, int64(len(own)), nil)
		if _, err := app.Write(own); err != nil {
			t.Fatal(err)
		}
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Wait(); err != nil {
			t.Fatal(err)
		}
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
	for _, box := range []string{"Empty", "Old"} {
		if err := src.Delete(box).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	seedN("INBOX", 100, 10, "")

	// A dry run lists every removal and move and changes nothing.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror", "--dry-run")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 22 || a.Moved != 40 || len(a.MirrorActions) != 62 || len(a.FoldersDeleted) != 2 || len(a.FoldersRenamed) != 1 {
		t.Fatalf("dry run: exit %d, removed %d, moved %d, actions %d; want 0, 22, 40, 62\n%s", r.code, a.Removed, a.Moved, len(a.MirrorActions), r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 61 {
		t.Fatalf("the dry run changed the destination INBOX: %d messages, want 61", n)
	}

	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror", "--trace")...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 10 || a.Removed != 22 || a.Moved != 40 {
		t.Fatalf("mirror pass: exit %d, copied %d, removed %d, moved %d; want 0, 10, 22, 40\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
	// The source's folders (INBOX, Work, Archive2021) are each listed
	// twice: before anything is appended, to know what is gone and find
	// what moved (the same listing), and by the copy.
	searches := 0
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "imapsrc") && strings.Contains(l, " UID SEARCH") {
			searches++
		}
	}
	if searches != 6 {
		t.Errorf("the mirror pass listed the source's folders %d times (UID SEARCH), want 6: 2 each of 3", searches)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Work": "Work", "Archive2021": "Archive2021"}, map[string]int{"INBOX": 1})
	if !slices.ContainsFunc(destMessages(t, p, "INBOX"), func(m destMsg) bool { return string(m.body) == string(own) }) {
		t.Error("the message delivered at the destination is gone")
	}
	// The renamed folder's old destination folder, emptied by the moves,
	// and the deleted empty folder's are deleted; the deleted folder that
	// holds the user's own message stays, with only that message.
	if got := a.FoldersDeleted; !slices.Equal(got, []string{"Empty"}) {
		t.Errorf("folders deleted: %q, want Empty", got)
	}
	if got := a.FoldersRenamed; !slices.Equal(got, []string{"Projects -> Archive2021"}) {
		t.Errorf("folders renamed: %q, want Projects -> Archive2021", got)
	}
	boxes, err := p.dst.Mailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(boxes, "Projects") || slices.Contains(boxes, "Empty") || !slices.Contains(boxes, "Archive2021") || !slices.Contains(boxes, "Old") {
		t.Errorf("destination folders after the mirror pass: %q; want Archive2021 and Old, no Projects, no Empty", boxes)
	}
	if old := destMessages(t, p, "Old"); len(old) != 1 || string(old[0].body) != string(own) {
		t.Errorf("the destination folder Old holds %d messages, want only the user's own", len(old))
	}

	// verify agrees: every source message once on the destination, with
	// the ledger and without it; the one extra is the user's own message.
	for _, mode := range [][]string{nil, {"--no-ledger"}} {
		code, rep := imapVerifyJSON(t, p, mode...)
		items := rep.Accounts[0].Items
		if code != exitOK || !rep.OK || len(items) != 1 || items[0].Kind.String() != "extra" || !strings.Contains(items[0].Detail, "<own@example.test>") {
			t.Errorf("verify %v after the mirror pass: exit %d, differences %+v; want only the user's own message as extra", mode, code, items)
		}
	}

	// A second mirror pass has nothing to do.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Removed != 0 || a.Moved != 0 {
		t.Fatalf("second mirror pass: exit %d, copied %d, removed %d, moved %d; want 0, 0, 0, 0\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
}

// expungeAt expunges from alice's mailbox at s the messages match picks.
func expungeAt(t *testing.T, s *dovecot.Server, password, mailbox string, match func(string) bool) int {
	t.Helper()
	return expungeAs(t, s, "alice", password, mailbox, match)
}

// expungeAs expunges from user's mailbox at s the messages match picks.
func expungeAs(t *testing.T, s *dovecot.Server, user, password, mailbox string, match func(string) bool) int {
	t.Helper()
	c := imapLoginAs(t, s, user, password)
	set := uidsOf(t, c, mailbox, match)
	nums, _ := set.Nums()
	if len(nums) == 0 {
		return 0
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		t.Fatal(err)
	}
	return len(nums)
}

// TestE2EMirrorCaps: a POP3 source. A pass that would remove more than the
// cap removes nothing and exits 3; a dry run lists the removals; a higher
// cap lets them through; a maildrop that suddenly lists nothing removes
// nothing and exits 3.
func TestE2EMirrorCaps(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(100)
	seed(t, p, msgs)
	r := runInProcess(t, p.getenv, p.copyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 100 {
		t.Fatalf("bulk pass: exit %d, copied %d\n%s", r.code, a.Copied, r.stderr)
	}
	gone := func(s string) bool {
		var n int
		_, err := fmt.Sscanf(s, "generated %d", &n)
		return err == nil && n < 60
	}
	if n := expungeAt(t, p.src, srcPassword, "INBOX", gone); n != 60 {
		t.Fatalf("expunged %d at the source, want 60", n)
	}

	// 60 removals, over the default cap of 50 (10 % of 100, at least 50).
	r = runInProcess(t, p.getenv, p.copyArgs("--mirror")...)
	a := r.report.Accounts[0]
	if r.code != exitPartial || a.Removed != 0 || a.MirrorHeld != 60 || a.MirrorCap != 50 || len(a.MirrorActions) != 60 {
		t.Fatalf("over the cap: exit %d, removed %d, held %d, cap %d, listed %d; want 3, 0, 60, 50, 60\n%s",
			r.code, a.Removed, a.MirrorHeld, a.MirrorCap, len(a.MirrorActions), r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 100 {
		t.Fatalf("a pass over the cap removed something: %d messages left, want 100", n)
	}
	// The text summary says what was held back.
	r = runInProcess(t, p.getenv, append(slices.DeleteFunc(p.copyArgs("--mirror"), func(s string) bool { return s == "--json" }), "--max-delete-percent", "50")...)
	if r.code != exitPartial || !strings.Contains(r.stdout, "over the cap of 50") || !strings.Contains(r.stdout, "held back: remove") {
		t.Fatalf("text summary over the cap (exit %d):\n%s", r.code, r.stdout)
	}

	r = runInProcess(t, p.getenv, p.copyArgs("--mirror", "--max-delete", "60", "--dry-run")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 60 || len(a.MirrorActions) != 60 {
		t.Fatalf("dry run: exit %d, removed %d, listed %d; want 0, 60, 60\n%s", r.code, a.Removed, len(a.MirrorActions), r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 100 {
		t.Fatalf("the dry run removed something: %d messages left, want 100", n)
	}

	r = runInProcess(t, p.getenv, p.copyArgs("--mirror", "--max-delete", "60")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 60 || a.MirrorHeld != 0 {
		t.Fatalf("within the cap: exit %d, removed %d, held %d; want 0, 60, 0\n%s", r.code, a.Removed, a.MirrorHeld, r.stderr)
	}
	assertSameMultiset(t, sourceServed(t, p), destBodies(destMessages(t, p, "INBOX")))
	if r := runInProcess(t, p.getenv, "status", "--state", p.state); r.code != exitOK || !strings.Contains(r.stdout, "60 of them removed from the destination by mirror passes") {
		t.Errorf("status after the removals (exit %d) does not count them:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The maildrop suddenly lists nothing: cannot tell.
	if n := expungeAt(t, p.src, srcPassword, "INBOX", func(string) bool { return true }); n != 40 {
		t.Fatalf("expunged %d at the source, want 40", n)
	}
	r = runInProcess(t, p.getenv, p.copyArgs("--mirror", "--max-delete", "1000")...)
	if a := r.report.Accounts[0]; r.code != exitPartial || a.Removed != 0 || len(a.MirrorUnsure) != 1 {
		t.Fatalf("empty maildrop: exit %d, removed %d, cannot tell %v; want 3, 0, one\n%s", r.code, a.Removed, a.MirrorUnsure, r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 40 {
		t.Fatalf("an empty maildrop removed copies: %d left, want 40", n)
	}
}

// TestE2EMirrorEmptyFolder: an IMAP source folder that suddenly lists
// nothing removes nothing and exits 3, while a deletion in another folder
// is mirrored; a folder emptied by moving every message into another is
// mirrored as moves (nothing appended again) and is no folder that cannot
// tell.
func TestE2EMirrorEmptyFolder(t *testing.T) {
	p := imapPair(t)
	base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		if err := p.src.SeedMaildir("alice", "Later", mirrorMessage("Later", i), "F", base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		for _, f := range []string{"INBOX", "Work"} {
			if err := p.src.SeedMaildir("alice", f, mirrorMessage(f, i), "", base.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK || r.report.Accounts[0].Copied != 25 {
		t.Fatalf("bulk pass: exit %d\n%s", r.code, r.stderr)
	}
	expungeAt(t, p.src, srcPassword, "Work", func(string) bool { return true })
	expungeAt(t, p.src, srcPassword, "INBOX", subjectIn("INBOX", 0, 2))
	c := imapLogin(t, p.src, srcPassword)
	if _, err := c.Move(uidsOf(t, c, "Later", func(string) bool { return true }), "INBOX").Wait(); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	a := r.report.Accounts[0]
	if r.code != exitPartial || a.Removed != 2 || a.Moved != 5 || a.Copied != 0 || len(a.MirrorUnsure) != 1 || a.MirrorUnsure[0].Folder != "Work" {
		t.Fatalf("emptied folders: exit %d, removed %d, moved %d, copied %d, cannot tell %v; want 3, 2, 5, 0, Work\n%s",
			r.code, a.Removed, a.Moved, a.Copied, a.MirrorUnsure, r.stderr)
	}
	if n := len(destMessages(t, p, "Work")); n != 10 {
		t.Errorf("the emptied folder's copies were removed: %d left, want 10", n)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Later": "Later"}, nil)
	// Later, emptied by moves, is sure from now on; Work still cannot tell.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitPartial || len(a.MirrorUnsure) != 1 || a.MirrorUnsure[0].Folder != "Work" || a.Moved+a.Copied+a.Removed != 0 {
		t.Fatalf("the pass after: exit %d, cannot tell %v, moved %d, copied %d, removed %d; want 3, Work only, nothing done\n%s",
			r.code, a.MirrorUnsure, a.Moved, a.Copied, a.Removed, r.stderr)
	}

	// The user did empty Work: --mirror-allow-empty lets its removals
	// through, within the caps (10 over --max-delete 9: held back).
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror", "--mirror-allow-empty", "Work", "--max-delete", "9")...)
	if a := r.report.Accounts[0]; r.code != exitPartial || a.Removed != 0 || a.MirrorHeld != 10 || !a.MirrorOverCap || len(a.MirrorUnsure) != 0 {
		t.Fatalf("--mirror-allow-empty over the cap: exit %d, removed %d, held %d, cannot tell %v; want 3, 0, 10, none\n%s",
			r.code, a.Removed, a.MirrorHeld, a.MirrorUnsure, r.stderr)
	}
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror", "--mirror-allow-empty", "Work")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 10 || a.MirrorHeld != 0 || len(a.MirrorUnsure) != 0 {
		t.Fatalf("--mirror-allow-empty Work: exit %d, removed %d, held %d, cannot tell %v; want 0, 10, 0, none\n%s",
			r.code, a.Removed, a.MirrorHeld, a.MirrorUnsure, r.stderr)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Later": "Later", "Work": "Work"}, nil)
	// Settled: later passes need no override.
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || len(a.MirrorUnsure) != 0 || a.Moved+a.Copied+a.Removed != 0 {
		t.Fatalf("the pass after the override: exit %d, cannot tell %v, moved %d, copied %d, removed %d; want 0, nothing\n%s",
			r.code, a.MirrorUnsure, a.Moved, a.Copied, a.Removed, r.stderr)
	}
}

// TestE2EMirrorCrash: a mirror pass killed at each step of its removals
// and moves (intent committed; server done, outcome not committed), then
// run again, leaves the destination equal to the source: nothing lost,
// nothing twice.
func TestE2EMirrorCrash(t *testing.T) {
	for _, ledger := range crashLedgers {
		for i, point := range []string{"removing:1", "removed:1", "moving:1", "moved:1"} {
			if onLedger(ledger, i == 0) {
				t.Run(ledgerName(ledger, strings.Split(point, ":")[0]), func(t *testing.T) { testMirrorCrash(t, ledger, point) })
			}
		}
	}
}

func testMirrorCrash(t *testing.T, ledger, point string) {
	p := imapPair(t)
	onPostgres(t, p, ledger)
	base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := range 10 {
		for _, f := range []string{"INBOX", "Work"} {
			if err := p.src.SeedMaildir("alice", f, mirrorMessage(f, i), "S", base.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK {
		t.Fatalf("bulk pass: exit %d\n%s", r.code, r.stderr)
	}
	expungeAt(t, p.src, srcPassword, "INBOX", subjectIn("INBOX", 0, 3))
	c := imapLogin(t, p.src, srcPassword)
	if _, err := c.Move(uidsOf(t, c, "INBOX", subjectIn("INBOX", 3, 6)), "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=" + point}, p.imapCopyArgs("--mirror")...)
	if r.code != -1 {
		t.Fatalf("the crashpoint %s was not reached: exit %d\n%s", point, r.code, r.stderr)
	}
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 {
		t.Fatalf("after the crash: exit %d, copied %d (nothing is appended again)\n%s", r.code, a.Copied, r.stderr)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Work": "Work"}, nil)
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Removed != 0 || a.Moved != 0 {
		t.Fatalf("a pass after: exit %d, copied %d, removed %d, moved %d; want nothing\n%s", r.code, a.Copied, a.Removed, a.Moved, r.stderr)
	}
}

// TestFaultMirror: mirror passes whose destination connections are cut at
// points spread over the pass (both directions, every connection: the
// retry settles what the first attempt left until it is cut too), each
// followed by a clean pass: after each, the destination equals the source
// folder by folder, nothing lost, nothing twice.
func TestFaultMirror(t *testing.T) {
	for _, ledger := range crashLedgers {
		if onLedger(ledger, false) {
			t.Run(ledger, func(t *testing.T) { testFaultMirror(t, ledger) })
		}
	}
}

func testFaultMirror(t *testing.T, ledger string) {
	p := imapPair(t)
	onPostgres(t, p, ledger)
	proxy := startProxy(t, p.dst.IMAPAddr())
	args := func(extra ...string) []string {
		return append([]string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), "imap://alice@" + proxy.Addr() + "?tls=none",
			"--allow-plaintext", "--tls-ca", p.src.CAFile(), "--state", p.state, "--json", "--progress", "none",
			"--mirror", "--attempts", "2", "--retry-backoff", "10ms"}, extra...)
	}
	base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
	next := map[string]int{}
	deliver := func(folder string, n int) {
		for range n {
			i := next[folder]
			next[folder]++
			if err := p.src.SeedMaildir("alice", folder, mirrorMessage(folder, i), "S", base.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver("INBOX", 12)
	deliver("Work", 12)
	if r := runInProcess(t, p.getenv, args()...); r.code != exitOK {
		t.Fatalf("bulk pass: exit %d\n%s", r.code, r.stderr)
	}
	src := imapLogin(t, p.src, srcPassword)
	folders := map[string]string{"INBOX": "INBOX", "Work": "Work"}
	// Even rounds cut what the server says, odd ones what mailferry sends,
	// at offsets found to land from the login to the last mirror command.
	// (They cut the logins, LIST, SUBSCRIBE, the moves' SELECT and UID
	// MOVE, the removals' UID STORE, and the next attempt's settling of
	// what the cut left.)
	offsets := []int64{150, 100, 700, 250, 1100, 300, 1400, 350, 1700, 400, 2000, 450}
	for round, after := range offsets {
		from, to := "INBOX", "Work"
		if round%2 == 1 {
			from, to = to, from
		}
		// The oldest message of from is deleted, the next one moved, and
		// a new one arrives.
		set := uidsOf(t, src, from, func(string) bool { return true })
		uids, _ := set.Nums()
		if len(uids) < 2 {
			t.Fatalf("round %d: %s holds %d messages", round, from, len(uids))
		}
		var del, mv imap.UIDSet
		del.AddNum(uids[0])
		mv.AddNum(uids[1])
		if err := src.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := src.UIDExpunge(del).Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Move(mv, to).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := src.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
		deliver(to, 1)

		dir := faultproxy.ServerToClient
		if round%2 == 1 {
			dir = faultproxy.ClientToServer
		}
		if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{{Kind: faultproxy.Cut, Dir: dir, After: after}}}); err != nil {
			t.Fatal(err)
		}
		r := runInProcess(t, p.getenv, args()...)
		if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
			t.Fatal(err)
		}
		errLine := ""
		if len(r.report.Accounts) > 0 {
			errLine = r.report.Accounts[0].Error
		}
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.Contains(l, "retrying") {
				errLine += " [retried after: " + l[strings.Index(l, "error="):] + "]"
			}
		}
		t.Logf("round %d: cut %s after %d bytes: exit %d %s", round, dir, after, r.code, errLine)
		if r.code == exitOK {
			assertMirrored(t, p, folders, nil)
		}
		if r = runInProcess(t, p.getenv, args()...); r.code != exitOK {
			t.Fatalf("round %d: the clean pass after the cut: exit %d\n%s", round, r.code, r.stderr)
		}
		assertMirrored(t, p, folders, nil)
		if t.Failed() {
			t.Fatalf("round %d (cut %s after %d bytes): the destination differs from the source", round, dir, after)
		}
	}
}

// TestE2EMirrorConfig: the config's mirror key, top-level and per account
// ([[account]] and the accounts file's column), max_delete and
// max_delete_percent (the smaller cap wins), and the flags over them.
func TestE2EMirrorConfig(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"alice": srcPassword, "bob": srcPassword, "carol": srcPassword}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-msrc", CA: ca, Users: users})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-mdst", CA: ca, Users: users})
	for u := range users {
		for i := range 10 {
			if err := src.Deliver(u, "INBOX", mirrorMessage(u, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "more.csv"), []byte("source_user,source_password_env,dest_password_env,mirror\ncarol,T_MIRROR_PW,T_MIRROR_PW,true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "migrate.toml")
	writeConfig := func(caps string, aliceKeys ...string) {
		cfg := fmt.Sprintf(`state = "state.db"
mirror = true
%s
accounts_file = "more.csv"
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
source_user = "alice"
source_password_env = "T_MIRROR_PW"
dest_password_env = "T_MIRROR_PW"
%s
[[account]]
source_user = "bob"
source_password_env = "T_MIRROR_PW"
dest_password_env = "T_MIRROR_PW"
mirror = false
`, caps, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile(), strings.Join(aliceKeys, "\n"))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	getenv := func(string) string { return "" }
	t.Setenv("T_MIRROR_PW", srcPassword)
	run := func(extra ...string) runResult {
		t.Helper()
		return runInProcess(t, getenv, append([]string{"run", "-c", path, "--json", "--progress", "none"}, extra...)...)
	}
	byUser := func(r runResult) map[string]*pipeline.Stats {
		out := map[string]*pipeline.Stats{}
		for _, a := range r.report.Accounts {
			for u := range users {
				if strings.Contains(a.Account, "://"+u+"@") || a.Account == u {
					out[u] = a
				}
			}
		}
		if len(out) != len(r.report.Accounts) {
			t.Fatalf("accounts in the report: %d, named %d", len(r.report.Accounts), len(out))
		}
		return out
	}
	count := func(u string) int {
		n, err := dst.MailboxCount(u, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	writeConfig("max_delete = 3")
	if r := run(); r.code != exitOK || r.report.Totals.Copied != 30 {
		t.Fatalf("bulk pass: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	for u := range users {
		if n := expungeAs(t, src, u, srcPassword, "INBOX", subjectIn(u, 0, 4)); n != 4 {
			t.Fatalf("%s: expunged %d at the source, want 4", u, n)
		}
	}
	// alice (the top-level key) and carol (the accounts file's column)
	// mirror, over max_delete = 3: held back; bob (mirror = false) keeps.
	r := run()
	s := byUser(r)
	if r.code != exitPartial || s["alice"].MirrorHeld != 4 || s["alice"].MirrorCap != 3 || s["carol"].MirrorHeld != 4 || s["bob"].MirrorHeld != 0 {
		t.Fatalf("over max_delete: exit %d, held alice %d (cap %d), carol %d, bob %d; want 3, 4 (3), 4, 0\n%s",
			r.code, s["alice"].MirrorHeld, s["alice"].MirrorCap, s["carol"].MirrorHeld, s["bob"].MirrorHeld, r.stderr)
	}
	r = run("--max-delete", "4")
	s = byUser(r)
	if r.code != exitOK || s["alice"].Removed != 4 || s["carol"].Removed != 4 || s["bob"].Removed != 0 {
		t.Fatalf("--max-delete 4: exit %d, removed alice %d, carol %d, bob %d; want 0, 4, 4, 0\n%s",
			r.code, s["alice"].Removed, s["carol"].Removed, s["bob"].Removed, r.stderr)
	}
	for u, want := range map[string]int{"alice": 6, "carol": 6, "bob": 10} {
		if n := count(u); n != want {
			t.Errorf("%s's destination INBOX holds %d, want %d", u, n, want)
		}
	}

	// Both caps: the smaller (10 % of 6 copied: 0) wins over max_delete.
	expungeAs(t, src, "alice", srcPassword, "INBOX", subjectIn("alice", 4, 6))
	writeConfig("max_delete = 3\nmax_delete_percent = 10")
	r = run("--only", "alice")
	if a := r.report.Accounts[0]; r.code != exitPartial || a.MirrorHeld != 2 || !a.MirrorOverCap || a.MirrorCap != 0 || a.Removed != 0 {
		t.Fatalf("max_delete_percent: exit %d, held %d, removed %d; want 3, 2, 0\n%s", r.code, a.MirrorHeld, a.Removed, r.stderr)
	}
	// --mirror=false turns it off for every account.
	if r = run("--only", "alice", "--mirror=false"); r.code != exitOK || r.report.Accounts[0].MirrorHeld != 0 || count("alice") != 6 {
		t.Fatalf("--mirror=false: exit %d, held %d, %d left; want 0, 0, 6\n%s", r.code, r.report.Accounts[0].MirrorHeld, count("alice"), r.stderr)
	}
	r = run("--only", "alice", "--max-delete-percent", "50")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 2 || count("alice") != 4 {
		t.Fatalf("--max-delete-percent 50: exit %d, removed %d, %d left; want 0, 2, 4\n%s", r.code, a.Removed, count("alice"), r.stderr)
	}

	// Maildrops emptied at the source: cannot tell, until alice's
	// mirror_allow_empty, run's --mirror-allow-empty (for carol, in a dry
	// run) and carol's column in the accounts file say they were emptied
	// on purpose.
	expungeAs(t, src, "alice", srcPassword, "INBOX", func(string) bool { return true })
	expungeAs(t, src, "carol", srcPassword, "INBOX", func(string) bool { return true })
	writeConfig("max_delete = 10")
	r = run("--only", "alice,carol")
	s = byUser(r)
	if r.code != exitPartial || len(s["alice"].MirrorUnsure) != 1 || len(s["carol"].MirrorUnsure) != 1 || s["alice"].Removed+s["carol"].Removed != 0 {
		t.Fatalf("emptied maildrops: exit %d, cannot tell alice %v, carol %v; want 3, both\n%s", r.code, s["alice"].MirrorUnsure, s["carol"].MirrorUnsure, r.stderr)
	}
	writeConfig("max_delete = 10", `mirror_allow_empty = ["INBOX"]`)
	r = run("--only", "alice,carol")
	s = byUser(r)
	if r.code != exitPartial || s["alice"].Removed != 4 || len(s["alice"].MirrorUnsure) != 0 || len(s["carol"].MirrorUnsure) != 1 || s["carol"].Removed != 0 {
		t.Fatalf("mirror_allow_empty for alice: exit %d, removed alice %d (cannot tell %v), carol %d (%v); want 3, 4 (none), 0 (one)\n%s",
			r.code, s["alice"].Removed, s["alice"].MirrorUnsure, s["carol"].Removed, s["carol"].MirrorUnsure, r.stderr)
	}
	r = run("--only", "carol", "--mirror-allow-empty", "INBOX", "--dry-run")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 6 || len(a.MirrorActions) != 6 || len(a.MirrorUnsure) != 0 || count("carol") != 6 {
		t.Fatalf("--mirror-allow-empty INBOX --dry-run for carol: exit %d, would remove %d (%d listed), cannot tell %v, %d left; want 0, 6 (6), none, 6\n%s",
			r.code, a.Removed, len(a.MirrorActions), a.MirrorUnsure, count("carol"), r.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "more.csv"), []byte("source_user,source_password_env,dest_password_env,mirror,mirror_allow_empty\ncarol,T_MIRROR_PW,T_MIRROR_PW,true,Trash; INBOX\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run("--only", "carol")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Removed != 6 || len(a.MirrorUnsure) != 0 {
		t.Fatalf("the accounts file's mirror_allow_empty for carol: exit %d, removed %d, cannot tell %v; want 0, 6, none\n%s", r.code, a.Removed, a.MirrorUnsure, r.stderr)
	}
	for u, want := range map[string]int{"alice": 0, "carol": 0, "bob": 10} {
		if n := count(u); n != want {
			t.Errorf("%s's destination INBOX holds %d, want %d", u, n, want)
		}
	}
}

// TestE2EMirrorInterrupt: Ctrl-C during a mirror pass's moves, and during
// its removals (the built binary, SIGINT while a group's command is in
// flight): the group in flight is settled through the ledger (nothing left
// removing or moving), no other move, removal or folder deletion starts,
// the run exits 130; the same command run again finishes exactly: the
// destination equals the source, nothing appended again, nothing twice.
func TestE2EMirrorInterrupt(t *testing.T) {
	for _, c := range []struct {
		point string
		// The groups in the pass: moves INBOX -> Work (3), Work ->
		// Projects (4); removals from INBOX (3), Work (2) and the deleted
		// folder Old (4).
		movedFirst, removedFirst []int // what the interrupted run may have done: one group
	}{
		{"moving", []int{3, 4}, []int{0}},
		{"removing", []int{7}, []int{3, 2, 4}},
	} {
		t.Run(c.point, func(t *testing.T) {
			p := imapPair(t)
			base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
			for folder, n := range map[string]int{"INBOX": 10, "Work": 10, "Projects": 2, "Old": 4} {
				for i := range n {
					if err := p.src.SeedMaildir("alice", folder, mirrorMessage(folder, i), "S", base.Add(time.Duration(i)*time.Minute)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK || r.report.Accounts[0].Copied != 26 {
				t.Fatalf("bulk pass: exit %d\n%s", r.code, r.stderr)
			}
			expungeAt(t, p.src, srcPassword, "INBOX", subjectIn("INBOX", 0, 3))
			expungeAt(t, p.src, srcPassword, "Work", subjectIn("Work", 0, 2))
			src := imapLogin(t, p.src, srcPassword)
			if _, err := src.Move(uidsOf(t, src, "INBOX", subjectIn("INBOX", 3, 6)), "Work").Wait(); err != nil {
				t.Fatal(err)
			}
			if _, err := src.Move(uidsOf(t, src, "Work", subjectIn("Work", 2, 6)), "Projects").Wait(); err != nil {
				t.Fatal(err)
			}
			if err := src.Unselect().Wait(); err != nil {
				t.Fatal(err)
			}
			if err := src.Delete("Old").Wait(); err != nil {
				t.Fatal(err)
			}

			r := runSubprocess(t, p, []string{"MAILFERRY_TEST_SIGNALPOINT=" + c.point + ":1"}, p.imapCopyArgs("--mirror")...)
			if !strings.Contains(r.stderr, "signalpoint "+c.point) {
				t.Fatalf("the signal point %s was not reached: exit %d\n%s", c.point, r.code, r.stderr)
			}
			a := r.report.Accounts[0]
			if r.code != exitInterrupted || !slices.Contains(c.movedFirst, a.Moved) || !slices.Contains(c.removedFirst, a.Removed) || a.Copied != 0 || len(a.FoldersDeleted) != 0 {
				t.Fatalf("interrupted at %s: exit %d, moved %d, removed %d, copied %d, folders deleted %q; want %d, moved one of %v, removed one of %v, nothing copied or deleted\n%s",
					c.point, r.code, a.Moved, a.Removed, a.Copied, a.FoldersDeleted, exitInterrupted, c.movedFirst, c.removedFirst, r.stderr)
			}
			st := runInProcess(t, p.getenv, "status", "--state", p.state, "--json")
			var sr statusReport
			if err := json.Unmarshal([]byte(st.stdout), &sr); err != nil || len(sr.Accounts) != 1 {
				t.Fatalf("status --json: %v\n%s%s", err, st.stdout, st.stderr)
			}
			if s := sr.Accounts[0]; s.Mirroring != 0 || s.Pending != 0 || s.Removed != a.Removed {
				t.Errorf("status after the interrupt: %d removals or moves in flight, %d pending, %d removed; want 0, 0, %d", s.Mirroring, s.Pending, s.Removed, a.Removed)
			}
			boxes, err := p.dst.Mailboxes("alice")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(boxes, "Old") {
				t.Errorf("the interrupted pass deleted the destination folder Old: %q", boxes)
			}

			r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
			b := r.report.Accounts[0]
			if r.code != exitOK || b.Copied != 0 || a.Moved+b.Moved != 7 || a.Removed+b.Removed != 9 || !slices.Equal(b.FoldersDeleted, []string{"Old"}) {
				t.Fatalf("the run after: exit %d, copied %d, moved %d+%d, removed %d+%d, folders deleted %q; want 0, 0, 7 in all, 9 in all, Old\n%s",
					r.code, b.Copied, a.Moved, b.Moved, a.Removed, b.Removed, b.FoldersDeleted, r.stderr)
			}
			assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Work": "Work", "Projects": "Projects"}, nil)
			if r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK || r.report.Accounts[0].Moved+r.report.Accounts[0].Removed+r.report.Accounts[0].Copied != 0 {
				t.Fatalf("a pass after: exit %d, %+v; want nothing to do\n%s", r.code, r.report.Accounts[0], r.stderr)
			}
		})
	}
}

// TestE2EMirrorRename: a source folder renamed whose destination folder
// holds only mailferry's copies is renamed on the destination (RENAME: the
// folder keeps its UIDVALIDITY and UIDs on Dovecot); one where the user
// filed a message of their own is mirrored as moves, and keeps that
// message, as is one with a folder under it (a RENAME would carry it
// along). Killed at the rename's steps (intent recorded; RENAME done,
// not recorded), the next run settles it: the destination equals the
// source, nothing appended again, nothing twice; also when the server gave
// the renamed folder a new UIDVALIDITY (the copies keep their UIDs when
// they still have them, else they stay with unknown UIDs).
func TestE2EMirrorRename(t *testing.T) {
	for _, c := range []struct {
		name, point string
		// renumber: what the destination does to the renamed folder
		// before the next run settles the rename.
		renumber string // "": nothing; "validity": a new UIDVALIDITY; "uids": new UIDs too
	}{
		{"rename", "", ""},
		{"crash before", "renaming:1", ""},
		{"crash after", "renamed:1", ""},
		{"new uidvalidity", "renamed:1", "validity"},
		{"new uids", "renamed:1", "uids"},
	} {
		point := c.point
		t.Run(c.name, func(t *testing.T) {
			p := imapPair(t)
			base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
			for folder, n := range map[string]int{"INBOX": 3, "Projects": 6, "Lists": 4, "Team": 2, "Team.Sub": 2} {
				for i := range n {
					if err := p.src.SeedMaildir("alice", folder, mirrorMessage(folder, i), "F", base.Add(time.Duration(i)*time.Minute)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK || r.report.Accounts[0].Copied != 17 {
				t.Fatalf("bulk pass: exit %d\n%s", r.code, r.stderr)
			}
			dst := imapLogin(t, p.dst, dstPassword)
			own := []byte("Message-ID: <own@example.test>\r\nSubject: filed at the destination\r\n\r\nmine\r\n")
			app := dst.Append("Lists", int64(len(own)), nil)
			if _, err := app.Write(own); err != nil {
				t.Fatal(err)
			}
			if err := app.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := app.Wait(); err != nil {
				t.Fatal(err)
			}
			uidValidity := func(mailbox string) uint32 {
				st, err := dst.Status(mailbox, &imap.StatusOptions{UIDValidity: true}).Wait()
				if err != nil {
					t.Fatalf("STATUS %s: %v", mailbox, err)
				}
				return st.UIDValidity
			}
			projects, team := uidValidity("Projects"), uidValidity("Team")
			src := imapLogin(t, p.src, srcPassword)
			for from, to := range map[string]string{"Projects": "Archive", "Lists": "Lists2", "Team": "Crew"} {
				if err := src.Rename(from, to, nil).Wait(); err != nil {
					t.Fatal(err)
				}
			}

			if point != "" {
				r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=" + point}, p.imapCopyArgs("--mirror")...)
				if r.code != -1 {
					t.Fatalf("the crashpoint %s was not reached: exit %d\n%s", point, r.code, r.stderr)
				}
			}
			if c.renumber == "uids" {
				// Each message copied within the folder, the original
				// expunged: new UIDs.
				if _, err := dst.Select("Archive", nil).Wait(); err != nil {
					t.Fatal(err)
				}
				all := uidsOf(t, dst, "Archive", func(string) bool { return true })
				if _, err := dst.Copy(all, "Archive").Wait(); err != nil {
					t.Fatal(err)
				}
				if err := dst.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
					t.Fatal(err)
				}
				if err := dst.UIDExpunge(all).Close(); err != nil {
					t.Fatal(err)
				}
				if err := dst.Unselect().Wait(); err != nil {
					t.Fatal(err)
				}
			}
			if c.renumber != "" {
				if out, err := p.dst.Doveadm("mailbox", "update", "-u", "alice", "--uid-validity", fmt.Sprint(projects+1000), "Archive"); err != nil {
					t.Fatalf("doveadm mailbox update: %v\n%s", err, out)
				}
				projects += 1000
			}
			r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
			a := r.report.Accounts[0]
			if r.code != exitOK || a.Copied != 0 || a.Removed != 0 {
				t.Fatalf("mirror pass: exit %d, copied %d, removed %d; want 0, 0, 0\n%s", r.code, a.Copied, a.Removed, r.stderr)
			}
			if point == "" {
				if a.Moved != 14 || !slices.Contains(a.FoldersRenamed, "Projects -> Archive") {
					t.Errorf("mirror pass: moved %d, folders renamed %q; want 14, Projects -> Archive among them", a.Moved, a.FoldersRenamed)
				}
				if got := uidValidity("Crew"); got == team {
					t.Errorf("destination Team, which has a folder under it, was renamed to Crew (UIDVALIDITY %d), not mirrored as moves", got)
				}
				if !strings.Contains(r.stderr, "renamed on the destination, as at the source") {
					t.Errorf("the log does not say the folder was renamed:\n%s", r.stderr)
				}
			}
			if want := c.renumber == "uids"; strings.Contains(r.stderr, "renumbered a renamed folder") != want {
				t.Errorf("the log says the renamed folder was renumbered: %v, want %v\n%s", !want, want, r.stderr)
			}
			if point != "renaming:1" {
				// Renamed, not emptied into a new folder: same UIDVALIDITY.
				if got := uidValidity("Archive"); got != projects {
					t.Errorf("destination Archive has UIDVALIDITY %d, want Projects' %d (RENAME, not moves)", got, projects)
				}
			}
			assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Archive": "Archive", "Lists2": "Lists2", "Crew": "Crew", "Crew.Sub": "Crew/Sub"}, nil)
			boxes, err := p.dst.Mailboxes("alice")
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(boxes, "Projects") || !slices.Contains(boxes, "Lists") {
				t.Errorf("destination folders: %q; want no Projects, and Lists with the user's message", boxes)
			}
			if l := destMessages(t, p, "Lists"); len(l) != 1 || string(l[0].body) != string(own) {
				t.Errorf("destination Lists holds %d messages, want only the user's own", len(l))
			}
			if r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...); r.code != exitOK || r.report.Accounts[0].Moved+r.report.Accounts[0].Removed+r.report.Accounts[0].Copied != 0 {
				t.Fatalf("a pass after: exit %d, %+v; want nothing to do\n%s", r.code, r.report.Accounts[0], r.stderr)
			}
		})
	}
}
