package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tooBigMessage cannot be copied with --max-message-size 2000: the first
// run skips it for good, later runs list it, and delete_after must never
// delete it.
var tooBigMessage = []byte("Message-ID: <big@example.test>\r\nSubject: too big\r\n\r\n" + strings.Repeat("too big for the limit\r\n", 200))

// atTime returns getenv with the pipeline's clock set to now through the
// MAILFERRY_TEST_NOW hook.
func atTime(getenv func(string) string, now time.Time) func(string) string {
	return func(k string) string {
		if k == "MAILFERRY_TEST_NOW" {
			return now.UTC().Format(time.RFC3339)
		}
		return getenv(k)
	}
}

// TestE2EDeleteAfterPOP3: copy --delete-after 30d from a POP3 source keeps
// everything for 30 days, then deletes exactly the copied messages.
func TestE2EDeleteAfterPOP3(t *testing.T) {
	for _, ledger := range crashLedgers {
		if onLedger(ledger, false) {
			t.Run(ledger, func(t *testing.T) { testDeleteAfterPOP3(t, ledger) })
		}
	}
}

func testDeleteAfterPOP3(t *testing.T, ledger string) {
	p := startPair(t)
	onPostgres(t, p, ledger)
	seed(t, p, append(simpleMessages(6), tooBigMessage))
	served := sourceServed(t, p)
	var want [][]byte // what the destination must hold: all but the big message
	for _, m := range served {
		if !bytes.Contains(m, []byte("<big@example.test>")) {
			want = append(want, m)
		}
	}
	args := p.copyArgs("--delete-after", "30d", "--max-message-size", "2000")
	start := time.Now()

	r := runInProcess(t, p.getenv, args...)
	if a := r.report.Accounts[0]; r.code != exitPartial || a.Copied != 6 || a.Skipped != 1 || a.Deleted != 0 || a.DeleteWaiting != 6 {
		t.Fatalf("first run: exit %d, copied %d, skipped %d, deleted %d, waiting %d; want %d, 6, 1, 0, 6\n%s",
			r.code, a.Copied, a.Skipped, a.Deleted, a.DeleteWaiting, exitPartial, r.stderr)
	}

	r = runInProcess(t, atTime(p.getenv, start.Add(29*24*time.Hour)), args...)
	if a := r.report.Accounts[0]; a.Copied != 0 || a.Deleted != 0 || a.DeleteWaiting != 6 {
		t.Fatalf("29 days later: copied %d, deleted %d, waiting %d; want 0, 0, 6\n%s", a.Copied, a.Deleted, a.DeleteWaiting, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 7 {
		t.Fatalf("29 days later the source holds %d messages, want 7", n)
	}

	// A dry run 31 days later says what it would delete and deletes nothing.
	later := atTime(p.getenv, start.Add(31*24*time.Hour))
	r = runInProcess(t, later, append(args[:len(args):len(args)], "--dry-run")...)
	if a := r.report.Accounts[0]; a.Deleted != 6 || !r.report.DryRun {
		t.Fatalf("dry run 31 days later: deleted %d (dry_run %v), want 6 would-be deletions\n%s", a.Deleted, r.report.DryRun, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 7 {
		t.Fatalf("after a dry run the source holds %d messages, want 7", n)
	}

	// Killed after the DELEs, before QUIT: nothing is deleted, and the
	// checkpoint still has every copied message as done.
	r = runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=deleted:1",
		"MAILFERRY_TEST_NOW=" + start.Add(31*24*time.Hour).UTC().Format(time.RFC3339)}, args...)
	if r.code != -1 || !strings.Contains(r.stderr, "crashpoint deleted:1") {
		t.Fatalf("the run was not killed at deleted:1: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 7 {
		t.Fatalf("a run killed before QUIT left %d messages at the source, want 7", n)
	}

	textArgs := slicesWithout(args, "--json")
	r = runInProcess(t, later, textArgs...)
	// The big message was reported by the first run: listed, no failure.
	if r.code != exitOK || !strings.Contains(r.stdout, "6 deleted at the source") || !strings.Contains(r.stdout, "1 skipped for good by earlier runs") {
		t.Fatalf("31 days later: exit %d, want %d, 6 deleted and the earlier skip in the summary\n%s\n%s", r.code, exitOK, r.stdout, r.stderr)
	}
	left := sourceServed(t, p)
	if len(left) != 1 || !bytes.Contains(left[0], []byte("<big@example.test>")) {
		t.Fatalf("the source holds %d messages after the deletion, want only the one that was never copied", len(left))
	}
	assertSameMultiset(t, want, destBodies(destMessages(t, p, "INBOX")))

	// Nothing more to do; the uncopied message stays.
	r = runInProcess(t, atTime(p.getenv, start.Add(400*24*time.Hour)), args...)
	if a := r.report.Accounts[0]; a.Deleted != 0 || a.Copied != 0 || len(sourceServed(t, p)) != 1 {
		t.Fatalf("400 days later: deleted %d, copied %d, source %d; want 0, 0, 1", a.Deleted, a.Copied, len(sourceServed(t, p)))
	}
	assertSameMultiset(t, want, destBodies(destMessages(t, p, "INBOX")))
}

// slicesWithout returns args without the given one.
func slicesWithout(args []string, drop string) []string {
	var out []string
	for _, a := range args {
		if a != drop {
			out = append(out, a)
		}
	}
	return out
}

// TestE2EDeleteAfterIMAP: `run -c` with an account's delete_after from an
// IMAP source with two folders; status shows what is waiting. The message
// never copied is too big (Dovecot's IMAP serves a NUL byte as 0x80, so
// here the NUL message would be copied).
func TestE2EDeleteAfterIMAP(t *testing.T) {
	bigMessage := []byte("Message-ID: <big@example.test>\r\nSubject: too big\r\n\r\n" + strings.Repeat("y", 5000) + "\r\n")
	p := imapPair(t)
	d := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	var seeded int
	for _, f := range []string{"INBOX", "Archive"} {
		for i := 0; i < 3; i++ {
			body := fmt.Sprintf("Message-ID: <%s-%d@example.test>\r\nSubject: %s %d\r\n\r\nbody %d\r\n", f, i, f, i, i)
			if err := p.src.SeedMaildir("alice", f, []byte(body), "S", d.Add(time.Duration(seeded)*time.Hour)); err != nil {
				t.Fatal(err)
			}
			seeded++
		}
	}
	if err := p.src.SeedMaildir("alice", "INBOX", bigMessage, "", d); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state = %q
[source]
url = "imaps://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[policy]
max_message_bytes = 2000
[[account]]
name = "alice"
source_user = "alice"
source_password_command = "echo %s"
dest_password_command = "echo %s"
delete_after = "30d"
`, p.state, p.src.IMAPSAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, dstPassword)
	path := filepath.Join(p.dir, "fetch.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-c", path, "--json", "--progress", "none"}
	start := time.Now()
	srcSummary := map[string][]string{"INBOX": summary(p.srcMessages(t, "INBOX")), "Archive": summary(p.srcMessages(t, "Archive"))}

	r := runInProcess(t, p.getenv, args...)
	if a := r.report.Accounts[0]; r.code != exitPartial || a.Copied != 6 || a.Skipped != 1 || a.DeleteWaiting != 6 {
		t.Fatalf("first run: exit %d, copied %d, skipped %d, waiting %d; want %d, 6, 1, 6\n%s",
			r.code, a.Copied, a.Skipped, a.DeleteWaiting, exitPartial, r.stderr)
	}

	r = runCmd(t, runStatus, p.getenv, "-c", path, "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
		t.Fatalf("status --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if a := rep.Accounts[0]; a.DeleteAfter != "30d" || a.DeleteWaiting != 6 || a.NextDeleteDue == nil ||
		a.NextDeleteDue.Before(start.Add(30*24*time.Hour-time.Minute)) {
		t.Errorf("status: delete_after %q, waiting %d, next due %v; want 30d, 6, about 30 days from now", a.DeleteAfter, a.DeleteWaiting, a.NextDeleteDue)
	}
	r = runCmd(t, runStatus, p.getenv, "-c", path)
	if !strings.Contains(r.stdout, "delete_after 30d: 6 messages kept at the source") {
		t.Errorf("status text does not show the waiting messages:\n%s", r.stdout)
	}

	r = runInProcess(t, atTime(p.getenv, start.Add(29*24*time.Hour)), args...)
	if a := r.report.Accounts[0]; a.Deleted != 0 || a.DeleteWaiting != 6 {
		t.Fatalf("29 days later: deleted %d, waiting %d; want 0, 6\n%s", a.Deleted, a.DeleteWaiting, r.stderr)
	}
	if n := len(p.srcMessages(t, "INBOX")) + len(p.srcMessages(t, "Archive")); n != 7 {
		t.Fatalf("29 days later the source holds %d messages, want 7", n)
	}

	r = runInProcess(t, atTime(p.getenv, start.Add(31*24*time.Hour)), args...)
	if a := r.report.Accounts[0]; a.Deleted != 6 || a.DeleteWaiting != 0 || a.Copied != 0 {
		t.Fatalf("31 days later: deleted %d, waiting %d, copied %d; want 6, 0, 0\n%s", a.Deleted, a.DeleteWaiting, a.Copied, r.stderr)
	}
	inbox := p.srcMessages(t, "INBOX")
	if len(inbox) != 1 || !bytes.Contains(inbox[0].body, []byte("<big@example.test>")) || len(p.srcMessages(t, "Archive")) != 0 {
		t.Fatalf("after the deletion the source INBOX holds %d and Archive %d, want only the never-copied message",
			len(inbox), len(p.srcMessages(t, "Archive")))
	}
	// The destination is exactly what was copied: bytes, flags and dates.
	for folder, want := range srcSummary {
		var keep []string
		for _, s := range want {
			if !strings.HasPrefix(s, digests([][]byte{bigMessage})[0][:12]) {
				keep = append(keep, s)
			}
		}
		if got := summary(destMessages(t, p, folder)); strings.Join(got, "\n") != strings.Join(keep, "\n") {
			t.Errorf("destination %s:\n got %q\nwant %q", folder, got, keep)
		}
	}
}

// The keep/delete settings that contradict each other are usage errors
// (exit 2) that name the keys, before anything connects.
func TestDeletePolicyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	base := "[source]\nurl = \"pop3s://127.0.0.1:1\"\n[destination]\nurl = \"imaps://127.0.0.1:1\"\n" +
		"[[account]]\nsource_user = \"a\"\nsource_password_command = \"echo x\"\ndest_password_command = \"echo y\"\n"
	tests := []struct {
		name   string
		config string
		env    map[string]string
		want   string
	}{
		{"both top-level keys", "delete_source = true\ndelete_after = \"30d\"\n" + base, nil,
			"delete_source and delete_after exclude each other"},
		{"both keys in an account", base + "delete_source = true\ndelete_after = \"30d\"\n", nil,
			`account "a": delete_source and delete_after exclude each other`},
		{"bad test clock", base, map[string]string{"MAILFERRY_TEST_NOW": "tomorrow"}, "MAILFERRY_TEST_NOW"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runInProcess(t, func(k string) string { return tc.env[k] }, "run", "-c", path, "--progress", "none")
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitUsage, tc.want)
			}
		})
	}
}
