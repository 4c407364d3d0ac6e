package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EStatusSkipped: after a run that skips a too-big message, status
// shows it with its reason, in text and JSON.
func TestE2EStatusSkipped(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(3)
	msgs = append(msgs, []byte("Message-ID: <big@example.test>\r\nSubject: big\r\n\r\n"+strings.Repeat("y", 5000)+"\r\n"))
	seed(t, p, msgs)
	r := runInProcess(t, p.getenv, p.copyArgs("--max-message-size", "2000")...)
	if r.code != exitPartial {
		t.Fatalf("copy with a too-big message: exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
	}

	r = runCmd(t, runStatus, p.getenv, "--state", p.state, "--json")
	if r.code != exitOK {
		t.Fatalf("status --json: exit %d\n%s", r.code, r.stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, r.stdout)
	}
	if len(rep.Accounts) != 1 {
		t.Fatalf("%d accounts, want 1:\n%s", len(rep.Accounts), r.stdout)
	}
	a := rep.Accounts[0]
	if a.Done != 3 || a.Skipped != 1 || a.Pending != 0 || a.Failed != 0 || a.Bytes <= 0 {
		t.Errorf("done %d, skipped %d, pending %d, failed %d, bytes %d; want 3, 1, 0, 0, > 0", a.Done, a.Skipped, a.Pending, a.Failed, a.Bytes)
	}
	if len(a.SkippedMessages) != 1 || !strings.Contains(a.SkippedMessages[0].Reason, "too big") {
		t.Errorf("skipped messages %+v, want one too big", a.SkippedMessages)
	}
	if a.LastRun == nil || a.LastRun.Result != "partial" || a.LastRun.Finished == nil || a.LastRun.Skipped != 1 {
		t.Errorf("last run %+v, want a finished partial run with 1 skipped", a.LastRun)
	}

	r = runCmd(t, runStatus, p.getenv, "--state", p.state)
	if r.code != exitOK {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"SKIPPED", "skipped " + a.SkippedMessages[0].Key + ": too big", "result partial"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("status output:\n%s", r.stdout)

	// The cutover map lists every copied message with its UIDL and UID.
	mapFile := filepath.Join(p.dir, "map.csv")
	r = runCmd(t, runStatus, p.getenv, "--state", p.state, "--export-map", mapFile)
	if r.code != exitOK {
		t.Fatalf("status --export-map: exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(mapFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "account,source_key,uidl,dest_mailbox,dest_uidvalidity,dest_uid" || len(lines) != 1+a.Done {
		t.Fatalf("map has %d lines (header %q), want a header and %d rows:\n%s", len(lines), lines[0], a.Done, b)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if f[2] == "" || f[2] != f[1] || f[3] != "INBOX" || f[4] == "0" || f[5] == "0" {
			t.Errorf("map row %q: want the UIDL twice, INBOX, a UIDVALIDITY and a UID", l)
		}
	}
}

// TestStatusNoCheckpoint: without a checkpoint, status fails (or with -c
// lists the accounts as never run) and creates no file.
func TestStatusNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "none.db")
	r := runCmd(t, runStatus, func(string) string { return "" }, "--state", state)
	if r.code != exitFatal || !strings.Contains(r.stderr, "no checkpoint") {
		t.Errorf("status without a checkpoint: exit %d, want %d and a message\n%s", r.code, exitFatal, r.stderr)
	}
	cfg := filepath.Join(dir, "m.toml")
	os.WriteFile(cfg, []byte(`state = "none.db"
[source]
url = "pop3s://pop.example"
[destination]
url = "imaps://imap.example"
[[account]]
source_user = "alice"
source_password_env = "X_PW"
dest_password_env = "X_PW"
`), 0o600)
	r = runCmd(t, runStatus, func(string) string { return "" }, "-c", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("status -c: exit %d\n%s", r.code, r.stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Accounts) != 1 || !rep.Accounts[0].NeverRun || rep.Accounts[0].Name != "alice" {
		t.Errorf("accounts %+v, want alice, never run", rep.Accounts)
	}
	for _, p := range []string{state, filepath.Join(dir, "none.db")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("status created %s (%v)", p, err)
		}
	}
}
