package main

import (
	"slices"
	"testing"
	"time"
)

// TestE2EKeywordCase: a keyword copied to a Dovecot mailbox that already
// knows it in another case comes back in the mailbox's spelling ($Label
// sent, $label stored). Flag sync and verify must take it for the same
// flag (mapping.SameFlags): verify used to report "flags differ" for it.
func TestE2EKeywordCase(t *testing.T) {
	p := imapPair(t)
	date := time.Date(2020, 5, 1, 9, 15, 42, 0, time.UTC)
	if err := p.dst.SeedMaildir("alice", "INBOX", []byte("Message-ID: <other@example.test>\r\nSubject: other\r\n\r\nalready here\r\n"), "S", date); err != nil {
		t.Fatal(err)
	}
	if _, err := p.dst.Doveadm("flags", "add", "-u", "alice", "$label", "mailbox", "INBOX", "subject", "other"); err != nil {
		t.Fatal(err)
	}
	if err := p.src.SeedMaildir("alice", "INBOX", []byte("Message-ID: <k1@example.test>\r\nSubject: keyword\r\n\r\nlabelled\r\n"), "S", date); err != nil {
		t.Fatal(err)
	}
	if _, err := p.src.Doveadm("flags", "add", "-u", "alice", "$Label", "mailbox", "INBOX", "subject", "keyword"); err != nil {
		t.Fatal(err)
	}

	r := runInProcess(t, p.getenv, p.imapCopyArgs()...)
	if r.code != exitOK || r.report.Accounts[0].Copied != 1 {
		t.Fatalf("copy exited %d, want %d with 1 copied\n%s", r.code, exitOK, r.stderr)
	}
	// The premise: Dovecot keeps the mailbox's spelling.
	var got []string
	for _, m := range destMessages(t, p, "INBOX") {
		if string(m.body) == "Message-ID: <k1@example.test>\r\nSubject: keyword\r\n\r\nlabelled\r\n" {
			for _, f := range m.flags {
				got = append(got, string(f))
			}
		}
	}
	if !slices.Contains(got, "$label") {
		t.Fatalf("the copy's flags are %q, want Dovecot's spelling $label", got)
	}

	for _, mode := range [][]string{nil, {"--full"}} {
		code, rep := imapVerifyJSON(t, p, mode...)
		if a := rep.Accounts[0]; code != exitOK || a.Stats.FlagsDiffer != 0 || a.Stats.Matched != 1 {
			t.Errorf("verify %v: exit %d, stats %+v, want %d with the message matching", mode, code, a.Stats, exitOK)
		}
	}
	r = runInProcess(t, p.getenv, p.imapCopyArgs()...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.FlagsUpdated != 0 || a.AlreadyDone != 1 {
		t.Errorf("second copy: exit %d, %d flags updated, %d already done; want %d, 0, 1\n%s", r.code, a.FlagsUpdated, a.AlreadyDone, exitOK, r.stderr)
	}
}
