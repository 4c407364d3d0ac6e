package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/silent"
)

// TestE2EServersThatDoNotAnswer: a server that never accepts the
// connection, or accepts it and then says nothing (no TLS handshake, no
// greeting), fails within the step's own timeout (here 1 s, retried once),
// not after minutes, with what to check; a closed port and a server that
// speaks another protocol (Dovecot's IMAP at a pop3s:// URL, its POP3 at an
// imaps:// URL, its plain-text POP3 port at a pop3s:// URL) fail at once,
// without a retry, with the URL to use instead.
func TestE2EServersThatDoNotAnswer(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(2))
	quiet := silent.Listen(t)
	unreachable := silent.Unreachable(t)
	closed := silent.Closed(t)
	tests := []struct {
		name     string
		src, dst string
		attempts int // 2: retried once (it may heal); 1: no retry
		hint     []string
	}{
		{"connect never accepted", "pop3s://alice@" + unreachable, p.dstURL(), 2,
			[]string{"did not answer the connection within 1s", "--connect-timeout"}},
		{"no TLS handshake", "pop3s://alice@" + quiet.Addr(), p.dstURL(), 2,
			[]string{"did not finish the TLS handshake within 1s", "--tls-timeout"}},
		{"no POP3 greeting", "pop3://alice@" + quiet.Addr(), p.dstURL(), 2,
			[]string{"sent no greeting within 1s", "imaps:// or pop3s://", "--greeting-timeout"}},
		{"no IMAP greeting at the destination", p.srcURL(), "imap://alice@" + quiet.Addr(), 2,
			[]string{"sent no greeting within 1s", "--greeting-timeout"}},
		{"STARTTLS at an implicit-TLS port", p.srcURL(), "imap://alice@" + p.dst.IMAPSAddr(), 2,
			[]string{"sent no greeting within 1s", "use imaps:// or pop3s:// there"}},
		{"closed port", "pop3s://alice@" + closed, p.dstURL(), 1,
			[]string{"nothing listens on " + closed, "Retrying would not help"}},
		{"pop3s:// at an IMAP port", "pop3s://alice@" + p.src.IMAPSAddr(), p.dstURL(), 1,
			[]string{"is an IMAP server", "imaps://"}},
		{"imaps:// at a POP3 port", p.srcURL(), "imaps://alice@" + p.dst.POP3SAddr(), 1,
			[]string{"is a POP3 server", "pop3s://"}},
		{"pop3s:// at a plain-text port", "pop3s://alice@" + p.src.POP3Addr(), p.dstURL(), 1,
			[]string{"does not speak TLS on this port", "pop3://"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runInProcess(t, p.getenv, "copy", tc.src, tc.dst, "--tls-ca", p.src.CAFile(), "--state", p.state,
				"--json", "--progress", "none", "--connect-timeout", "1s", "--tls-timeout", "1s", "--greeting-timeout", "1s",
				"--attempts", "2", "--retry-backoff", "100ms")
			took := time.Since(start)
			if r.code != exitFatal || len(r.report.Accounts) != 1 {
				t.Fatalf("exit %d, want %d with one account\n%s%s", r.code, exitFatal, r.stdout, r.stderr)
			}
			a := r.report.Accounts[0]
			t.Logf("%v, %d attempts: %s\nhint: %s", took.Round(time.Millisecond), a.Attempts, a.Error, a.Hint)
			if a.Attempts != tc.attempts || a.Copied != 0 {
				t.Errorf("%d attempts, copied %d; want %d, 0", a.Attempts, a.Copied, tc.attempts)
			}
			// Each try gives up after its step's second; the limit is
			// generous for a loaded machine, and far below the minutes of
			// an idle timeout with its retries.
			if limit := 20 * time.Second; took > limit {
				t.Errorf("the copy took %v to give up, want well under %v", took, limit)
			}
			for _, w := range tc.hint {
				if !strings.Contains(a.Hint, w) {
					t.Errorf("hint %q does not say %q", a.Hint, w)
				}
			}
			if tc.attempts == 1 && strings.Contains(r.stderr, "retrying") {
				t.Errorf("a failure no retry can heal was retried:\n%s", r.stderr)
			}
		})
	}
}

// TestE2ELoginHintNamesTheSide: a login refused by one server gets a hint
// naming that side's password settings only.
func TestE2ELoginHintNamesTheSide(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(1))
	for _, tc := range []struct {
		side, wrong, want, not string
	}{
		{"source", "MAILFERRY_SOURCE_PASSWORD", "MAILFERRY_SOURCE_PASSWORD", "MAILFERRY_DEST_PASSWORD"},
		{"destination", "MAILFERRY_DEST_PASSWORD", "MAILFERRY_DEST_PASSWORD", "MAILFERRY_SOURCE_PASSWORD"},
	} {
		t.Run(tc.side, func(t *testing.T) {
			getenv := func(k string) string {
				if k == tc.wrong {
					return "not-the-password"
				}
				return p.getenv(k)
			}
			r := runInProcess(t, getenv, p.copyArgs("--attempts", "1")...)
			if r.code != exitFatal || len(r.report.Accounts) != 1 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			h := r.report.Accounts[0].Hint
			if !strings.Contains(h, "the "+tc.side+" server refused the login") || !strings.Contains(h, tc.want) || strings.Contains(h, tc.not) {
				t.Errorf("hint %q: want the %s's settings (%s) only", h, tc.side, tc.want)
			}
		})
	}
}
