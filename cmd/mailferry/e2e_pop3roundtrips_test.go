package main

import (
	"testing"
	"time"
)

// TestE2EPOP3RoundTrips: a POP3 source that announces PIPELINING
// (Dovecot) costs an account's first copy 5 round trips on the source's
// session and a re-run with nothing new 4 (issue 18, target 4): USER and
// PASS go in one write, the CAPA after login and UIDL in another, and on a
// first run the LIST with them. One command at a time it was 8 and 6: USER,
// PASS, CAPA and UIDL each waited for the one before, and the LIST for the
// UIDL. The rest: the CAPA before login, which says whether the server
// takes pipelined commands, the bodies' RETRs in one write, and QUIT.
// Without TLS, whose handshake (1 or 2 more) the proxy counts one or two
// depending on when the server's session tickets arrive.
func TestE2EPOP3RoundTrips(t *testing.T) {
	const n = 200
	p := seededPair(t, "mf-prt", n)
	srcProxy := startTurnProxyDelay(t, p.src.POP3Addr(), 100*time.Millisecond)
	args := []string{"copy", "pop3://alice@" + srcProxy.Addr() + "?tls=none", "imaps://alice@" + p.dst.IMAPSAddr(),
		"--tls-ca", p.src.CAFile(), "--state", p.state, "--json", "--progress", "none", "--allow-plaintext"}
	run := func(what string, copied int) []int {
		t.Helper()
		srcProxy.Reset()
		r := runInProcess(t, p.getenv, args...)
		if r.code != exitOK || r.report.Totals.Copied != copied {
			t.Fatalf("%s: exit %d, copied %d, want 0, %d\n%s", what, r.code, r.report.Totals.Copied, copied, lastLines(r.stderr, 30))
		}
		turns := srcProxy.Turns()
		t.Logf("%s: round trips per source session %v", what, turns)
		return turns
	}
	// Every burst here is one write, so a loaded machine cannot split
	// one in two; the counts are exact.
	if first := run("first copy", n); len(first) != 1 || first[0] > 5 {
		t.Errorf("first copy: %v round trips at the source, want one session of at most 5 (8 one command at a time)", first)
	}
	if noop := run("nothing new", 0); len(noop) != 1 || noop[0] > 4 {
		t.Errorf("nothing new: %v round trips at the source, want one session of at most 4 (6 one command at a time)", noop)
	}
}
