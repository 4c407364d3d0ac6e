package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/providerfake"
)

// fakeDest is a POP3 source on Dovecot (alice) and an emulated IMAP
// destination (alice), with a checkpoint.
type fakeDest struct {
	p     *pair
	f     *providerfake.Server
	state string
}

func startFakeDest(t *testing.T, o providerfake.Options) *fakeDest {
	t.Helper()
	d := &fakeDest{p: &pair{dir: t.TempDir()}}
	d.p.src = dovecot.Start(t, dovecot.Options{Name: "mf-fksrc", Users: map[string]string{"alice": srcPassword}})
	d.f = providerfake.Start(t, o)
	d.f.AddUser("alice", dstPassword)
	d.state = filepath.Join(d.p.dir, "state.db")
	return d
}

func (d *fakeDest) args(extra ...string) []string {
	return append([]string{"copy", "pop3s://alice@" + d.p.src.POP3SAddr(), "imap://alice@" + d.f.Addr() + "/INBOX?tls=none",
		"--tls-ca", d.p.src.CAFile(), "--allow-plaintext", "--state", d.state, "--json", "--progress", "none"}, extra...)
}

// bodiesOf returns the bodies a fake holds in folder.
func bodiesOf(f *providerfake.Server, folder string) [][]byte {
	var out [][]byte
	for _, m := range f.Messages("alice", folder) {
		out = append(out, m.Body)
	}
	return out
}

// TestBinaryNUL: a message with a NUL byte goes as a literal8 (RFC 3516)
// to a destination that offers BINARY and arrives byte-exact; to one that
// does not, it is skipped for good with the reason: the first run exits 3
// for it, later runs list it and exit 0, --retry-skipped tries it again
// (and skips it again, the server being the same), and nothing else is
// held up or stored twice.
func TestBinaryNUL(t *testing.T) {
	nul := []byte("From: carol@example.org\r\nSubject: has a NUL\r\n\r\nbefore\x00after\r\n")
	plain := withID("plain", "no NUL here")
	for _, tc := range []struct {
		name   string
		binary bool
	}{{"BINARY", true}, {"no BINARY", false}} {
		t.Run(tc.name, func(t *testing.T) {
			o := providerfake.Options{}
			if !tc.binary {
				o.Caps = slices.DeleteFunc(slices.Clone(providerfake.DefaultCaps), func(c string) bool { return c == "BINARY" })
			}
			d := startFakeDest(t, o)
			seed(t, d.p, [][]byte{nul, plain})
			r := runInProcess(t, passwords, d.args()...)
			a := r.report.Accounts[0]
			got := bodiesOf(d.f, "INBOX")
			if tc.binary {
				if r.code != exitOK || a.Copied != 2 || a.Skipped != 0 {
					t.Fatalf("exit %d, copied %d, skipped %d; want 0, 2, 0\n%s", r.code, a.Copied, a.Skipped, r.stderr)
				}
				assertSameMultiset(t, [][]byte{nul, plain}, got)
				return
			}
			if r.code != exitPartial || a.Copied != 1 || a.Skipped != 1 || a.Failed != 0 {
				t.Fatalf("first run: exit %d, copied %d, skipped %d, failed %d; want 3, 1, 1, 0\n%s", r.code, a.Copied, a.Skipped, a.Failed, r.stderr)
			}
			if len(a.Skips) != 1 || !strings.Contains(a.Skips[0].Reason, "NUL") || !strings.Contains(a.Skips[0].Reason, "BINARY") {
				t.Errorf("skips %+v; want one for the NUL byte without BINARY", a.Skips)
			}
			assertSameMultiset(t, [][]byte{plain}, got)
			again := runInProcess(t, passwords, d.args()...)
			if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 0 || b.Skipped != 0 || b.SkippedBefore != 1 {
				t.Errorf("second run: exit %d, copied %d, skipped %d, skipped before %d; want 0, 0, 0, 1\n%s",
					again.code, b.Copied, b.Skipped, b.SkippedBefore, again.stderr)
			}
			retry := runInProcess(t, passwords, d.args("--retry-skipped")...)
			if c := retry.report.Accounts[0]; retry.code != exitPartial || c.Copied != 0 || c.Skipped != 1 || c.SkippedBefore != 0 {
				t.Errorf("--retry-skipped: exit %d, copied %d, skipped %d, skipped before %d; want 3, 0, 1, 0\n%s",
					retry.code, c.Copied, c.Skipped, c.SkippedBefore, retry.stderr)
			}
			assertSameMultiset(t, [][]byte{plain}, bodiesOf(d.f, "INBOX"))
		})
	}
}

// TestProviderMicrosoft365Flags: Exchange Online does not keep \Flagged
// given with APPEND (it sticks only through STORE). Told by its greeting,
// the destination sets it again with UID STORE by the APPENDUID, so every
// message arrives with the flags the source gave it. Without the profile
// the flagged messages arrive unflagged.
func TestProviderMicrosoft365Flags(t *testing.T) {
	d := startFakeDest(t, providerfake.Microsoft365())
	msgs := [][]byte{
		[]byte("From: a@example.org\r\nSubject: flagged\r\nStatus: RO\r\nX-Status: F\r\n\r\none\r\n"),
		[]byte("From: a@example.org\r\nSubject: answered and flagged\r\nStatus: RO\r\nX-Status: AF\r\n\r\ntwo\r\n"),
		[]byte("From: a@example.org\r\nSubject: seen\r\nStatus: RO\r\n\r\nthree\r\n"),
		[]byte("From: a@example.org\r\nSubject: nothing\r\n\r\nfour\r\n"),
	}
	seed(t, d.p, msgs)
	r := runInProcess(t, passwords, d.args("--flags", "status")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != len(msgs) {
		t.Fatalf("exit %d, copied %d; want 0, %d\n%s", r.code, a.Copied, len(msgs), r.stderr)
	}
	want := map[string][]string{
		"flagged":              {`\Flagged`, `\Seen`},
		"answered and flagged": {`\Answered`, `\Flagged`, `\Seen`},
		"seen":                 {`\Seen`},
		"nothing":              nil,
	}
	got := map[string][]string{}
	for _, m := range d.f.Messages("alice", "INBOX") {
		_, rest, _ := strings.Cut(string(m.Body), "Subject: ")
		subject, _, _ := strings.Cut(rest, "\r\n")
		flags := slices.Clone(m.Flags)
		slices.Sort(flags)
		got[subject] = flags
	}
	for subject, w := range want {
		if g, ok := got[subject]; !ok || !slices.Equal(g, w) {
			t.Errorf("%q arrived with flags %q (present %v), want %q", subject, g, ok, w)
		}
	}
	if d.f.Count("UID STORE") == 0 {
		t.Errorf("no UID STORE was sent for the flags dropped at APPEND")
	}
}

// TestProviderMicrosoft365Errors: Exchange Online ends a connection after
// about 10 refusals, and with it the APPENDs in flight. The destination
// counts the refusals and goes on on a new connection before the server
// would end it: twelve refused APPENDs never cost a connection, the
// refused messages are failed with the server's reason (the next run
// copies them), the rest is copied, and after the second run every message
// is there once. Without the profile the server ends the connection at the
// tenth refusal.
func TestProviderMicrosoft365Errors(t *testing.T) {
	const refused = 12
	o := providerfake.Microsoft365()
	o.Hook = func(c providerfake.Call) *providerfake.Reply {
		if c.Name == "APPEND" && c.N <= refused {
			return &providerfake.Reply{Status: "NO", Text: "APPEND failed: the message could not be saved (test)"}
		}
		return nil
	}
	d := startFakeDest(t, o)
	var msgs [][]byte
	for i := range 16 {
		msgs = append(msgs, withID(fmt.Sprintf("m%02d", i), strings.Repeat("text ", i+1)))
	}
	seed(t, d.p, msgs)
	r := runInProcess(t, passwords, d.args("--dest-sessions", "1")...)
	a := r.report.Accounts[0]
	if a.Failed+a.Skipped == 0 || a.Copied+a.Failed+a.Skipped != len(msgs) || a.Error != "" {
		t.Fatalf("first run: exit %d, copied %d, failed %d, skipped %d, error %q; want the refused failed with their reason and the rest copied\n%s",
			r.code, a.Copied, a.Failed, a.Skipped, a.Error, r.stderr)
	}
	for _, f := range a.Failures {
		if !strings.Contains(f.Reason, "could not be saved") {
			t.Errorf("failure %+v without the server's reason", f)
		}
	}
	if n := d.f.ErrorByes(); n != 0 {
		t.Errorf("the server ended %d connections for too many errors", n)
	}
	for run := 2; len(bodiesOf(d.f, "INBOX")) < len(msgs) && run <= 3; run++ {
		r = runInProcess(t, passwords, d.args("--dest-sessions", "1")...)
		if r.code != exitOK {
			t.Errorf("run %d: exit %d\n%s", run, r.code, r.stderr)
		}
	}
	got := bodiesOf(d.f, "INBOX")
	assertSameMultiset(t, msgs, got)
	for _, m := range msgs {
		n := 0
		for _, g := range got {
			if bytes.Equal(g, m) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%.40q is there %d times", m, n)
		}
	}
}

// TestProviderMicrosoft365Throttled: Exchange Online answers a command,
// in the middle of a copy, "Request is throttled. Suggested Backoff Time:
// N milliseconds" (as NO or as BAD) and ends the connection. The copy
// waits N milliseconds (not its own --retry-backoff, set far lower here),
// connects again and goes on: one run, exit 0, every message there exactly
// once, each recorded once.
func TestProviderMicrosoft365Throttled(t *testing.T) {
	const backoff = 1500 * time.Millisecond
	for _, status := range []string{"NO", "BAD"} {
		t.Run(status, func(t *testing.T) {
			o := providerfake.Microsoft365()
			var mu sync.Mutex
			var throttledAt, loginAfter time.Time
			o.Hook = func(c providerfake.Call) *providerfake.Reply {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case c.Name == "APPEND" && c.N == 4:
					throttledAt = time.Now()
					r := providerfake.Microsoft365Throttled(int(backoff / time.Millisecond))
					r.Status = status
					return &r
				case (c.Name == "LOGIN" || c.Name == "AUTHENTICATE") && !throttledAt.IsZero() && loginAfter.IsZero():
					loginAfter = time.Now()
				}
				return nil
			}
			d := startFakeDest(t, o)
			var msgs [][]byte
			for i := range 10 {
				msgs = append(msgs, withID(fmt.Sprintf("t%02d", i), strings.Repeat("throttled ", i+1)))
			}
			seed(t, d.p, msgs)
			r := runInProcess(t, passwords, d.args("--dest-sessions", "1", "--batch-messages", "1", "--retry-backoff", "10ms")...)
			a := r.report.Accounts[0]
			if r.code != exitOK || a.Copied != len(msgs) || a.Failed != 0 || a.Error != "" {
				t.Fatalf("exit %d, copied %d, failed %d, error %q; want 0, %d, 0\n%s", r.code, a.Copied, a.Failed, a.Error, len(msgs), r.stderr)
			}
			mu.Lock()
			at, after := throttledAt, loginAfter
			mu.Unlock()
			if at.IsZero() || after.IsZero() {
				t.Fatalf("throttled at %v, logged in again at %v: the hook did not run as planned", at, after)
			}
			if waited := after.Sub(at); waited < backoff {
				t.Errorf("logged in again %v after the throttling reply; the server asked for %v", waited, backoff)
			}
			got := bodiesOf(d.f, "INBOX")
			assertSameMultiset(t, msgs, got)
			again := runInProcess(t, passwords, d.args()...)
			if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 0 || b.AlreadyDone != len(msgs) {
				t.Errorf("second run: exit %d, copied %d, already done %d\n%s", again.code, b.Copied, b.AlreadyDone, again.stderr)
			}
		})
	}
}

// TestProviderMicrosoft365Folders: Exchange Online compares folder names
// without case and keeps Calendar, Contacts, Journal, Notes, Tasks and
// Sync Issues (with their subfolders) for items that are not mail, which
// its IMAP server lists as folders.
//
// As a destination (IMAP source on Dovecot, which tells case): a source
// folder whose name differs only in case from one there goes to that one,
// in its spelling ("Archive" → "archive"); two source folders that differ
// only in case go to one folder, named once; a mail folder with a
// reserved name goes to "<name> (mail)", subfolders too; everything is
// copied once, a second run copies nothing, and verify --strict finds
// nothing extra. Without the handling the mail of "Calendar" and
// "Tasks/Open" was refused, and verify saw every merged folder's messages
// twice, once as extras.
//
// As a source (copied to Dovecot): the folders of items that are not mail
// are not copied, with one log line; the mail folders are.
func TestProviderMicrosoft365Folders(t *testing.T) {
	t.Run("destination", func(t *testing.T) {
		p := &pair{dir: t.TempDir()}
		p.src = dovecot.Start(t, dovecot.Options{Name: "mf-m365src", Users: map[string]string{"alice": srcPassword}})
		f := providerfake.Start(t, providerfake.Microsoft365())
		f.AddUser("alice", dstPassword)
		f.CreateFolder("alice", "archive", "")
		state := filepath.Join(p.dir, "state.db")
		src := map[string][]byte{
			"INBOX":      withID("in", "inbox"),
			"Archive":    withID("ar", "archived"),
			"Projects":   withID("p1", "upper"),
			"projects":   withID("p2", "lower"),
			"Calendar":   withID("cal", "mail in a folder called Calendar"),
			"Tasks/Open": withID("task", "mail in Tasks/Open"),
		}
		for mb, m := range src {
			if err := p.src.Deliver("alice", mb, m); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), "imap://alice@" + f.Addr() + "?tls=none",
			"--tls-ca", p.src.CAFile(), "--allow-plaintext", "--state", state, "--json", "--progress", "none"}
		r := runInProcess(t, passwords, args...)
		if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != len(src) {
			t.Fatalf("copy: exit %d, copied %d, failed %d; want 0, %d\n%s", r.code, a.Copied, a.Failed, len(src), r.stderr)
		}
		want := map[string][]string{
			"INBOX":             {"in"},
			"archive":           {"ar"},
			"Projects":          {"p1", "p2"},
			"Calendar (mail)":   {"cal"},
			"Tasks (mail)/Open": {"task"},
		}
		for mb, ids := range want {
			var got []string
			for _, m := range f.Messages("alice", mb) {
				_, rest, _ := strings.Cut(string(m.Body), "Subject: ")
				id, _, _ := strings.Cut(rest, "\r\n")
				got = append(got, id)
			}
			slices.Sort(got)
			if !slices.Equal(got, ids) {
				t.Errorf("destination %q holds %q, want %q", mb, got, ids)
			}
		}
		var lower []string
		for _, name := range f.Folders("alice") {
			for _, l := range lower {
				if strings.EqualFold(l, name) {
					t.Errorf("destination folders %q and %q differ only in case", l, name)
				}
			}
			lower = append(lower, name)
		}
		if !strings.Contains(r.stderr, "two source folders go to one destination folder") {
			t.Errorf("the merge of Projects and projects is not logged:\n%s", r.stderr)
		}
		again := runInProcess(t, passwords, args...)
		if a := again.report.Accounts[0]; again.code != exitOK || a.Copied != 0 {
			t.Errorf("second run: exit %d, copied %d\n%s", again.code, a.Copied, again.stderr)
		}
		v := runInProcess(t, passwords, "verify", "imaps://alice@"+p.src.IMAPSAddr(), "imap://alice@"+f.Addr()+"?tls=none",
			"--tls-ca", p.src.CAFile(), "--allow-plaintext", "--state", state, "--full", "--strict")
		if v.code != exitOK || !strings.Contains(v.stdout, fmt.Sprintf("%d match", len(src))) {
			t.Errorf("verify --full --strict: exit %d\n%s%s", v.code, v.stdout, v.stderr)
		}
	})
	t.Run("source", func(t *testing.T) {
		f := providerfake.Start(t, providerfake.Microsoft365())
		f.AddUser("alice", srcPassword)
		f.Add("alice", "INBOX", providerfake.Message{Body: withID("in", "inbox")})
		f.Add("alice", "Sent Items", providerfake.Message{Body: withID("sent", "sent")})
		dst := dovecot.Start(t, dovecot.Options{Name: "mf-m365dst", Users: map[string]string{"alice": dstPassword}})
		state := filepath.Join(t.TempDir(), "state.db")
		args := []string{"copy", "imap://alice@" + f.Addr() + "?tls=none", "imaps://alice@" + dst.IMAPSAddr(),
			"--tls-ca", dst.CAFile(), "--allow-plaintext", "--state", state, "--json", "--progress", "none"}
		r := runInProcess(t, passwords, args...)
		if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 2 {
			t.Fatalf("copy: exit %d, copied %d; want 0, 2\n%s", r.code, a.Copied, r.stderr)
		}
		if n := strings.Count(r.stderr, "folders of items that are not mail not copied"); n != 1 {
			t.Errorf("%d log lines about the folders of items that are not mail, want 1:\n%s", n, r.stderr)
		}
		boxes, err := dst.Mailboxes("alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			for _, nm := range providerfake.Microsoft365NonMail {
				if strings.EqualFold(b, nm) {
					t.Errorf("the destination has %q, a folder of items that are not mail at the source", b)
				}
			}
		}
		v := runInProcess(t, passwords, "verify", "imap://alice@"+f.Addr()+"?tls=none", "imaps://alice@"+dst.IMAPSAddr(),
			"--tls-ca", dst.CAFile(), "--allow-plaintext", "--state", state)
		if v.code != exitOK {
			t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
		}
	})
}
