package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// How mailferry answers servers that refuse: each case ends with no loss,
// no duplicate and a report that says what happened.

// oneUserEnv is a source and destination Dovecot with user u.
func oneUserEnv(t *testing.T, dstOpts dovecot.Options) *faultEnv {
	t.Helper()
	return startFaultEnv(t, []string{"u"}, dstOpts)
}

func (e *faultEnv) args(srcURL, dstURL string, extra ...string) []string {
	return append([]string{"copy", srcURL, dstURL, "--tls-ca", e.src.CAFile(),
		"--state", filepath.Join(e.dir, "state.db"), "--json", "--progress", "none"}, extra...)
}

func seedUser(t *testing.T, e *faultEnv, user string, msgs [][]byte) [][]byte {
	t.Helper()
	pop3Kind.seed(t, e.src, user, msgs)
	return popServed(t, e.src, user)
}

func TestFaultOverquotaStopsAndResumes(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{QuotaBytes: 4000})
	served := seedUser(t, e, "u", userMessages("u", 25, 0))
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imaps://u@"+e.dst.IMAPSAddr(), "--batch-messages", "3")
	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitFatal || !strings.Contains(a.Error, "OVERQUOTA") {
		t.Fatalf("over quota: exit %d, error %q; want %d and OVERQUOTA\n%s", r.code, a.Error, exitFatal, r.stderr)
	}
	if a.Attempts != 1 {
		t.Errorf("an account over quota was tried %d times, want once", a.Attempts)
	}
	if !strings.Contains(a.Hint, "quota") {
		t.Errorf("hint %q does not tell the user about the quota", a.Hint)
	}
	got := imapBodies(t, e.dst, "u", dstPassword, "INBOX")
	if len(got) == 0 || len(got) >= len(served) || a.Copied != len(got) || a.Failed != len(served)-len(got) {
		t.Errorf("over quota after %d of %d: report copied %d, failed %d", len(got), len(served), a.Copied, a.Failed)
	}
	if _, extra := multisetDiff(served, got); extra > 0 {
		t.Fatalf("%d unexpected messages on the destination", extra)
	}

	// Raise the quota; the next run completes without sending anything twice.
	conf, err := os.ReadFile(e.dst.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	conf = bytes.Replace(conf, []byte("storage=4000B"), []byte("storage=100M"), 1)
	if err := os.WriteFile(e.dst.ConfigPath(), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.dst.Doveadm("reload"); err != nil {
		t.Fatalf("doveadm reload: %v\n%s", err, out)
	}
	r = runInProcess(t, passwords, args...)
	if r.code != exitOK {
		t.Fatalf("after raising the quota: exit %d\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	if a := r.report.Accounts[0]; a.AlreadyDone != len(got) || a.Copied != len(served)-len(got) {
		t.Errorf("resume after quota: already done %d, copied %d; want %d and %d", a.AlreadyDone, a.Copied, len(got), len(served)-len(got))
	}
}

func TestFaultTooBigIsSkipped(t *testing.T) {
	// quota_max_mail_size makes Dovecot refuse larger messages (and
	// advertise APPENDLIMIT, which mailferry checks before sending).
	e := oneUserEnv(t, dovecot.Options{QuotaBytes: 100 << 20, ExtraConfig: "plugin {\n  quota_max_mail_size = 2k\n}\n"})
	msgs := userMessages("u", 10, 0)
	big := []byte("Message-ID: <big@example.test>\r\nSubject: too big\r\n\r\n" + strings.Repeat("z", 5000) + "\r\n")
	msgs = append(msgs[:5], append([][]byte{big}, msgs[5:]...)...)
	served := seedUser(t, e, "u", msgs)
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imaps://u@"+e.dst.IMAPSAddr(), "--batch-messages", "4")
	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitPartial || a.Skipped != 1 || a.Copied != len(served)-1 || len(a.Skips) != 1 {
		t.Fatalf("a too-big message: exit %d, copied %d, skipped %d %v; want %d, %d, 1\n%s",
			r.code, a.Copied, a.Skipped, a.Skips, exitPartial, len(served)-1, r.stderr)
	}
	if reason := strings.ToLower(a.Skips[0].Reason); !strings.Contains(reason, "big") && !strings.Contains(reason, "limit") {
		t.Errorf("skip reason %q does not say the message is too big", a.Skips[0].Reason)
	}
	var small [][]byte
	for _, m := range served {
		if !bytes.Contains(m, []byte("<big@example.test>")) {
			small = append(small, m)
		}
	}
	assertSameMultiset(t, small, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	// A re-run neither retries the skipped message nor copies again; it
	// lists the earlier skip and exits 0 for it.
	r = runInProcess(t, passwords, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != len(served)-1 || a.Skipped != 0 || a.SkippedBefore != 1 {
		t.Errorf("re-run: exit %d, copied %d, already done %d, skipped %d, skipped before %d %v; want 0, 0, %d, 0 and the earlier skip",
			r.code, a.Copied, a.AlreadyDone, a.Skipped, a.SkippedBefore, a.SkipsBefore, len(served)-1)
	}
	assertSameMultiset(t, small, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
}

func TestFaultDestinationAuthFailure(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	seedUser(t, e, "u", userMessages("u", 3, 0))
	wrong := "Not-The-Dest-Pw-41"
	getenv := func(k string) string {
		if k == "MAILFERRY_DEST_PASSWORD" {
			return wrong
		}
		return passwords(k)
	}
	r := runInProcess(t, getenv, e.args("pop3s://u@"+e.src.POP3SAddr(), "imaps://u@"+e.dst.IMAPSAddr(), "--trace", "--attempts", "4")...)
	a := r.report.Accounts[0]
	if r.code != exitFatal || a.Attempts != 1 || a.ErrorClass != "fatal" {
		t.Fatalf("wrong destination password: exit %d, %d attempts, class %q; want %d, 1, fatal\n%s",
			r.code, a.Attempts, a.ErrorClass, exitFatal, r.stderr)
	}
	if !strings.Contains(a.Hint, "password") || !strings.Contains(strings.ToLower(a.Error), "login") &&
		!strings.Contains(strings.ToLower(a.Error), "auth") {
		t.Errorf("error %q / hint %q do not say the login was refused", a.Error, a.Hint)
	}
	for _, pw := range []string{wrong, srcPassword} {
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("the output of a failed login holds a password")
		}
	}
	if n := len(imapBodies(t, e.dst, "u", dstPassword, "INBOX")); n != 0 {
		t.Errorf("%d messages on the destination after a failed login", n)
	}
}

// TestFaultByeMidRun: the destination says BYE [UNAVAILABLE] in the middle
// of the copy and hangs up; mailferry reconnects after a backoff and
// finishes, with nothing sent twice. When every connection gets the BYE,
// the attempts run out and the report names the reason.
func TestFaultByeMidRun(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	served := seedUser(t, e, "u", userMessages("u", 30, 2))
	proxy := startProxy(t, e.dst.IMAPAddr())
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imap://u@"+proxy.Addr()+"?tls=none",
		"--allow-plaintext", "--batch-messages", "3")
	bye := func(conn int) []faultproxy.Fault {
		return []faultproxy.Fault{
			{Conn: conn, Kind: faultproxy.Inject, After: 600, AtLineStart: true, Line: []byte("* BYE [UNAVAILABLE] going down\r\n")},
			{Conn: conn, Kind: faultproxy.Cut, After: 600, AtLineStart: true},
		}
	}

	if err := proxy.SetPlan(faultproxy.Plan{Faults: bye(0)}); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, passwords, append(args, "--attempts", "2")...)
	a := r.report.Accounts[0]
	if r.code != exitFatal || a.Attempts != 2 || a.ErrorClass != "transient" {
		t.Fatalf("BYE on every connection: exit %d, %d attempts, class %q; want %d, 2, transient\n%s",
			r.code, a.Attempts, a.ErrorClass, exitFatal, r.stderr)
	}
	if !strings.Contains(a.Error, "BYE [UNAVAILABLE] going down") {
		t.Errorf("the report does not say why the server hung up: %q", a.Error)
	}
	if _, extra := multisetDiff(served, imapBodies(t, e.dst, "u", dstPassword, "INBOX")); extra > 0 {
		t.Fatalf("%d messages twice on the destination after the BYEs", extra)
	}

	// Connection 1: on this first run (nothing done yet) both destination
	// connections open at once and the first to connect is, in practice,
	// the appender (imapdst.Dial dials it on its own goroutine while the
	// control connection's goroutine starts); the BYE comes between its
	// APPEND replies.
	if err := proxy.SetPlan(faultproxy.Plan{Faults: bye(1)}); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, passwords, append(args, "--attempts", "3")...)
	a = r.report.Accounts[0]
	if r.code != exitOK || a.Attempts != 2 {
		t.Fatalf("BYE on the first connection: exit %d after %d attempts, want %d after 2\n%s", r.code, a.Attempts, exitOK, r.stderr)
	}
	if len(proxy.Events()) != 2 {
		t.Errorf("events %v, want the BYE and the cut", proxy.Events())
	}
	if a.Copied == 0 {
		t.Errorf("the BYE came before anything was copied; want it mid-run")
	}
	assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
}

// TestFaultPOP3InUse: the POP3 server answers PASS with -ERR [IN-USE]
// (another session holds the maildrop): retried, then reported; once the
// lock is gone, the next run copies everything.
func TestFaultPOP3InUse(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	var msgs []pop3fake.Message
	var want [][]byte
	for i, m := range userMessages("u", 8, 0) {
		msgs = append(msgs, pop3fake.Message{UIDL: "uidl-" + string(rune('a'+i)), Body: m})
		want = append(want, m)
	}
	src := pop3fake.NewStarted(t, pop3fake.Options{Messages: msgs, User: "u", Password: srcPassword})
	src.SetFaults(pop3fake.Faults{Err: map[string]string{"PASS": "-ERR [IN-USE] maildrop locked by another session"}})
	args := e.args("pop3://u@"+src.Addr()+"?tls=none", "imaps://u@"+e.dst.IMAPSAddr(), "--allow-plaintext", "--attempts", "2")
	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitFatal || a.Attempts != 2 || a.ErrorClass != "transient" || !strings.Contains(a.Error, "IN-USE") {
		t.Fatalf("IN-USE: exit %d, %d attempts, class %q, error %q; want %d, 2, transient, IN-USE\n%s",
			r.code, a.Attempts, a.ErrorClass, a.Error, exitFatal, r.stderr)
	}
	if src.Sessions() != 2 {
		t.Errorf("the source saw %d sessions, want 2", src.Sessions())
	}
	src.SetFaults(pop3fake.Faults{})
	r = runInProcess(t, passwords, args...)
	if r.code != exitOK {
		t.Fatalf("after the lock is gone: exit %d\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, want, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
}
