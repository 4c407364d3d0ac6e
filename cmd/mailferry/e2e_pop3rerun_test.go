package main

import (
	"regexp"
	"strings"
	"testing"
)

// pop3Commands returns the commands of a --trace run's POP3 session(s)
// that match re (the command's name), in order.
func pop3Commands(stderr, re string) []string {
	cmd := regexp.MustCompile(`^trace: .*C: (` + re + `)\b(.*)$`)
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if m := cmd.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			out = append(out, m[1]+m[2])
		}
	}
	return out
}

// TestE2EPOP3RerunNoList: a re-run over a maildrop with nothing new asks
// the source for its UIDLs alone, no LIST (issue 20: a no-op re-run of
// 500,000 POP3 messages; sizes decide nothing for a message already
// done), and reports every message done. With a new message and one whose
// UIDL an earlier run saw but did not finish (killed with its pending
// entry written, before its APPEND), the next run lists the sizes and
// copies both, each once.
func TestE2EPOP3RerunNoList(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(5)
	seed(t, p, msgs[:3])
	args := p.copyArgs("--batch-messages", "1")
	if r := runInProcess(t, p.getenv, args...); r.code != exitOK || r.report.Accounts[0].Copied != 3 {
		t.Fatalf("first run: exit %d\n%s", r.code, lastLines(r.stderr, 40))
	}

	r := runInProcess(t, p.getenv, append(args, "--trace")...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 0 || a.AlreadyDone != 3 {
		t.Fatalf("re-run with nothing new: exit %d, copied %d, already done %d; want 0 and 3\n%s", r.code, a.Copied, a.AlreadyDone, lastLines(r.stderr, 40))
	}
	if cmds := pop3Commands(r.stderr, "UIDL|LIST"); strings.Join(cmds, ",") != "UIDL" {
		t.Errorf("re-run with nothing new sent %q to the source; want one UIDL and no LIST", cmds)
	}

	// Message 4 is seen and left pending (killed before its APPEND);
	// message 5 arrives after that run.
	seed(t, p, msgs[3:4])
	r = runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=pending:1"}, args...)
	if r.code != -1 || !strings.Contains(r.stderr, "crashpoint pending:1") {
		t.Fatalf("the run was not killed at pending:1: exit %d\n%s", r.code, r.stderr)
	}
	seed(t, p, msgs[4:])
	r = runInProcess(t, p.getenv, append(args, "--trace")...)
	a = r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 2 || a.AlreadyDone != 3 {
		t.Fatalf("re-run with a new and an unfinished message: exit %d, copied %d, already done %d; want 2 and 3\n%s",
			r.code, a.Copied, a.AlreadyDone, lastLines(r.stderr, 40))
	}
	if cmds := pop3Commands(r.stderr, "UIDL|LIST"); strings.Join(cmds, ",") != "UIDL,LIST" {
		t.Errorf("re-run with something to copy sent %q to the source; want one UIDL and one LIST", cmds)
	}
	assertSameMultiset(t, sourceServed(t, p), destBodies(destMessages(t, p, "INBOX")))
}
