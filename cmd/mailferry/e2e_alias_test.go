package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// localhost names a pair's server by "localhost" instead of 127.0.0.1: the
// same server under another name, as an admin renaming a host would.
func localhost(url string) string { return strings.Replace(url, "@127.0.0.1:", "@localhost:", 1) }

// TestE2EHostAliasCopiesNothingTwice is issue 14's scenario: 50 messages
// copied with 127.0.0.1, then the same copy with localhost, with the
// original checkpoint and with a fresh one: nothing is copied again, the
// destination still holds 50, verify says OK, and the dry run says so
// first ("would copy 0 of 50 ...; 50 already on the destination").
func TestE2EHostAliasCopiesNothingTwice(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(50))
	served := sourceServed(t, p)
	if r := runInProcess(t, p.getenv, p.copyArgs()...); r.code != exitOK || r.report.Accounts[0].Copied != 50 {
		t.Fatalf("first copy: exit %d\n%s", r.code, r.stderr)
	}
	src, dst := localhost(p.srcURL()), localhost(p.dstURL())
	aliasArgs := func(state string, extra ...string) []string {
		return append([]string{"copy", src, dst, "--tls-ca", p.src.CAFile(), "--state", state, "--progress", "none"}, extra...)
	}
	// With the original checkpoint the new names are proved to reach the
	// account it knows (its history goes on: 50 already done); with a
	// fresh one destination matching finds the 50 (matched).
	for _, c := range []struct {
		name, state     string
		matched, proved bool
	}{
		{"original checkpoint", p.state, false, true},
		{"fresh checkpoint", filepath.Join(t.TempDir(), "fresh.db"), true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runInProcess(t, p.getenv, aliasArgs(c.state, "--dry-run")...)
			t.Logf("dry run under localhost:\n%s", r.stdout)
			if r.code != exitOK || !strings.Contains(r.stdout, "would copy 0 of 50 messages") ||
				!strings.Contains(r.stdout, "50 already on the destination") && !strings.Contains(r.stdout, "50 already done") {
				t.Errorf("dry run under localhost: exit %d, want it to say nothing would be copied\n%s%s", r.code, r.stdout, r.stderr)
			}
			r = runInProcess(t, p.getenv, aliasArgs(c.state, "--json")...)
			if r.code != exitOK || len(r.report.Accounts) != 1 {
				t.Fatalf("copy under localhost: exit %d\n%s", r.code, r.stderr)
			}
			a := r.report.Accounts[0]
			t.Logf("copy under localhost: copied %d, matched %d, already done %d", a.Copied, a.Matched, a.AlreadyDone)
			want := map[bool]int{true: 50}
			if a.Copied != 0 || a.Matched != want[c.matched] || a.AlreadyDone != want[c.proved] || r.report.Totals.Matched != a.Matched {
				t.Errorf("copy under localhost: copied %d, matched %d, already done %d; want 0, %d, %d",
					a.Copied, a.Matched, a.AlreadyDone, want[c.matched], want[c.proved])
			}
			if proved := strings.Contains(r.stderr, "same mailbox as an account the checkpoint knows"); proved != c.proved {
				t.Errorf("copy under localhost: proved the same mailbox: %v, want %v\n%s", proved, c.proved, r.stderr)
			}
			assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
			v := runInProcess(t, p.getenv, "verify", src, dst, "--tls-ca", p.src.CAFile(), "--state", c.state)
			if v.code != exitOK || !strings.Contains(v.stdout, "OK: every source message is on the destination, once\n") {
				t.Errorf("verify under localhost: exit %d\n%s%s", v.code, v.stdout, v.stderr)
			}
			// A re-run is a plain re-run: all done, nothing matched again.
			r = runInProcess(t, p.getenv, aliasArgs(c.state, "--json")...)
			if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Matched != 0 || a.AlreadyDone != 50 {
				t.Errorf("re-run under localhost: exit %d, copied %d, matched %d, already done %d; want 0, 0, 50", r.code, a.Copied, a.Matched, a.AlreadyDone)
			}
		})
	}
}

// TestE2EMatchExistingSwitch: destination matching is on by default and
// turned off by --no-match-existing (copy) and match_existing = false (a
// config's run): then every message the checkpoint does not know is sent,
// even when the folder holds its bytes.
func TestE2EMatchExistingSwitch(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(5))
	if r := runInProcess(t, p.getenv, p.copyArgs()...); r.code != exitOK {
		t.Fatalf("first copy: exit %d\n%s", r.code, r.stderr)
	}
	fresh := func() string { return filepath.Join(t.TempDir(), "fresh.db") }
	// The flag.
	r := runInProcess(t, p.getenv, "copy", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", fresh(),
		"--json", "--progress", "none", "--no-match-existing")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 5 || a.Matched != 0 {
		t.Fatalf("--no-match-existing: exit %d, copied %d, matched %d; want 5 copied again\n%s", r.code, a.Copied, a.Matched, r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 10 {
		t.Fatalf("destination holds %d after --no-match-existing, want 10", n)
	}
	// The config key, on a destination folder that now holds each message
	// twice: with match_existing = false everything is sent again; by
	// default (the key absent) each message is matched with one copy.
	for _, c := range []struct {
		key           string
		copied, match int
		after         int
	}{
		{"match_existing = false\n", 5, 0, 15},
		{"", 0, 5, 15},
	} {
		cfg := filepath.Join(t.TempDir(), "migrate.toml")
		text := c.key + `state = "` + fresh() + `"
[source]
url = "pop3s://` + p.src.POP3SAddr() + `"
tls_ca = "` + p.src.CAFile() + `"
[destination]
url = "imaps://` + p.dst.IMAPSAddr() + `"
tls_ca = "` + p.src.CAFile() + `"
[[account]]
source_user = "alice"
source_password_command = "echo ` + srcPassword + `"
dest_password_command = "echo ` + dstPassword + `"
`
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runInProcess(t, p.getenv, "run", "-c", cfg, "--json", "--progress", "none")
		if r.code != exitOK || len(r.report.Accounts) != 1 {
			t.Fatalf("run with %q: exit %d\n%s%s", c.key, r.code, r.stdout, r.stderr)
		}
		a := r.report.Accounts[0]
		if a.Copied != c.copied || a.Matched != c.match {
			t.Errorf("run with %q: copied %d, matched %d; want %d, %d", c.key, a.Copied, a.Matched, c.copied, c.match)
		}
		if n := len(destMessages(t, p, "INBOX")); n != c.after {
			t.Errorf("run with %q: destination holds %d, want %d", c.key, n, c.after)
		}
	}
}

// TestE2EMatchProbablyPresent: a destination message with a source
// message's Message-ID and size but other bytes is not taken for its copy:
// the source message is skipped as probably present, named in the report,
// and never deleted at the source, even with --delete-source; the others
// are matched (and deleted at the source: their bytes are there).
func TestE2EMatchProbablyPresent(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(3)
	seed(t, p, msgs)
	served := sourceServed(t, p)
	// On the destination: messages 0 and 1 byte for byte, and message 2
	// with one byte of its body changed (same Message-ID, same size).
	changed := []byte(strings.Replace(string(crlf(served[2])), "body of", "Body of", 1))
	for _, b := range [][]byte{crlf(served[0]), crlf(served[1]), changed} {
		if err := p.dst.SeedMaildir("alice", "INBOX", b, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r := runInProcess(t, p.getenv, p.copyArgs("--delete-source")...)
	a := r.report.Accounts[0]
	if r.code != exitPartial || a.Copied != 0 || a.Matched != 2 || a.ProbablyPresent != 1 || a.Skipped != 1 {
		t.Fatalf("copy: exit %d, copied %d, matched %d, probably present %d, skipped %d; want exit 3, 0, 2, 1, 1\n%s",
			r.code, a.Copied, a.Matched, a.ProbablyPresent, a.Skipped, r.stderr)
	}
	if len(a.Skips) != 1 || !strings.Contains(a.Skips[0].Reason, "probably on the destination already: UID 3") {
		t.Errorf("skips = %+v, want the probably-present message with the UID it matched", a.Skips)
	}
	left := sourceServed(t, p)
	if len(left) != 1 || string(left[0]) != string(served[2]) {
		t.Errorf("the source holds %d messages after --delete-source, want only the probably-present one", len(left))
	}
	if n := len(destMessages(t, p, "INBOX")); n != 3 {
		t.Errorf("destination holds %d, want the 3 it had", n)
	}
	// The next run says it was skipped before, and still deletes nothing.
	r = runInProcess(t, p.getenv, p.copyArgs("--delete-source")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.SkippedBefore != 1 || a.Copied != 0 || len(sourceServed(t, p)) != 1 {
		t.Errorf("re-run: exit %d, skipped before %d, copied %d\n%s", r.code, a.SkippedBefore, a.Copied, r.stderr)
	}
}

// TestE2EIdentityNotProved: new server names that reach another mailbox
// are not taken for the account the checkpoint knows. Another source
// server with a user of the same name and other mail fails the source's
// proof; the same source copied to another destination server passes it,
// but that destination does not hold the copies, so it fails the
// destination's proof. Each starts a history of its own (with the
// warning) and everything is copied there; nothing known is skipped.
func TestE2EIdentityNotProved(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(10))
	if r := runInProcess(t, p.getenv, p.copyArgs()...); r.code != exitOK {
		t.Fatalf("first copy: exit %d\n%s", r.code, r.stderr)
	}
	// Another source server: alice with 4 other messages (other sizes),
	// into the same destination INBOX.
	other := dovecot.Start(t, dovecot.Options{Name: "mf-other", CA: p.src.CA(), Users: map[string]string{"alice": srcPassword}})
	var mail [][]byte
	for i := range 4 {
		mail = append(mail, []byte(fmt.Sprintf("Message-ID: <other-%d@example.test>\r\nSubject: other %d\r\n\r\n%s\r\n", i, i, strings.Repeat("y", 300+i))))
	}
	for _, m := range mail {
		if err := other.SeedMaildir("alice", "INBOX", m, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r := runInProcess(t, p.getenv, "copy", "pop3s://alice@"+other.POP3SAddr(), p.dstURL(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 4 || a.AlreadyDone != 0 ||
		!strings.Contains(r.stderr, "could not be proved to be it") {
		t.Errorf("another source server: exit %d, copied %d, already done %d; want 4 copied as a new history, with the warning\n%s",
			r.code, a.Copied, a.AlreadyDone, r.stderr)
	}
	// The first source into another destination server.
	dst2 := dovecot.Start(t, dovecot.Options{Name: "mf-dst2", CA: p.src.CA(), Users: map[string]string{"alice": dstPassword}})
	r = runInProcess(t, p.getenv, "copy", p.srcURL(), "imaps://alice@"+dst2.IMAPSAddr(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 10 || a.AlreadyDone != 0 ||
		!strings.Contains(r.stderr, "the destination does not hold its copies") {
		t.Errorf("another destination server: exit %d, copied %d, already done %d; want 10 copied there, with the warning\n%s",
			r.code, a.Copied, a.AlreadyDone, r.stderr)
	}
	if n := len(destMessagesOf(t, dst2, "alice", dstPassword, "INBOX")); n != 10 {
		t.Errorf("the other destination holds %d, want 10", n)
	}
}

// TestE2EHostAliasIMAP: the same for an IMAP source with folders: under
// localhost the original checkpoint's account is proved by its folders'
// UIDVALIDITY and UIDs and goes on with its history (flags included); a
// fresh checkpoint matches every folder's messages; nothing is copied
// twice.
func TestE2EHostAliasIMAP(t *testing.T) {
	p := imapPair(t)
	d := time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	for _, m := range []seeded{
		{"INBOX", "Message-ID: <i1@x>\r\nSubject: in 1\r\n\r\none\r\n", "S", d},
		{"INBOX", "Subject: in 2, no Message-ID\r\n\r\ntwo\r\n", "", d},
		{"Archive.2019", "Message-ID: <a1@x>\r\nSubject: arch 1\r\n\r\narchived\r\n", "F", d},
	} {
		if err := p.src.SeedMaildir("alice", m.folder, []byte(m.body), m.flags, m.date); err != nil {
			t.Fatal(err)
		}
	}
	if r := runInProcess(t, p.getenv, p.imapCopyArgs()...); r.code != exitOK || r.report.Accounts[0].Copied != 3 {
		t.Fatalf("first copy: exit %d\n%s", r.code, r.stderr)
	}
	want := summary(destMessages(t, p, "INBOX"))
	for _, c := range []struct {
		state           string
		matched, proved int
	}{
		{p.state, 0, 3},
		{filepath.Join(t.TempDir(), "fresh.db"), 3, 0},
	} {
		r := runInProcess(t, p.getenv, "copy", localhost("imaps://alice@"+p.src.IMAPSAddr()), localhost("imaps://alice@"+p.dst.IMAPSAddr()),
			"--tls-ca", p.src.CAFile(), "--state", c.state, "--json", "--progress", "none")
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Copied != 0 || a.Matched != c.matched || a.AlreadyDone != c.proved {
			t.Errorf("copy under localhost (%s): exit %d, copied %d, matched %d, already done %d; want 0, %d, %d\n%s",
				filepath.Base(c.state), r.code, a.Copied, a.Matched, a.AlreadyDone, c.matched, c.proved, r.stderr)
		}
	}
	if got := summary(destMessages(t, p, "INBOX")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("destination INBOX changed:\n got %q\nwant %q", got, want)
	}
	if n := len(destMessages(t, p, "Archive/2019")); n != 1 {
		t.Errorf("destination Archive/2019 holds %d, want 1", n)
	}
}
