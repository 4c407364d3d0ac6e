package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestE2EMatchedCopySharedByAccounts: two accounts of one ledger feed one
// destination INBOX (alice's old POP3 box and bob's IMAP box, which hold
// two messages alike). Alice's copies them; bob's first run matches both
// copies (the same bytes) instead of sending them again, so the copies are
// named by both accounts' entries. Then bob deletes one at his source and
// files the other into Work, and a mirror pass of bob's account must touch
// neither copy: alice's entries name them, so the removal drops bob's entry
// only and the move becomes a copy into Work. Alice's verify stays clean.
// Then a move cut short (the crashpoint "moving"), whose copy a third
// account's first run finds before the move is settled: the ledger does
// not let her adopt a copy being moved, so she copies her own, and the
// settling moves bob's.
func TestE2EMatchedCopySharedByAccounts(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-shsrc", CA: ca, Separator: ".",
		Users: map[string]string{"alice": srcPassword, "bob": srcPassword, "carol": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-shdst", CA: ca, Users: map[string]string{"alice": dstPassword}})
	p.state = p.dir + "/state.db"
	date := time.Date(2022, 3, 1, 8, 0, 0, 0, time.UTC)
	msg := func(s string) []byte {
		// A comment after the msg-id, as some relays add: matching reads
		// the msg-id on both sides.
		return []byte(fmt.Sprintf("Message-ID: <%s@example.test> (old server)\r\nSubject: %s\r\n\r\nbody of %s\r\n", s, s, s))
	}
	for _, s := range []struct{ user, subject string }{
		{"alice", "shared-1"}, {"alice", "shared-2"},
		{"bob", "shared-1"}, {"bob", "shared-2"}, {"bob", "bob-only"}, {"bob", "bob-stays"},
		{"carol", "bob-only"}, // matched later (below)
	} {
		if err := p.src.SeedMaildir(s.user, "INBOX", msg(s.subject), "", date); err != nil {
			t.Fatal(err)
		}
	}
	dst := "imaps://alice@" + p.dst.IMAPSAddr()
	alice := []string{"pop3s://alice@" + p.src.POP3SAddr(), dst, "--tls-ca", p.src.CAFile(), "--state", p.state}
	bob := []string{"imaps://bob@" + p.src.IMAPSAddr(), dst, "--tls-ca", p.src.CAFile(), "--state", p.state,
		"--json", "--progress", "none", "--mirror"}
	run := func(args ...string) runResult {
		t.Helper()
		r := runInProcess(t, p.getenv, args...)
		if r.code != exitOK || strings.HasPrefix(args[0], "copy") && len(r.report.Accounts) != 1 {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	if a := run(append([]string{"copy"}, append(alice, "--json", "--progress", "none")...)...).report.Accounts[0]; a.Copied != 2 {
		t.Fatalf("alice's copy: copied %d, want 2", a.Copied)
	}
	if a := run(append([]string{"copy"}, bob...)...).report.Accounts[0]; a.Copied != 2 || a.Matched != 2 {
		t.Fatalf("bob's first copy: copied %d, matched %d; want 2, 2", a.Copied, a.Matched)
	}

	// Bob deletes "shared-1" and files "shared-2" into Work.
	src := imapLoginAs(t, p.src, "bob", srcPassword)
	if err := src.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	del := uidsOf(t, src, "INBOX", func(s string) bool { return s == "shared-1" })
	if err := src.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.UIDExpunge(del).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Move(uidsOf(t, src, "INBOX", func(s string) bool { return s == "shared-2" }), "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := src.Logout().Wait(); err != nil {
		t.Fatal(err)
	}

	a := run(append([]string{"copy"}, bob...)...).report.Accounts[0]
	t.Logf("bob's mirror pass: copied %d, removed %d, moved %d", a.Copied, a.Removed, a.Moved)
	if a.Removed != 0 || a.Moved != 0 || a.Copied != 1 {
		t.Errorf("bob's mirror pass: copied %d, removed %d, moved %d; want 1, 0, 0 (alice's copies are not bob's to take)",
			a.Copied, a.Removed, a.Moved)
	}
	inbox := destMessages(t, p, "INBOX")
	for _, s := range []string{"shared-1", "shared-2"} {
		if n := countSubject(inbox, s); n != 1 {
			t.Errorf("destination INBOX holds %q %d times, want alice's copy once", s, n)
		}
	}
	if n := countSubject(destMessages(t, p, "Work"), "shared-2"); n != 1 {
		t.Errorf("destination Work holds \"shared-2\" %d times, want bob's copy once", n)
	}
	// Each account's verify is clean; the other accounts' messages in
	// INBOX are extras to it.
	verifyClean := func(accounts map[string][]string) {
		t.Helper()
		for name, args := range accounts {
			v := run(append([]string{"verify"}, args...)...)
			if !strings.Contains(v.stdout, "0 missing") || !strings.Contains(v.stdout, "OK: every source message is on the destination, once") {
				t.Errorf("%s's verify:\n%s%s", name, v.stdout, v.stderr)
			}
		}
	}
	verifyClean(map[string][]string{"alice": alice, "bob": bob[:6]})
	// A second mirror pass has nothing left to do.
	if a := run(append([]string{"copy"}, bob...)...).report.Accounts[0]; a.Removed != 0 || a.Moved != 0 || a.Copied != 0 {
		t.Errorf("bob's second mirror pass: copied %d, removed %d, moved %d; want 0, 0, 0", a.Copied, a.Removed, a.Moved)
	}

	// A move cut short: bob files "bob-only" (his own copy, in INBOX) into
	// Work, and his mirror pass dies with the move recorded, not made.
	// Carol's old box holds the same message; her first run finds bob's
	// copy before his next run settles the move, and must not adopt it
	// (it is on its way to Work): she copies her own into INBOX, and bob's
	// copy is moved.
	src = imapLoginAs(t, p.src, "bob", srcPassword)
	if _, err := src.Move(uidsOf(t, src, "INBOX", func(s string) bool { return s == "bob-only" }), "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := src.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=moving:1"}, append([]string{"copy"}, bob...)...); r.code != -1 {
		t.Fatalf("bob's mirror pass did not stop at the moving crashpoint: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	carol := []string{"pop3s://carol@" + p.src.POP3SAddr(), dst, "--tls-ca", p.src.CAFile(), "--state", p.state}
	if a := run(append([]string{"copy"}, append(carol, "--json", "--progress", "none")...)...).report.Accounts[0]; a.Matched != 0 || a.Copied != 1 {
		t.Fatalf("carol's copy: matched %d, copied %d; want 0, 1 (bob's copy is being moved)", a.Matched, a.Copied)
	}
	a = run(append([]string{"copy"}, bob...)...).report.Accounts[0]
	if a.Moved != 1 || a.Copied != 0 {
		t.Errorf("bob's pass after the crash: copied %d, moved %d; want 0, 1 (the move settled)", a.Copied, a.Moved)
	}
	if n := countSubject(destMessages(t, p, "INBOX"), "bob-only"); n != 1 {
		t.Errorf("destination INBOX holds \"bob-only\" %d times, want carol's copy once", n)
	}
	if n := countSubject(destMessages(t, p, "Work"), "bob-only"); n != 1 {
		t.Errorf("destination Work holds \"bob-only\" %d times, want bob's copy once", n)
	}
	verifyClean(map[string][]string{"alice": alice, "bob": bob[:6], "carol": carol})
}

// countSubject counts the messages of msgs whose Subject is subject.
func countSubject(msgs []destMsg, subject string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(string(m.body), "\r\nSubject: "+subject+"\r\n") {
			n++
		}
	}
	return n
}
