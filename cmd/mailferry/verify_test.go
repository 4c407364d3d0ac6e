package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/verify"
)

// runCmd runs one command function in-process, as run does once the
// command is wired into app.go's switch: errors on stderr, exit status.
func runCmd(t *testing.T, fn func(context.Context, []string, *env) (int, error), getenv func(string) string, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, err := fn(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv})
	if err != nil {
		fmt.Fprintf(&stderr, "error: %v\n", err)
		if code == exitOK {
			code = exitFatal
		}
	}
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// verifyJSON runs verify with --json and decodes its report.
func verifyJSON(t *testing.T, p *pair, extra ...string) (int, verifyReport) {
	t.Helper()
	args := append([]string{p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state, "--json"}, extra...)
	r := runCmd(t, runVerify, p.getenv, args...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify %v: exit %d, the JSON does not parse: %v\n%s\n%s", extra, r.code, err, r.stdout, r.stderr)
	}
	if len(rep.Accounts) != 1 {
		t.Fatalf("verify %v: %d accounts in the report, want 1", extra, len(rep.Accounts))
	}
	if rep.ExitCode != r.code {
		t.Errorf("verify %v: report says exit %d, command returned %d", extra, rep.ExitCode, r.code)
	}
	return r.code, rep
}

// diffs returns the non-matching items as "symbol uid" strings, sorted;
// missing messages have UID 0.
func diffs(rep verifyReport) []string {
	var out []string
	for _, it := range rep.Accounts[0].Items {
		if it.Kind != verify.Match {
			out = append(out, fmt.Sprintf("%s %d", it.Kind.Symbol(), it.UID))
		}
	}
	slices.Sort(out)
	return out
}

// tamper deletes one destination message, flags another and delivers an
// extra one; it returns the differences verify must report.
func tamper(t *testing.T, p *pair) []string {
	t.Helper()
	msgs := destMessages(t, p, "INBOX")
	if len(msgs) < 3 {
		t.Fatalf("destination holds %d messages, want at least 3", len(msgs))
	}
	gone, flagged := msgs[1].uid, msgs[2].uid
	if _, err := p.dst.Doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid", fmt.Sprint(gone)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.dst.Doveadm("flags", "add", "-u", "alice", `\Flagged`, "mailbox", "INBOX", "uid", fmt.Sprint(flagged)); err != nil {
		t.Fatal(err)
	}
	if err := p.dst.Deliver("alice", "INBOX", []byte("Message-ID: <extra@example.test>\r\nSubject: extra\r\n\r\nnot from the source\r\n")); err != nil {
		t.Fatal(err)
	}
	extra := msgs[len(msgs)-1].uid + 1
	want := []string{"! " + fmt.Sprint(flagged), "+ " + fmt.Sprint(extra), "- 0"}
	slices.Sort(want)
	return want
}

// TestE2EVerify: after a copy verify passes; after deleting, flagging and
// adding destination messages it reports exactly those, in every mode.
func TestE2EVerify(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(6))
	if r := runInProcess(t, p.getenv, p.copyArgs()...); r.code != exitOK {
		t.Fatalf("copy: exit %d\n%s", r.code, r.stderr)
	}
	before := destMessages(t, p, "INBOX")
	for _, mode := range [][]string{nil, {"--full"}, {"--no-ledger"}} {
		code, rep := verifyJSON(t, p, mode...)
		if code != exitOK || !rep.OK || len(diffs(rep)) != 0 {
			t.Fatalf("verify %v after a copy: exit %d, differences %v", mode, code, diffs(rep))
		}
		if s := rep.Accounts[0].Stats; s.Matched != 6 || s.SourceMessages != 6 {
			t.Errorf("verify %v: stats %+v, want 6 source messages, 6 matched", mode, s)
		}
		if got := rep.Accounts[0].Ledger; got != (mode == nil || mode[0] != "--no-ledger") {
			t.Errorf("verify %v: ledger used = %v", mode, got)
		}
	}
	// verify reads only: the destination is as the copy left it.
	after := destMessages(t, p, "INBOX")
	for i := range after {
		if !slices.Equal(after[i].flags, before[i].flags) {
			t.Errorf("UID %d: flags %v after verify, %v before", after[i].uid, after[i].flags, before[i].flags)
		}
	}

	want := tamper(t, p)
	for _, mode := range [][]string{nil, {"--full"}, {"--no-ledger"}} {
		code, rep := verifyJSON(t, p, mode...)
		if code != exitPartial || rep.OK {
			t.Errorf("verify %v after tampering: exit %d, ok %v; want %d", mode, code, rep.OK, exitPartial)
		}
		if got := diffs(rep); !slices.Equal(got, want) {
			t.Errorf("verify %v: differences %v, want %v", mode, got, want)
		}
	}

	// The text report: one line per difference, with its symbol.
	r := runCmd(t, runVerify, p.getenv, p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state)
	if r.code != exitPartial {
		t.Fatalf("verify (text): exit %d\n%s", r.code, r.stderr)
	}
	var symbols []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if len(l) > 2 && strings.Contains("-*!~+=", l[:1]) && l[1] == ' ' {
			symbols = append(symbols, l[:1])
		}
	}
	slices.Sort(symbols)
	if !slices.Equal(symbols, []string{"!", "+", "-"}) || !strings.Contains(r.stdout, "DIFFERENCES FOUND") {
		t.Errorf("text report: difference lines %v, want ! + -:\n%s", symbols, r.stdout)
	}
	t.Logf("verify output:\n%s", r.stdout)
}

// TestE2EVerifyOtherTool checks a destination filled without mailferry (no
// ledger): messages are found by Message-ID, size and digest, and the same
// three differences are reported.
func TestE2EVerifyOtherTool(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(5))
	now := time.Now()
	for i, b := range sourceServed(t, p) {
		if i == 1 {
			continue // "lost" by the other tool
		}
		flags := ""
		if i == 2 {
			flags = "F" // flagged where the policy says none
		}
		date, _ := mapping.InternalDate(b, mapping.DateReceived, now)
		if err := p.dst.SeedMaildir("alice", "INBOX", b, flags, date); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.dst.Deliver("alice", "INBOX", []byte("Subject: extra\r\n\r\nnot from the source\r\n")); err != nil {
		t.Fatal(err)
	}
	code, rep := verifyJSON(t, p)
	if code != exitPartial {
		t.Fatalf("exit %d, want %d", code, exitPartial)
	}
	a := rep.Accounts[0]
	if a.Ledger {
		t.Error("the report says the ledger was used; there is none")
	}
	s := a.Stats
	if s.Matched != 3 || s.Missing != 1 || s.FlagsDiffer != 1 || s.Extra != 1 || s.Differs+s.DateDiffers != 0 {
		t.Errorf("stats %+v, want 3 matched, 1 missing, 1 flags differ, 1 extra", s)
	}
}
