package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// secretForms are the ways a password can leak: as is, and inside the
// base64 of a SASL PLAIN response (RFC 4616: authzid NUL authcid NUL
// password) with and without an authorization identity.
func secretForms(password string, users ...string) []string {
	forms := []string{password}
	for _, u := range users {
		for _, authz := range []string{"", "carol"} {
			forms = append(forms, base64.StdEncoding.EncodeToString([]byte(authz+"\x00"+u+"\x00"+password)))
		}
	}
	return forms
}

// assertNoSecrets fails when any output holds any form of any password.
func assertNoSecrets(t *testing.T, outputs map[string]string, forms []string) {
	t.Helper()
	for name, out := range outputs {
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Errorf("%s holds a password (or its SASL PLAIN encoding)", name)
			}
		}
	}
}

// readAll returns the contents of the files that exist among paths.
func readAll(paths ...string) map[string]string {
	out := map[string]string{}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			out[p] = string(b)
		}
	}
	return out
}

// TestFaultSecrecyMasterUser: master-user logins go through POP3 AUTH PLAIN
// and IMAP AUTHENTICATE PLAIN with an authorization identity; with --trace,
// a JSON report and a config holding inline passwords, no password appears
// anywhere, the config's loose mode draws a warning, and the ledger is 0600.
func TestFaultSecrecyMasterUser(t *testing.T) {
	const srcMaster, dstMaster = "Src-Master-Inline-9x", "Dst-Master-Inline-7y"
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-ssrc", CA: ca, Users: map[string]string{"carol": "carol-src-own-pw"},
		MasterUser: "srcadmin", MasterPassword: srcMaster})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-sdst", CA: ca, Users: map[string]string{"carol": "carol-dst-own-pw"},
		MasterUser: "dstadmin", MasterPassword: dstMaster})
	for i, m := range simpleMessages(4) {
		if err := src.SeedMaildir("carol", "INBOX", m, "", time.Unix(int64(1e9+i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state = "state.db"
[source]
url = "pop3s://%s"
tls_ca = %q
master_user = "srcadmin"
master_password = %q
[destination]
url = "imaps://%s"
tls_ca = %q
master_user = "dstadmin"
master_password = %q
[[account]]
source_user = "carol"
`, src.POP3SAddr(), src.CAFile(), srcMaster, dst.IMAPSAddr(), src.CAFile(), dstMaster)
	path := filepath.Join(dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644) // whatever the umask
	report := filepath.Join(dir, "report.json")
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", path, "--json", "--progress", "none",
		"--trace", "--report", report)
	if r.code != exitOK || r.report.Totals.Copied != 4 {
		t.Fatalf("master-user run: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	if !strings.Contains(r.stderr, "readable by group or others") {
		t.Errorf("a config with inline passwords at mode 0644 drew no warning:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "AUTH") {
		t.Errorf("the trace shows no AUTH/AUTHENTICATE command; the test does not cover SASL:\n%s", r.stderr)
	}
	outputs := readAll(report, filepath.Join(dir, "state.db"), filepath.Join(dir, "state.db-wal"),
		filepath.Join(dir, "state.db-shm"))
	outputs["stdout"], outputs["stderr"] = r.stdout, r.stderr
	forms := append(secretForms(srcMaster, "srcadmin"), secretForms(dstMaster, "dstadmin")...)
	assertNoSecrets(t, outputs, forms)
	for _, f := range []string{filepath.Join(dir, "state.db"), report} {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", filepath.Base(f), info.Mode().Perm(), err)
		}
	}
}

// TestFaultSecrecyPOP3SASLAndSpool: a POP3 server that only offers SASL
// PLAIN, traced; the process is killed mid-run with messages spooled to
// temp files: every spool file and the ledger are 0600, and no password is
// in any output or file.
func TestFaultSecrecyPOP3SASLAndSpool(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	var msgs []pop3fake.Message
	var want [][]byte
	for i := 0; i < 12; i++ {
		// 3 KB each: over --spool-memory 1KB, so every message is spooled
		// to a file.
		m := []byte(fmt.Sprintf("Message-ID: <spool-%d@example.test>\r\nSubject: spool %d\r\n\r\n%s\r\n", i, i, strings.Repeat("s", 3000)))
		msgs = append(msgs, pop3fake.Message{UIDL: fmt.Sprintf("s%d", i), Body: m})
		want = append(want, m)
	}
	src := pop3fake.NewStarted(t, pop3fake.Options{Messages: msgs, User: "u", Password: srcPassword, NoUSER: true})
	tmp := t.TempDir()
	state := filepath.Join(e.dir, "spool-state.db")
	args := []string{"copy", "pop3://u@" + src.Addr() + "?tls=none", "imaps://u@" + e.dst.IMAPSAddr(), "--allow-plaintext",
		"--tls-ca", e.src.CAFile(), "--state", state, "--json", "--progress", "none", "--trace",
		"--spool-memory", "1KB", "--batch-messages", "4"}
	r1 := runSubprocess(t, nil, []string{"TMPDIR=" + tmp, "MAILFERRY_TEST_CRASHPOINT=pending:2"}, args...)
	if r1.code != -1 {
		t.Fatalf("the run was not killed at pending:2: exit %d\n%s", r1.code, r1.stderr)
	}
	if !strings.Contains(r1.stderr, "AUTH PLAIN") {
		t.Errorf("the trace shows no AUTH PLAIN; the test does not cover SASL:\n%s", r1.stderr)
	}
	// Spool files are unlinked as soon as they are created: even a killed
	// run leaves no message bytes in TMPDIR (their mode, 0600, is checked
	// in the spool package's tests).
	if spooled, _ := filepath.Glob(filepath.Join(tmp, "mailferry-spool-*")); len(spooled) != 0 {
		t.Errorf("the killed run left %d spool files in TMPDIR", len(spooled))
	}
	r2 := runSubprocess(t, nil, []string{"TMPDIR=" + tmp}, args...)
	if r2.code != exitOK {
		t.Fatalf("resume: exit %d\n%s", r2.code, r2.stderr)
	}
	assertSameMultiset(t, want, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	if info, err := os.Stat(state); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("ledger mode %v (%v), want 0600", info.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "*"))
	outputs := readAll(append(files, state, state+"-wal", state+"-shm")...)
	outputs["stdout"], outputs["stderr"] = r1.stdout+r2.stdout, r1.stderr+r2.stderr
	assertNoSecrets(t, outputs, append(secretForms(srcPassword, "u"), secretForms(dstPassword, "u")...))
	if left, _ := filepath.Glob(filepath.Join(tmp, "mailferry-spool-*")); len(left) != 0 {
		t.Errorf("a complete run left %d spool files behind", len(left))
	}
}
