package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// aclDovecotConfig makes a Dovecot whose users may set only \Seen and
// \Deleted (ACL rights without "w"): SELECT answers PERMANENTFLAGS
// (\Deleted \Seen), and APPEND or STORE silently drop every other flag.
func aclDovecotConfig(t *testing.T) string {
	t.Helper()
	// Dovecot's unprivileged processes read the file: a directory they can
	// reach, not t.TempDir's.
	dir, err := os.MkdirTemp("", "mf-acl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	acl := filepath.Join(dir, "global-acl")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acl, []byte("* owner lrsitekxe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "mail_plugins = $mail_plugins acl\nplugin {\n  acl = vfile:" + acl + "\n}\n"
}

// storeSourceFlags changes the flags of the message with subject in
// user's INBOX on s.
func storeSourceFlags(t *testing.T, s *dovecot.Server, user, password, subject string, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
	if err != nil || len(found.AllUIDs()) != 1 {
		t.Fatalf("searching %q: %v, %v", subject, found, err)
	}
	uids := imap.UIDSetNum(found.AllUIDs()...)
	if err := c.Store(uids, &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		t.Fatalf("storing flags on %q: %v", subject, err)
	}
}

// TestE2ECapsKeepFlagSyncAndPermanentFlags: with max_connections on both
// sides the engine still syncs flags changed at the source since the first
// run, and still filters flags by the destination's PERMANENTFLAGS (a flag
// it refuses is dropped and counted, not fatal). Both went silent when the
// caps wrapped the destination and hid its optional interfaces.
func TestE2ECapsKeepFlagSyncAndPermanentFlags(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-capsrc", CA: ca, Users: map[string]string{"alice": srcPassword}})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-capdst", CA: ca, Users: map[string]string{"alice": dstPassword},
		ExtraConfig: aclDovecotConfig(t)})
	seeded := []struct {
		subject string
		flags   []imap.Flag
	}{
		{"alpha-unread", nil},
		{"bravo-read", []imap.Flag{imap.FlagSeen}},
		{"charlie-labelled", []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$Label1"}},
	}
	for _, m := range seeded {
		appendWithFlags(t, src, "alice", srcPassword, "INBOX",
			[]byte(fmt.Sprintf("Message-ID: <%s@example.test>\r\nSubject: %s\r\n\r\nbody\r\n", m.subject, m.subject)), m.flags)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "migrate.toml")
	cfg := fmt.Sprintf(`state = "state.db"
workers = 2
[source]
url = "imaps://%s"
tls_ca = %q
max_connections = 2
[destination]
url = "imaps://%s"
tls_ca = %q
max_connections = 4
[folders]
sync_flags = true
[[account]]
source_user = "alice"
source_password = %q
dest_password = %q
`, src.IMAPSAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile(), srcPassword, dstPassword)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	destFlags := func() []string {
		t.Helper()
		var out []string
		for _, m := range destMessagesOf(t, dst, "alice", dstPassword, "INBOX") {
			_, rest, _ := strings.Cut(string(m.body), "Subject: ")
			subject, _, _ := strings.Cut(rest, "\r\n")
			out = append(out, subject+": "+flagSet(m.flags))
		}
		slices.Sort(out)
		return out
	}

	r := runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none")
	a := r.report.Accounts
	if r.code != exitOK || len(a) != 1 || a[0].Copied != 3 {
		t.Fatalf("first run: exit %d, %+v; want 0 and 3 copied\n%s", r.code, a, r.stderr)
	}
	if a[0].FlagsDropped != 2 {
		t.Errorf("first run: %d flags dropped, want 2 (\\Flagged and $Label1 are not in PERMANENTFLAGS)", a[0].FlagsDropped)
	}
	want := []string{"alpha-unread: ", "bravo-read: \\seen", `charlie-labelled: \seen`}
	if got := destFlags(); !slices.Equal(got, want) {
		t.Errorf("after the first run the destination has %q, want %q", got, want)
	}

	storeSourceFlags(t, src, "alice", srcPassword, "alpha-unread", imap.StoreFlagsAdd, imap.FlagSeen)
	storeSourceFlags(t, src, "alice", srcPassword, "bravo-read", imap.StoreFlagsDel, imap.FlagSeen)
	r = runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none")
	a = r.report.Accounts
	if r.code != exitOK || len(a) != 1 || a[0].Copied != 0 || a[0].AlreadyDone != 3 {
		t.Fatalf("second run: exit %d, %+v; want 0, nothing copied, 3 already done\n%s", r.code, a, r.stderr)
	}
	if a[0].FlagsUpdated != 2 {
		t.Errorf("second run: flags of %d messages updated, want 2 (the labelled one keeps what the destination allows)", a[0].FlagsUpdated)
	}
	want = []string{"alpha-unread: \\seen", "bravo-read: ", `charlie-labelled: \seen`}
	if got := destFlags(); !slices.Equal(got, want) {
		t.Errorf("after the second run the destination has %q, want %q", got, want)
	}
}

// TestE2ESecretFailsOnlyItsAccount: a password command that fails is the
// failure of its account, not a bad command line: in a run the other
// accounts go on and the run exits 3; a one-account copy exits 1 with the
// report. A secret configured wrongly (two sources) is still a bad config,
// exit 2 before anything runs.
func TestE2ESecretFailsOnlyItsAccount(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-secsrc", CA: ca, Users: map[string]string{"alice": "pa", "bob": "pb"}})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-secdst", CA: ca, Users: map[string]string{"alice": "da", "bob": "db"}})
	for _, u := range []string{"alice", "bob"} {
		for i, m := range simpleMessages(2) {
			if err := src.Deliver(u, "INBOX", append([]byte(fmt.Sprintf("X-User: %s %d\r\n", u, i)), m...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	write := func(name, accounts string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		doc := fmt.Sprintf("state = \"state.db\"\n[source]\nurl = \"pop3s://%s\"\ntls_ca = %q\n[destination]\nurl = \"imaps://%s\"\ntls_ca = %q\n",
			src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile()) + accounts
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	noEnv := func(string) string { return "" }

	path := write("run.toml", `[[account]]
source_user = "alice"
source_password_command = "echo pa"
dest_password_command = "echo da"
[[account]]
source_user = "bob"
source_password_command = "echo pb"
dest_password_command = "echo vault is locked >&2; exit 1"
`)
	r := runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none")
	if r.code != exitPartial {
		t.Fatalf("run with one failing password command: exit %d, want %d\n%s%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	for _, a := range r.report.Accounts {
		switch {
		case strings.Contains(a.Account, "alice"):
			if a.Copied != 2 || a.Error != "" {
				t.Errorf("alice: copied %d, error %q; want 2 and none", a.Copied, a.Error)
			}
		case strings.Contains(a.Account, "bob"):
			if !strings.Contains(a.Error, "dest_password_command") || !strings.Contains(a.Error, "vault is locked") ||
				a.ErrorClass != "fatal" || a.Attempts != 1 {
				t.Errorf("bob: error %q (%s) after %d attempts; want a fatal error naming dest_password_command and its stderr, not retried",
					a.Error, a.ErrorClass, a.Attempts)
			}
		default:
			t.Errorf("unexpected account %q", a.Account)
		}
	}
	if n, err := dst.MailboxCount("alice", "INBOX"); err != nil || n != 2 {
		t.Errorf("alice's destination holds %d (%v), want 2", n, err)
	}

	bad := write("bad.toml", "[[account]]\nsource_user = \"alice\"\nsource_password_env = \"X\"\nsource_password_command = \"echo pa\"\ndest_password_command = \"echo da\"\n")
	r = runInProcess(t, noEnv, "run", "-c", bad, "--progress", "none")
	if r.code != exitUsage || !strings.Contains(r.stderr, "conflicting") {
		t.Errorf("two sources for one password: exit %d, want %d with the conflict named\n%s", r.code, exitUsage, r.stderr)
	}

	copyArgs := func(extra ...string) []string {
		return append([]string{"copy", "pop3s://bob@" + src.POP3SAddr(), "imaps://bob@" + dst.IMAPSAddr(), "--tls-ca", src.CAFile(),
			"--state", filepath.Join(dir, "copy.db"), "--json", "--progress", "none"}, extra...)
	}
	r = runInProcess(t, noEnv, copyArgs("--source-password-command", "echo pb", "--dest-password-command", "exit 7")...)
	if r.code != exitFatal || len(r.report.Accounts) != 1 || !strings.Contains(r.report.Accounts[0].Error, "--dest-password-command") {
		t.Errorf("copy with a failing password command: exit %d, report %+v; want %d and the account's error naming the flag\n%s",
			r.code, r.report.Accounts, exitFatal, r.stderr)
	}
	withEnv := func(k string) string {
		if k == "MAILFERRY_SOURCE_PASSWORD" {
			return "pb"
		}
		return ""
	}
	r = runInProcess(t, withEnv, copyArgs("--source-password-file", filepath.Join(dir, "pw"), "--dest-password-command", "echo db")...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "conflicting") {
		t.Errorf("copy with two source passwords: exit %d, want %d with the conflict named\n%s", r.code, exitUsage, r.stderr)
	}
}

// TestE2EInsecureWarnsOncePerServer: turning certificate checks off (the
// flag, its variable or the config's key) draws one warning per server
// from every command that connects, however many accounts and
// connections use the server.
func TestE2EInsecureWarnsOncePerServer(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(2))
	dir := t.TempDir()
	config := func(key string) string {
		path := filepath.Join(dir, fmt.Sprintf("c%d.toml", len(key)))
		doc := fmt.Sprintf(`state = %q
create_folders = true
[source]
url = "pop3s://%s"
%s
[destination]
url = "imaps://%s"
%s
[[account]]
name = "one"
source_user = "alice"
source_password = %q
dest_password = %q
dest_folder = "One"
[[account]]
name = "two"
source_user = "alice"
source_password = %q
dest_password = %q
dest_folder = "Two"
`, p.state, p.src.POP3SAddr(), key, p.dst.IMAPSAddr(), key, srcPassword, dstPassword, srcPassword, dstPassword)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	plain := config("")
	keyed := config("insecure_skip_verify = true")
	envToo := func(k string) string {
		if k == "MAILFERRY_INSECURE_SKIP_VERIFY" {
			return "true"
		}
		return p.getenv(k)
	}
	inspect := []string{p.srcURL(), p.dstURL(), "--state", p.state}
	tests := []struct {
		name   string
		getenv func(string) string
		args   []string
	}{
		{"copy --insecure-skip-verify", p.getenv, p.copyArgs("--insecure-skip-verify")},
		{"run --insecure-skip-verify", p.getenv, []string{"run", "-c", plain, "--progress", "none", "--insecure-skip-verify"}},
		{"run with MAILFERRY_INSECURE_SKIP_VERIFY", envToo, []string{"run", "-c", plain, "--progress", "none"}},
		{"run with insecure_skip_verify", p.getenv, []string{"run", "-c", keyed, "--progress", "none"}},
		{"verify --insecure-skip-verify", p.getenv, append([]string{"verify", "--insecure-skip-verify"}, inspect...)},
		{"verify -c with MAILFERRY_INSECURE_SKIP_VERIFY", envToo, []string{"verify", "-c", plain}},
		{"plan --insecure-skip-verify", p.getenv, append([]string{"plan", "--insecure-skip-verify"}, inspect...)},
		{"plan -c with MAILFERRY_INSECURE_SKIP_VERIFY", envToo, []string{"plan", "-c", plain}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, tc.getenv, tc.args...)
			if r.code != exitOK {
				t.Fatalf("exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
			}
			var warnings []string
			for _, line := range strings.Split(r.stderr, "\n") {
				if strings.Contains(line, "not verified") {
					warnings = append(warnings, line)
				}
			}
			for _, server := range []string{p.src.POP3SAddr(), p.dst.IMAPSAddr()} {
				n := 0
				for _, w := range warnings {
					if strings.Contains(w, server) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d warnings name %s, want 1", n, server)
				}
			}
			if len(warnings) != 2 {
				t.Errorf("%d warnings, want one per server:\n%s", len(warnings), r.stderr)
			}
		})
	}
	// Without any of them, no warning.
	if r := runInProcess(t, p.getenv, "run", "-c", plain, "--progress", "none", "--tls-ca", p.src.CAFile()); r.code != exitOK || strings.Contains(r.stderr, "not verified") {
		t.Errorf("certificates verified: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
