package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// imapLogins counts the IMAP logins of alice Dovecot s logged, and the
// sessions it logged as ended; it waits (at most 10 s) for the two to
// agree, as Dovecot's log process writes a little after the fact.
func imapLogins(t *testing.T, s *dovecot.Server) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := s.LogTail(1 << 20)
		logins := strings.Count(log, "imap-login: Info: Login: user=<alice>")
		ended := 0
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "imap(alice)") && (strings.Contains(l, "Logged out") || strings.Contains(l, "Disconnected")) {
				ended++
			}
		}
		if logins == ended || time.Now().After(deadline) {
			return logins
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDestinationLoginsPerRun: a copy logs in to the destination twice
// (the control connection and the APPEND connection), a re-run with
// nothing new once: its checks (the destination mailbox still the one
// the ledger knows) go over the control connection, and the APPEND
// connection, opened on a re-run only to append, is not opened. On a
// fleet of scheduled fetch jobs that is one destination login per account
// and poll saved. A re-run with new mail opens it at its first message.
func TestDestinationLoginsPerRun(t *testing.T) {
	tests := []struct {
		name string
		imap bool
	}{
		{"POP3 source", false},
		{"IMAP source", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startPair(t)
			args := p.copyArgs()
			if tc.imap {
				p = imapPair(t)
				args = p.imapCopyArgs()
			}
			for i := range 3 {
				msg := fmt.Sprintf("From: a@example.org\r\nMessage-ID: <login-%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i)
				if err := p.src.Deliver("alice", "INBOX", []byte(msg)); err != nil {
					t.Fatal(err)
				}
			}
			for i, run := range []struct {
				name   string
				copied int
				logins int
			}{
				{"copy", 3, 2},
				{"re-run with nothing new", 0, 1},
				{"re-run with new mail", 1, 2},
			} {
				if run.copied > 0 && i > 0 {
					msg := fmt.Sprintf("From: a@example.org\r\nMessage-ID: <login-new-%d@example.org>\r\nSubject: new\r\n\r\nnew\r\n", i)
					if err := p.src.Deliver("alice", "INBOX", []byte(msg)); err != nil {
						t.Fatal(err)
					}
				}
				before := imapLogins(t, p.dst)
				r := runInProcess(t, p.getenv, args...)
				if r.code != exitOK || r.report.Totals.Copied != run.copied {
					t.Fatalf("%s: exit %d, copied %d, want 0, %d\n%s", run.name, r.code, r.report.Totals.Copied, run.copied, r.stderr)
				}
				if got := imapLogins(t, p.dst) - before; got != run.logins {
					t.Errorf("%s: %d logins at the destination, want %d\n%s", run.name, got, run.logins, p.dst.LogTail(30))
				}
			}
		})
	}
}
