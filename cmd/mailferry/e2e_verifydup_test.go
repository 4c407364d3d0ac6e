package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestE2EVerifyDuplicatesAndExtras: verify does not say OK when the
// destination holds a source message twice (a copy made again under
// another host name or checkpoint, or by another tool): each further copy
// is a duplicate (D) and the exit status is 3, by the checkpoint and
// without it. Other destination messages are extras (+): listed, exit 0,
// unless --strict.
func TestE2EVerifyDuplicatesAndExtras(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(10))
	served := sourceServed(t, p)
	if r := runInProcess(t, p.getenv, p.copyArgs()...); r.code != exitOK {
		t.Fatalf("copy: exit %d\n%s", r.code, r.stderr)
	}
	verify := func(extra ...string) runResult {
		return runInProcess(t, p.getenv, append([]string{"verify", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state}, extra...)...)
	}
	if r := verify(); r.code != exitOK || !strings.Contains(r.stdout, "OK: every source message is on the destination, once\n") {
		t.Fatalf("verify after the copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An extra: a message the source never had.
	other := []byte("Message-ID: <other@example.test>\r\nSubject: delivered later\r\n\r\nhello\r\n")
	if err := p.dst.SeedMaildir("alice", "INBOX", other, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	r := verify()
	if r.code != exitOK || !regexp.MustCompile(`(?m)^\+ INBOX/;UID=11\t`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "OK: every source message is on the destination, once; 1 message there is from no source message (--strict counts it as a difference)") {
		t.Errorf("verify with an extra: exit %d, want 0 with the extra listed\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = verify("--strict"); r.code != exitPartial || !strings.Contains(r.stdout, "DIFFERENCES FOUND") {
		t.Errorf("verify --strict with an extra: exit %d, want %d\n%s%s", r.code, exitPartial, r.stdout, r.stderr)
	}

	// A second copy of the fourth source message, byte for byte.
	if err := p.dst.SeedMaildir("alice", "INBOX", served[3], "", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--no-ledger"}, {"--full"}} {
		r = verify(extra...)
		t.Logf("verify %v:\n%s", extra, r.stdout)
		if r.code != exitPartial || strings.Contains(r.stdout, "OK") ||
			!regexp.MustCompile(`(?m)^D INBOX/;UID=12\ta second copy of \S+ \(UID \d+\), same bytes$`).MatchString(r.stdout) ||
			!strings.Contains(r.stdout, ", 1 duplicate (D), 1 extra on the destination (+)") {
			t.Errorf("verify %v with a duplicate: exit %d, want %d and the duplicate named\n%s%s", extra, r.code, exitPartial, r.stdout, r.stderr)
		}
	}
	r = verify("--json")
	if r.code != exitPartial || !strings.Contains(r.stdout, `"kind": "duplicate"`) || !strings.Contains(r.stdout, `"duplicates": 1`) {
		t.Errorf("verify --json with a duplicate: exit %d\n%s", r.code, r.stdout)
	}
}
