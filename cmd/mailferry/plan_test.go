package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/preflight"
)

// TestE2EPlan: three accounts, one with a wrong destination password and
// one with more mail than its quota holds: both flagged, the third fine,
// and nothing written to either server or to a checkpoint.
func TestE2EPlan(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"alice": "pa", "bob": "pb", "carol": "pc"}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: users})
	const quota = 20000
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: users, QuotaBytes: quota})
	for _, u := range []string{"alice", "bob"} {
		for i, m := range simpleMessages(3) {
			if err := src.Deliver(u, "INBOX", append([]byte(fmt.Sprintf("X-User: %s %d\r\n", u, i)), m...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 3; i++ { // 30 kB for carol: more than her quota
		m := fmt.Sprintf("Message-ID: <c%d@example.test>\r\nSubject: big %d\r\n\r\n%s\r\n", i, i, strings.Repeat("z", 10000))
		if err := src.Deliver("carol", "INBOX", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state = "state.db"
create_folders = true
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
folder = "Migrated"
tls_ca = %q
[[account]]
source_user = "alice"
source_password_command = "echo pa"
dest_password_command = "echo pa"
[[account]]
source_user = "bob"
source_password_command = "echo pb"
dest_password_command = "echo wrong"
[[account]]
source_user = "carol"
source_password_command = "echo pc"
dest_password_command = "echo pc"
`, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile())
	path := filepath.Join(dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	snapshot := func(s *dovecot.Server) string {
		t.Helper()
		var b strings.Builder
		for _, u := range []string{"alice", "bob", "carol"} {
			boxes, err := s.Mailboxes(u)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(boxes)
			for _, mb := range boxes {
				n, err := s.MailboxCount(u, mb)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s/%s=%d ", u, mb, n)
			}
		}
		return b.String()
	}
	srcBefore, dstBefore := snapshot(src), snapshot(dst)

	getenv := func(string) string { return "" }
	r := runCmd(t, runPlan, getenv, "-c", path, "--json")
	if r.code != exitPartial {
		t.Fatalf("plan: exit %d, want %d\n%s\n%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	var rep planReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("plan --json does not parse: %v\n%s", err, r.stdout)
	}
	by := map[string]preflight.Result{}
	for _, a := range rep.Accounts {
		by[a.Account] = a
	}
	alice, bob, carol := by["alice"], by["bob"], by["carol"]
	if !alice.OK || alice.ToMove != 3 || alice.ToMoveBytes <= 0 || alice.Estimate == nil || alice.Estimate.SampleMessages != 3 {
		t.Errorf("alice: %+v, want OK with 3 to move and a 3-message sample", alice)
	}
	if !alice.DestCaps["QUOTA"] || !alice.DestCaps["UIDPLUS"] || !alice.SourceCaps["UIDL"] {
		t.Errorf("alice: capabilities %v / %v, want QUOTA and UIDPLUS at the destination, UIDL at the source", alice.DestCaps, alice.SourceCaps)
	}
	if alice.Quota == nil || !alice.Quota.Enough || alice.Quota.LimitBytes < quota-1024 {
		t.Errorf("alice: quota %+v, want about %d bytes, enough", alice.Quota, quota)
	}
	if len(alice.Folders) != 1 || alice.Folders[0].Destination != "Migrated" || alice.Folders[0].Exists {
		t.Errorf("alice: folders %+v, want Migrated, to be created", alice.Folders)
	}
	if bob.OK || !strings.Contains(strings.Join(bob.Problems, ";"), "destination") {
		t.Errorf("bob (wrong password): problems %q, want a destination login problem", bob.Problems)
	}
	if carol.OK || carol.Quota == nil || carol.Quota.Enough || !strings.Contains(strings.Join(carol.Problems, ";"), "quota") {
		t.Errorf("carol (quota too small): quota %+v, problems %q", carol.Quota, carol.Problems)
	}
	if strings.Contains(r.stdout+r.stderr, "wrong") {
		t.Error("the wrong password appears in the output")
	}

	// Nothing written anywhere.
	if got := snapshot(src); got != srcBefore {
		t.Errorf("source changed: %s, was %s", got, srcBefore)
	}
	if got := snapshot(dst); got != dstBefore {
		t.Errorf("destination changed: %s, was %s", got, dstBefore)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plan created the checkpoint (%v)", err)
	}

	// The text report, from the same result (a second plan would wait out
	// the server's delay after the failed login again).
	var text strings.Builder
	writePlanText(&text, rep)
	if !strings.Contains(text.String(), "NOT ENOUGH") || !strings.Contains(text.String(), "2 accounts have problems: bob, carol") {
		t.Errorf("plan text report:\n%s", text.String())
	}
	t.Logf("plan output:\n%s", text.String())
}
