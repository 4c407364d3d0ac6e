package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestSendFilePlainDestination: messages above --spool-memory, spooled
// to the temp file, go to a plaintext IMAP destination by sendfile(2)
// through the whole copy (the paced sink, the appender, the connection)
// and arrive exactly, next to one in memory; a second run has nothing to
// do. imapdst's TestSendFileDovecot checks the bytes of one message at
// the appender; this checks that the copy's layers hand the file on.
func TestSendFilePlainDestination(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	var msgs [][]byte
	for i, lines := range []int{20_000, 3, 9_001} { // 1.3 MB, small, 0.6 MB
		var b bytes.Buffer
		fmt.Fprintf(&b, "Subject: sendfile %d\r\n\r\n", i)
		for j := range lines {
			fmt.Fprintf(&b, "message %d, line %d, long enough to fill the spool's memory\r\n", i, j)
		}
		msgs = append(msgs, b.Bytes())
	}
	served := seedUser(t, e, "u", msgs)
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imap://u@"+e.dst.IMAPAddr()+"?tls=none",
		"--allow-plaintext", "--spool-memory", "64KB")
	r := runInProcess(t, passwords, args...)
	if len(r.report.Accounts) != 1 || r.code != exitOK || r.report.Accounts[0].Copied != len(served) {
		t.Fatalf("exit %d, report %+v; want all %d copied\n%s", r.code, r.report.Accounts, len(served), r.stderr)
	}
	got := imapBodies(t, e.dst, "u", dstPassword, "INBOX")
	for i, m := range served {
		n := 0
		for _, g := range got {
			if bytes.Equal(g, m) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("message %d (%d bytes) at the destination exactly %d times, want once", i, len(m), n)
		}
	}
	if len(got) != len(served) {
		t.Errorf("the destination holds %d messages, want %d", len(got), len(served))
	}
	r = runInProcess(t, passwords, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != len(served) {
		t.Errorf("second run: exit %d, copied %d, already done %d; want 0 copied, %d done", r.code, a.Copied, a.AlreadyDone, len(served))
	}
}
