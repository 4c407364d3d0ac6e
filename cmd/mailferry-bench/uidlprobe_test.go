package main

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestFlatProbesTheSourceAlone runs the flat workload over POP3 on two
// small mailboxes: around each re-run with nothing new, the source alone
// is asked what that re-run asks it (login, UIDL, QUIT), every listed
// message counted, and the CPU taken before QUIT, while the source's pop3
// process lives; the table sets them beside the re-run.
func TestFlatProbesTheSourceAlone(t *testing.T) {
	dovecot.Require(t)
	res, stdout := runJSON(t, "-workloads", "flat", "-paths", "pop3", "-flat-sizes", "20,60", "-flat-folders", "0",
		"-flat-ledger", "0", "-peers", "none", "-latency-count", "0")
	probes := map[int]int{}
	for _, r := range res.Rows {
		if r.Kind != "uidl probe" {
			continue
		}
		probes[r.Messages]++
		// The source's CPU of a session this small may be under a clock
		// tick: only that it was taken is held here.
		if r.Seconds <= 0 || r.CPU == nil || r.CPU.Wall <= 0 {
			t.Errorf("%s: no time, or no CPU taken before QUIT: %+v", r.Path, r)
		}
	}
	if probes[20] != 2 || probes[60] != 2 {
		t.Errorf("probe rows by messages listed: %v, want two of 20 and two of 60", probes)
	}
	if n := strings.Count(stdout, "UIDL's first byte"); n != 4 {
		t.Errorf("the table gives %d probes, want 4:\n%s", n, stdout)
	}
	// Beside the rates, the CPU per message of each ceiling and of
	// mailferry's first run, at both sizes.
	if n := strings.Count(stdout, "the rate to ceiling the cores allow"); n != 2 {
		t.Errorf("the table gives %d CPU ratios, want 2:\n%s", n, stdout)
	}
}
