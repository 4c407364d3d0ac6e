package main

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/courier"
	"github.com/mailferry/mailferry/internal/testkit/cyrus"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailutils"
)

// TestInteropRefusedFolderName: GNU Mailutils keeps each folder in an
// mbox file, so a folder holding mail cannot have children: CREATE
// "Old/Archive/2019" is refused once "Old/Archive" holds mail. The copy
// does not fail: the folder goes to a safe name, "Old_Archive_2019", said
// in the log and the report's notes; the next run and plan map it there
// again and the second run copies nothing.
func TestInteropRefusedFolderName(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-fnsrc", CA: ca, Users: map[string]string{"u": srcPassword}})
	dst := mailutils.Start(t, mailutils.Options{CA: ca, Users: map[string]string{"u": dstPassword}})
	date := time.Date(2019, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, f := range []string{"INBOX", "Old/Archive", "Old/Archive/2019", "Old/Archive/2019"} {
		body := []byte("Subject: in " + f + "\r\nMessage-ID: <fn" + string(rune('a'+i)) + "@mf.test>\r\n\r\nbody\r\n")
		if err := src.SeedMaildir("u", f, body, "S", date); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir() + "/state.db"
	srcURL := "imaps://u@" + src.IMAPSAddr()
	dstURL := "imaps://" + url.PathEscape(dst.Login("u")) + "@" + dst.IMAPSAddr()
	args := []string{"copy", srcURL, dstURL, "--tls-ca", src.CAFile(), "--state", state, "--json", "--progress", "none"}

	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 4 {
		t.Fatalf("first run: exit %d, copied %d, error %q; want %d, 4\n%s", r.code, a.Copied, a.Error, exitOK, r.stderr)
	}
	note := strings.Join(a.Notes, "\n")
	if !strings.Contains(note, `"Old/Archive/2019" goes to "Old_Archive_2019"`) || !strings.Contains(note, "Cannot create mailbox") {
		t.Errorf("notes %q, want the safe name and the server's reply", a.Notes)
	}
	msgs, err := dst.Messages(context.Background(), "u", "Old_Archive_2019")
	if err != nil || len(msgs) != 2 {
		t.Errorf("Old_Archive_2019 holds %d messages (%v), want 2", len(msgs), err)
	}

	r = runInProcess(t, passwords, args...)
	a = r.report.Accounts[0]
	if r.code != exitOK || a.Copied != 0 || a.AlreadyDone != 4 {
		t.Fatalf("second run: exit %d, copied %d, already done %d; want %d, 0, 4\n%s", r.code, a.Copied, a.AlreadyDone, exitOK, r.stderr)
	}
	if !slices.ContainsFunc(a.Notes, func(n string) bool {
		return strings.Contains(n, `"Old_Archive_2019", the safe name an earlier run gave it`)
	}) {
		t.Errorf("second run notes %q, want the same safe name", a.Notes)
	}

	p := runCmd(t, runPlan, passwords, srcURL, dstURL, "--tls-ca", src.CAFile(), "--state", state, "--json")
	var plan planReport
	if err := json.Unmarshal([]byte(p.stdout), &plan); err != nil || len(plan.Accounts) != 1 {
		t.Fatalf("plan: exit %d, %v\n%s%s", p.code, err, p.stdout, p.stderr)
	}
	found := false
	for _, f := range plan.Accounts[0].Folders {
		if f.Source == "Old/Archive/2019" && f.Destination == "Old_Archive_2019" && f.Exists {
			found = true
		}
	}
	if !found || len(plan.Accounts[0].Notes) == 0 {
		t.Errorf("plan folders %+v notes %q, want Old/Archive/2019 -> Old_Archive_2019 and a note", plan.Accounts[0].Folders, plan.Accounts[0].Notes)
	}
}

// TestInteropLongFolderName: Cyrus keeps a folder name of 300 bytes,
// Courier refuses it ("NO Cannot create this folder."); the folder goes to
// its safe name, cut to 60 bytes, on every run.
func TestInteropLongFolderName(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := cyrus.Start(t, cyrus.Options{CA: ca, Users: map[string]string{"u": srcPassword}})
	dst := courier.Start(t, courier.Options{CA: ca, Users: map[string]string{"u": dstPassword}})
	long := "Projekte " + strings.Repeat("x", 291)
	if err := src.Append(context.Background(), "u", "INBOX."+long, []byte("Subject: long\r\nMessage-ID: <ln@mf.test>\r\n\r\nbody\r\n"),
		[]string{`\Seen`}, time.Now()); err != nil {
		t.Fatal(err)
	}
	args := []string{"copy", "imaps://u@" + src.IMAPSAddr(), "imaps://u@" + dst.IMAPSAddr(), "--tls-ca", dst.CAFile(),
		"--state", t.TempDir() + "/state.db", "--json", "--progress", "none"}
	safe := "INBOX." + long[:60]
	for run := 1; run <= 2; run++ {
		r := runInProcess(t, passwords, args...)
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Copied+a.AlreadyDone != 1 {
			t.Fatalf("run %d: exit %d, copied %d, error %q\n%s", run, r.code, a.Copied, a.Error, r.stderr)
		}
		if !slices.ContainsFunc(a.Notes, func(n string) bool { return strings.Contains(n, `goes to "`+safe+`"`) }) {
			t.Errorf("run %d: notes %q, want the folder sent to %q", run, a.Notes, safe)
		}
	}
	if msgs, err := dst.Messages(context.Background(), "u", safe); err != nil || len(msgs) != 1 {
		t.Errorf("%q holds %d messages (%v), want 1", safe, len(msgs), err)
	}
}
