package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// TestE2EStartTLSBothSides copies over pop3:// (STLS) and imap:// (STARTTLS).
func TestE2EStartTLSBothSides(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(5))
	served := sourceServed(t, p)
	r := runInProcess(t, p.getenv, "copy", "pop3://alice@"+p.src.POP3Addr(), "imap://alice@"+p.dst.IMAPAddr()+"/Imported/From POP",
		"--tls-ca", p.src.CAFile(), "--state", p.state, "--json", "--progress", "none", "--flags", "seen", "--create-folders")
	if r.code != exitOK {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	got := destMessages(t, p, "Imported/From POP")
	assertSameMultiset(t, served, destBodies(got))
	for _, m := range got {
		m.flags = slices.DeleteFunc(m.flags, func(f imap.Flag) bool { return f == `\Recent` })
		if len(m.flags) != 1 || m.flags[0] != `\Seen` {
			t.Errorf("flags %v, want [\\Seen] with --flags seen", m.flags)
		}
	}
}

// TestE2ETLSErrorsNameTheFix: an untrusted certificate is refused with a
// message naming --tls-ca; plaintext needs an explicit opt-in.
func TestE2ETLSErrorsNameTheFix(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(2))
	r := runInProcess(t, p.getenv, "copy", p.srcURL(), p.dstURL(), "--state", p.state, "--progress", "none")
	if r.code != exitFatal {
		t.Fatalf("untrusted certificate: exit %d, want %d\n%s%s", r.code, exitFatal, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout+r.stderr, "--tls-ca") {
		t.Errorf("the certificate error does not name --tls-ca:\n%s%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "retrying") {
		t.Errorf("a certificate error was retried:\n%s", r.stderr)
	}

	r = runInProcess(t, p.getenv, "copy", "pop3://alice@"+p.src.POP3Addr()+"?tls=none", p.dstURL(),
		"--tls-ca", p.src.CAFile(), "--state", p.state, "--progress", "none")
	if r.code != exitFatal || !strings.Contains(r.stdout+r.stderr, "allow-plaintext") {
		t.Fatalf("plaintext without opt-in: exit %d, want %d and a hint at --allow-plaintext\n%s%s", r.code, exitFatal, r.stdout, r.stderr)
	}
	r = runInProcess(t, p.getenv, "copy", "pop3://alice@"+p.src.POP3Addr()+"?tls=none", p.dstURL(),
		"--tls-ca", p.src.CAFile(), "--state", p.state, "--progress", "none", "--allow-plaintext")
	if r.code != exitOK {
		t.Fatalf("plaintext with --allow-plaintext: exit %d\n%s", r.code, r.stderr)
	}
}

// TestE2ERunConfig runs two accounts from a config file, one of them with a
// wrong password: the other completes, the report says which failed, exit 3.
func TestE2ERunConfig(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: map[string]string{"alice": "pa", "bob": "pb"}})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: map[string]string{"alice@new": "da", "bob@new": "db"}})
	p := &pair{src: src, dst: dst}
	for _, u := range []string{"alice", "bob"} {
		for i, m := range simpleMessages(4) {
			if err := src.Deliver(u, "INBOX", append([]byte(fmt.Sprintf("X-User: %s %d\r\n", u, i)), m...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bob.pw"), []byte("wrong\n"), 0o600)
	cfg := fmt.Sprintf(`state = "state.db"
workers = 2
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
source_password_env = "T_ALICE_PW"
dest_user = "alice@new"
dest_password_command = "echo da"
[[account]]
source_user = "bob"
source_password_file = "bob.pw"
dest_user = "bob@new"
dest_password_env = "T_BOB_DPW"
`, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile())
	path := filepath.Join(dir, "migrate.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	t.Setenv("T_ALICE_PW", "pa")
	t.Setenv("T_BOB_DPW", "db")
	getenv := func(string) string { return "" }
	r := runInProcess(t, getenv, "config", "check", "-c", path)
	if r.code != exitOK || !strings.Contains(r.stdout, "2 accounts") {
		t.Fatalf("config check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runInProcess(t, getenv, "run", "-c", path, "--json", "--progress", "none")
	if r.code != exitPartial {
		t.Fatalf("run with one wrong password: exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
	}
	byUser := map[string]int{}
	for _, a := range r.report.Accounts {
		if strings.Contains(a.Account, "bob") {
			if a.Error == "" || a.ErrorClass != "fatal" {
				t.Errorf("bob: error %q class %q, want a fatal authentication error", a.Error, a.ErrorClass)
			}
		} else {
			byUser["alice"] = a.Copied
		}
	}
	if byUser["alice"] != 4 {
		t.Errorf("alice copied %d, want 4", byUser["alice"])
	}
	p.dst = dst
	n, err := dst.MailboxCount("alice@new", "Migrated")
	if err != nil || n != 4 {
		t.Errorf("alice@new/Migrated holds %d (%v), want 4", n, err)
	}
	if strings.Contains(r.stdout+r.stderr, "wrong") && strings.Contains(r.stdout+r.stderr, "bob.pw: wrong") {
		t.Error("the wrong password appears in the output")
	}

	// Fix bob's password; --rerun-failed runs bob only.
	os.WriteFile(filepath.Join(dir, "bob.pw"), []byte("pb\n"), 0o600)
	r = runInProcess(t, getenv, "run", "-c", path, "--json", "--progress", "none", "--rerun-failed")
	if r.code != exitOK || r.report.Totals.Accounts != 1 || r.report.Totals.Copied != 4 || !strings.Contains(r.report.Accounts[0].Account, "bob") {
		t.Fatalf("--rerun-failed: exit %d, %d accounts, copied %d; want 0, bob only, 4\n%s",
			r.code, r.report.Totals.Accounts, r.report.Totals.Copied, r.stderr)
	}
	r = runInProcess(t, getenv, "run", "-c", path, "--json", "--progress", "none", "--rerun-failed")
	if r.code != exitOK || r.report.Totals.Accounts != 0 {
		t.Fatalf("--rerun-failed with nothing failed: exit %d, %d accounts; want 0, 0", r.code, r.report.Totals.Accounts)
	}
	r = runInProcess(t, getenv, "run", "-c", path, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Totals.Copied != 0 || r.report.Totals.AlreadyDone != 8 {
		t.Fatalf("full run: exit %d, copied %d, already done %d; want 0, 0, 8\n%s",
			r.code, r.report.Totals.Copied, r.report.Totals.AlreadyDone, r.stderr)
	}
}

// TestConfigErrorsExit2 checks that a bad config is exit status 2 with the
// key and line named, before anything connects.
func TestConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte("workers = 2\n[source]\nurl = \"pop3s://pop.example\"\npasword = \"x\"\n"), 0o600)
	for _, args := range [][]string{{"config", "check", "-c", path}, {"run", "-c", path}} {
		r := runInProcess(t, func(string) string { return "" }, args...)
		if r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, r.code, exitUsage)
		}
		if !strings.Contains(r.stderr, "bad.toml:4") || !strings.Contains(r.stderr, "pasword") {
			t.Errorf("%v: error does not name the key and line:\n%s", args, r.stderr)
		}
	}
}

// TestE2EMasterUser logs in to both sides through Dovecot master users, so
// the accounts need no passwords of their own: carol with SASL PLAIN and an
// authorization identity (the sections' default), dave with Dovecot's
// "dave*admin" form over POP3 USER/PASS and IMAP LOGIN (per-account
// master_login = "separator").
func TestE2EMasterUser(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"carol": "unknown-to-admin", "dave": "unknown-too"}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: users,
		MasterUser: "srcadmin", MasterPassword: "srcmaster"})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: users,
		MasterUser: "dstadmin", MasterPassword: "dstmaster"})
	for _, u := range []string{"carol", "dave"} {
		for i, m := range simpleMessages(3) {
			if err := src.SeedMaildir(u, "INBOX", m, "", time.Unix(int64(1e9+i), 0)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state = "state.db"
[source]
url = "pop3s://%s"
tls_ca = %q
master_user = "srcadmin"
master_password_env = "T_SRC_MASTER"
[destination]
url = "imaps://%s"
tls_ca = %q
master_user = "dstadmin"
master_password_command = "echo dstmaster"
[[account]]
source_user = "carol"
[[account]]
source_user = "dave"
source.master_login = "separator"
destination.master_login = "separator"
`, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile())
	path := filepath.Join(dir, "migrate.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	t.Setenv("T_SRC_MASTER", "srcmaster")
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", path, "--json", "--progress", "none", "--trace")
	if r.code != exitOK || r.report.Totals.Copied != 6 {
		t.Fatalf("master-user run: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	for _, u := range []string{"carol", "dave"} {
		if n, err := dst.MailboxCount(u, "INBOX"); err != nil || n != 3 {
			t.Errorf("%s's destination INBOX holds %d (%v), want 3", u, n, err)
		}
	}
	// The trace shows which form each login used (carol: SASL PLAIN on
	// both sides; dave: USER and LOGIN, whose arguments the IMAP trace
	// hides); never a password.
	for _, want := range []string{"C: AUTH PLAIN ***", "C: USER dave*srcadmin", "AUTHENTICATE PLAIN ***", "LOGIN *** ***"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the trace has no %q", want)
		}
	}
	for _, pw := range []string{"srcmaster", "dstmaster"} {
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("the master password %q appears in the output", pw)
		}
	}
}

// TestE2EXUIDL: with --x-uidl, a Dovecot destination configured with
// pop3_reuse_xuidl serves the source's UIDLs over POP3, so POP3 clients
// download nothing again after the cutover.
func TestE2EXUIDL(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: map[string]string{"alice": dstPassword},
		ExtraConfig: "pop3_reuse_xuidl = yes\n"})
	p.state = filepath.Join(p.dir, "state.db")
	seed(t, p, simpleMessages(5))
	r := runInProcess(t, p.getenv, p.copyArgs("--x-uidl")...)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	uidls := func(addr, password string) []string {
		t.Helper()
		ctx := context.Background()
		c, err := pop3src.Dial(ctx, pop3src.DialOptions{Addr: addr, TLS: pop3src.TLSImplicit, TLSConfig: p.src.TLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(ctx, "alice", secret.New(password)); err != nil {
			t.Fatal(err)
		}
		list, err := c.UIDL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range list {
			out = append(out, u.UID)
		}
		sort.Strings(out)
		return out
	}
	src, dst := uidls(p.src.POP3SAddr(), srcPassword), uidls(p.dst.POP3SAddr(), dstPassword)
	if strings.Join(src, ",") != strings.Join(dst, ",") {
		t.Errorf("destination POP3 UIDLs %v, want the source's %v", dst, src)
	}
	for _, m := range destMessages(t, p, "INBOX") {
		if !bytes.HasPrefix(m.body, []byte("X-UIDL: ")) {
			t.Errorf("destination message does not start with X-UIDL: %q", m.body[:min(40, len(m.body))])
		}
	}
}
