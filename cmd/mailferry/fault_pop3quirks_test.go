package main

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// TestFaultPOP3OddServer: a POP3 server as old ones are: APOP only (USER
// refused, no CAPA), no UIDL, no RESP-CODES, LIST sizes that disagree with
// RETR, and one message it refuses to RETR every time with a bare -ERR.
// The copy logs in with APOP (plaintext allowed: loopback), keys the
// messages by content, copies every other message byte for byte, fails
// the refused one with the server's reply (exit 3), and the next run,
// the fault gone, copies it and nothing else.
func TestFaultPOP3OddServer(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	var msgs []pop3fake.Message
	var want [][]byte
	for i, b := range userMessages("u", 6, 0) {
		m := pop3fake.Message{Body: b}
		if i%2 == 0 {
			m.ListSize = len(b) + 100*(i+1) // wrong, both ways
		} else {
			m.ListSize = len(b) / 2
		}
		msgs = append(msgs, m)
		want = append(want, b)
	}
	src := pop3fake.NewStarted(t, pop3fake.Options{Messages: msgs, User: "u", Password: srcPassword,
		APOPOnly: true, NoCAPA: true, NoUIDL: true,
		Faults: pop3fake.Faults{Err: map[string]string{"RETR 3": "-ERR cannot read that message"}}})
	args := e.args("pop3://u@"+src.Addr()+"?tls=none", "imaps://u@"+e.dst.IMAPSAddr(), "--allow-plaintext")

	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitPartial || a.Copied != 5 || a.Failed != 1 || len(a.Failures) != 1 ||
		!strings.Contains(a.Failures[0].Reason, "cannot read that message") {
		t.Fatalf("first run: exit %d, copied %d, failed %d %+v, error %q; want %d, 5, the refused one with the reply\n%s",
			r.code, a.Copied, a.Failed, a.Failures, a.Error, exitPartial, r.stderr)
	}
	if !strings.HasPrefix(a.Failures[0].Key, "unreadable:") {
		t.Errorf("the refused message's key %q, want unreadable:<size> (no UIDL)", a.Failures[0].Key)
	}
	var apop int
	for _, c := range src.Commands() {
		if strings.HasPrefix(c.Line, "APOP u ") {
			apop++
		}
		if strings.Contains(c.Line, srcPassword) {
			t.Errorf("the password went over the wire: %q", c.Line)
		}
	}
	if apop == 0 {
		t.Errorf("no APOP login: %+v", src.Commands())
	}
	assertSameMultiset(t, append(append([][]byte{}, want[:2]...), want[3:]...), imapBodies(t, e.dst, "u", dstPassword, "INBOX"))

	src.SetFaults(pop3fake.Faults{})
	r = runInProcess(t, passwords, args...)
	a = r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 1 || a.AlreadyDone != 5 {
		t.Fatalf("second run: exit %d, copied %d, already done %d; want %d, 1, 5\n%s", r.code, a.Copied, a.AlreadyDone, exitOK, r.stderr)
	}
	assertSameMultiset(t, want, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
}
