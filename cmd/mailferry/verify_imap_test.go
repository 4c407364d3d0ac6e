package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// imapInspectArgs are the arguments of verify and plan for an imapPair.
func (p *pair) imapInspectArgs(extra ...string) []string {
	return append([]string{"imaps://alice@" + p.src.IMAPSAddr(), "imaps://alice@" + p.dst.IMAPSAddr(),
		"--tls-ca", p.src.CAFile(), "--state", p.state}, extra...)
}

// imapVerifyJSON runs verify --json on an imapPair and decodes its report.
func imapVerifyJSON(t *testing.T, p *pair, extra ...string) (int, verifyReport) {
	t.Helper()
	r := runCmd(t, runVerify, p.getenv, p.imapInspectArgs(append([]string{"--json"}, extra...)...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify %v: exit %d, the JSON does not parse: %v\n%s\n%s", extra, r.code, err, r.stdout, r.stderr)
	}
	if len(rep.Accounts) != 1 {
		t.Fatalf("verify %v: %d accounts in the report, want 1", extra, len(rep.Accounts))
	}
	return r.code, rep
}

// mailboxSnapshot is every mailbox of alice with its message count.
func mailboxSnapshot(t *testing.T, s *dovecot.Server) string {
	t.Helper()
	boxes, err := s.Mailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(boxes)
	var b strings.Builder
	for _, mb := range boxes {
		n, err := s.MailboxCount("alice", mb)
		if err != nil {
			fmt.Fprintf(&b, "%s=(no status) ", mb) // a \Noselect parent
			continue
		}
		fmt.Fprintf(&b, "%s=%d ", mb, n)
	}
	return b.String()
}

// TestE2EIMAPPlanVerify: plan shows an IMAP source's folder mapping and
// counts and writes nothing; after the copy verify passes in every mode,
// and after deleting, flagging and adding destination messages it reports
// exactly those three.
func TestE2EIMAPPlanVerify(t *testing.T) {
	p := imapPair(t)
	d := func(day int) time.Time { return time.Date(2020, 5, day, 9, 15, 42, 0, time.FixedZone("", 2*3600)) }
	msgs := []seeded{
		{"INBOX", "Message-ID: <i1@example.test>\r\nSubject: in 1\r\n\r\none\r\n", "S", d(1)},
		{"INBOX", "Message-ID: <i2@example.test>\r\nSubject: in 2\r\n\r\ntwo\r\n", "FS", d(2)},
		{"INBOX", "Message-ID: <i3@example.test>\r\nSubject: in 3\r\n\r\nthree\r\n", "", d(3)},
		{"INBOX", "Message-ID: <i4@example.test>\r\nSubject: in 4\r\n\r\nfour\r\n", "RS", d(4)},
		{"Archive.2019", "Message-ID: <a1@example.test>\r\nSubject: arch\r\n\r\narchived\r\n", "DS", d(5)},
		{"Gesendete Elemente", "Message-ID: <s1@example.test>\r\nSubject: sent\r\n\r\ngesendet\r\n", "S", d(6)},
	}
	for _, m := range msgs {
		if err := p.src.SeedMaildir("alice", m.folder, []byte(m.body), m.flags, m.date); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.src.Doveadm("flags", "add", "-u", "alice", "$Forwarded", "mailbox", "INBOX", "subject", "in 1"); err != nil {
		t.Fatal(err)
	}

	// plan before the copy: the mapping and the counts; nothing written.
	srcBefore, dstBefore := mailboxSnapshot(t, p.src), mailboxSnapshot(t, p.dst)
	r := runCmd(t, runPlan, p.getenv, p.imapInspectArgs("--json")...)
	if r.code != exitOK {
		t.Fatalf("plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep planReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("plan --json does not parse: %v\n%s", err, r.stdout)
	}
	a := rep.Accounts[0]
	if a.ToMove != len(msgs) || a.Listed != len(msgs) || a.ToMoveBytes <= 0 || a.Estimate == nil {
		t.Errorf("plan: listed %d, to move %d (%d bytes), estimate %v; want %d listed and to move", a.Listed, a.ToMove, a.ToMoveBytes, a.Estimate, len(msgs))
	}
	if !a.DestCaps["UIDPLUS"] || !a.DestCaps["SPECIAL-USE"] {
		t.Errorf("plan: destination capabilities %v, want UIDPLUS and SPECIAL-USE", a.DestCaps)
	}
	got := map[string]string{}
	counts := map[string]int{}
	for _, f := range a.Folders {
		got[f.Source] = f.Destination
		counts[f.Source] = f.ToMove
	}
	wantMap := map[string]string{"INBOX": "INBOX", "Archive.2019": "Archive/2019", "Gesendete Elemente": "Sent"}
	wantCounts := map[string]int{"INBOX": 4, "Archive.2019": 1, "Gesendete Elemente": 1}
	for src, dst := range wantMap {
		if got[src] != dst || counts[src] != wantCounts[src] {
			t.Errorf("plan: folder %q -> %q with %d to move, want %q with %d (folders %+v)", src, got[src], counts[src], dst, wantCounts[src], a.Folders)
		}
	}
	var text strings.Builder
	writePlanText(&text, rep)
	if !strings.Contains(text.String(), "folder:        Gesendete Elemente -> Sent (") ||
		!strings.Contains(text.String(), "to move:       6 messages") {
		t.Errorf("plan text report lacks the mapping or the counts:\n%s", text.String())
	}
	t.Logf("plan output:\n%s", text.String())
	if s := mailboxSnapshot(t, p.src); s != srcBefore {
		t.Errorf("plan changed the source: %s, was %s", s, srcBefore)
	}
	if s := mailboxSnapshot(t, p.dst); s != dstBefore {
		t.Errorf("plan changed the destination: %s, was %s", s, dstBefore)
	}
	if _, err := os.Stat(p.state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plan created the checkpoint (%v)", err)
	}

	if r := runInProcess(t, p.getenv, p.imapCopyArgs()...); r.code != exitOK {
		t.Fatalf("IMAP → IMAP copy: exit %d\n%s", r.code, r.stderr)
	}
	modes := [][]string{nil, {"--full"}, {"--no-ledger"}}
	for _, mode := range modes {
		code, rep := imapVerifyJSON(t, p, mode...)
		if code != exitOK || !rep.OK || len(diffs(rep)) != 0 {
			t.Fatalf("verify %v after the copy: exit %d, differences %+v\n", mode, code, rep.Accounts[0].Items)
		}
		if s := rep.Accounts[0].Stats; s.Matched != len(msgs) || s.SourceMessages != len(msgs) {
			t.Errorf("verify %v: stats %+v, want %d source messages, all matched", mode, s, len(msgs))
		}
	}

	// plan after the copy: everything done, nothing to move.
	r = runCmd(t, runPlan, p.getenv, p.imapInspectArgs("--json")...)
	rep = planReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitOK {
		t.Fatalf("plan after the copy: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if a := rep.Accounts[0]; a.ToMove != 0 || a.AlreadyDone != len(msgs) {
		t.Errorf("plan after the copy: to move %d, already done %d; want 0, %d", a.ToMove, a.AlreadyDone, len(msgs))
	}

	want := tamper(t, p)
	for _, mode := range modes {
		code, rep := imapVerifyJSON(t, p, mode...)
		if code != exitPartial || rep.OK {
			t.Errorf("verify %v after tampering: exit %d, ok %v; want %d", mode, code, rep.OK, exitPartial)
		}
		if got := diffs(rep); !slices.Equal(got, want) {
			t.Errorf("verify %v: differences %v, want %v\n%+v", mode, got, want, rep.Accounts[0].Items)
		}
	}
	r = runCmd(t, runVerify, p.getenv, p.imapInspectArgs()...)
	if r.code != exitPartial || !strings.Contains(r.stdout, "INBOX;UIDVALIDITY=") {
		t.Errorf("verify (text): exit %d, want %d with IMAP keys\n%s\n%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	t.Logf("verify output:\n%s", r.stdout)
}

// TestE2EIMAPVerifyConfig: with -c, verify and plan map folders by the
// config's [folders] section, as run does: an excluded folder is neither
// checked nor planned, a renamed one is looked for under its new name.
func TestE2EIMAPVerifyConfig(t *testing.T) {
	p := imapPair(t)
	d := time.Date(2021, 7, 1, 12, 0, 0, 0, time.UTC)
	for _, m := range []seeded{
		{"INBOX", "Message-ID: <c1@example.test>\r\nSubject: one\r\n\r\none\r\n", "S", d},
		{"Projects", "Message-ID: <c2@example.test>\r\nSubject: two\r\n\r\ntwo\r\n", "F", d.Add(time.Hour)},
		{"Spam", "Message-ID: <c3@example.test>\r\nSubject: spam\r\n\r\nbuy\r\n", "", d.Add(2 * time.Hour)},
	} {
		if err := p.src.SeedMaildir("alice", m.folder, []byte(m.body), m.flags, m.date); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`state = %q
[source]
url = "imaps://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[folders]
exclude = ["Spam"]
[[folders.rename]]
from = "Projects"
to = "Old/Projects"
[[account]]
source_user = "alice"
source_password_command = "echo %s"
dest_password_command = "echo %s"
`, p.state, p.src.IMAPSAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, dstPassword)
	path := p.dir + "/migrate.toml"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }

	r := runCmd(t, runPlan, getenv, "-c", path)
	if r.code != exitOK || !strings.Contains(r.stdout, "folder:        Projects -> Old/Projects (will be created; 1 to move") ||
		!strings.Contains(r.stdout, "to move:       2 messages") {
		t.Errorf("plan -c: exit %d, want the renamed folder and 2 to move:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		// An excluded folder has nothing to move (account.MapFolders
		// leaves it out).
		if strings.Contains(l, "Spam") && strings.Contains(l, "to move") {
			t.Errorf("plan -c: the excluded folder has messages to move: %q", l)
		}
	}

	if r := runInProcess(t, getenv, "run", "-c", path, "--json", "--progress", "none"); r.code != exitOK || r.report.Totals.Copied != 2 {
		t.Fatalf("run -c: exit %d, copied %d; want 0, 2\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	if n := len(destMessages(t, p, "Old/Projects")); n != 1 {
		t.Fatalf("Old/Projects holds %d messages after the run, want 1", n)
	}
	r = runCmd(t, runVerify, getenv, "-c", path, "--json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify -c --json does not parse: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	if s := rep.Accounts[0].Stats; r.code != exitOK || s.SourceMessages != 2 || s.Matched != 2 {
		t.Errorf("verify -c: exit %d, stats %+v; want 0 with 2 source messages matched\n%+v", r.code, s, rep.Accounts[0])
	}

	// A flag changed at the destination of the renamed folder is found there.
	if _, err := p.dst.Doveadm("flags", "remove", "-u", "alice", `\Flagged`, "mailbox", "Old/Projects", "all"); err != nil {
		t.Fatal(err)
	}
	code, rep := 0, verifyReport{}
	r = runCmd(t, runVerify, getenv, "-c", path, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify -c --json does not parse: %v\n%s", err, r.stdout)
	}
	code = r.code
	if got := diffs(rep); code != exitPartial || len(got) != 1 || !strings.HasPrefix(got[0], "! ") || rep.Accounts[0].Items[0].Mailbox != "Old/Projects" {
		t.Errorf("verify -c after unflagging: exit %d, differences %v (%+v); want one ! in Old/Projects", code, got, rep.Accounts[0].Items)
	}
}
