package main

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

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
