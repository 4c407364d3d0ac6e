package main

import (
	"regexp"
	"strings"
	"testing"
)

// destCommands returns the commands of the destination's control
// connection in a --trace log that match re.
func destCommands(stderr, re string) []string {
	cmd := regexp.MustCompile(`^trace: control T\d+ (` + re + `)\b(.*)$`)
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if m := cmd.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			out = append(out, m[1]+m[2])
		}
	}
	return out
}

// TestE2EReconcileInBatches (issue 14 item 5): after a crash that left a
// batch of 50 (or both batches) stored but pending, the resume settles
// them with one SEARCH and one FETCH for the mailbox, not an EXAMINE and a
// SEARCH UID n per message, says so in its log, and reports them found.
func TestE2EReconcileInBatches(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(60))
	served := sourceServed(t, p)
	args := p.copyArgs("--batch-messages", "50", "--dest-sessions", "1")
	r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=appended:1"}, args...)
	if r.code != -1 || !strings.Contains(r.stderr, "crashpoint") {
		t.Fatalf("the run was not killed after its first APPEND: exit %d\n%s", r.code, r.stderr)
	}
	// The second batch (10) may have gone out before the first's reply
	// (pipelined APPENDs): then both are pending.
	stored := len(destMessages(t, p, "INBOX"))
	if stored != 50 && stored != 60 {
		t.Fatalf("%d on the destination after the crash, want the first batch of 50, or both batches", stored)
	}
	r = runSubprocess(t, p, nil, append(args, "--trace", "-v")...)
	if r.code != exitOK {
		t.Fatalf("resume exited %d:\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
	a := r.report.Accounts[0]
	if a.Reconciled != stored || a.Copied != 60-stored {
		t.Errorf("resume: reconciled %d, copied %d; want %d, %d", a.Reconciled, a.Copied, stored, 60-stored)
	}
	searches, examines := destCommands(r.stderr, `SEARCH|UID SEARCH`), destCommands(r.stderr, `EXAMINE`)
	t.Logf("destination control commands: %d SEARCH, %d EXAMINE", len(searches), len(examines))
	if len(searches) > 2 || len(examines) > 4 {
		t.Errorf("the resume sent the destination %d SEARCH and %d EXAMINE commands; want the pending batch settled with one of each, not one per message:\n%q",
			len(searches), len(examines), searches)
	}
	if !regexp.MustCompile(`msg="reconciling interrupted messages" .*pending=\d+ .*to_hash=\d+`).MatchString(r.stderr) {
		t.Errorf("the log does not say what reconcile does:\n%s", r.stderr)
	}
}
