package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/dovecot"
)

// TestE2EBatch50Accounts migrates 50 accounts from a CSV file with 8
// workers and a cap of 10 destination connections. One account has a wrong
// password: it is reported, the other 49 complete, the exit status is 3.
// MAILFERRY_TEST_BATCH_MESSAGES raises the messages per account (for
// timing runs; the default keeps CI fast) and MAILFERRY_TEST_WORKERS sets
// the workers.
func TestE2EBatch50Accounts(t *testing.T) {
	const accounts = 50
	perAccount, workers := 4, 8
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_TEST_BATCH_MESSAGES")); err == nil && v > 0 {
		perAccount = v
	}
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_TEST_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srcUsers, dstUsers := map[string]string{}, map[string]string{}
	for i := 0; i < accounts; i++ {
		u := fmt.Sprintf("user%02d", i)
		srcUsers[u], dstUsers[u+"@new"] = "s-"+u, "d-"+u
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: srcUsers})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: dstUsers})
	base := time.Date(2021, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < accounts; i++ {
		u := fmt.Sprintf("user%02d", i)
		for j, m := range simpleMessages(perAccount) {
			if err := src.SeedMaildir(u, "INBOX", append([]byte("X-Account: "+u+"\r\n"), m...), "", base.Add(time.Duration(j)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	f, _ := os.Create(filepath.Join(dir, "users.csv"))
	w := csv.NewWriter(f)
	w.Write([]string{"source_user", "source_password", "dest_user", "dest_password"})
	for i := 0; i < accounts; i++ {
		u := fmt.Sprintf("user%02d", i)
		pw := "s-" + u
		if i == 13 {
			pw = "wrong, with a comma"
		}
		w.Write([]string{u, pw, u + "@new", "d-" + u})
	}
	w.Flush()
	f.Close()
	os.Chmod(filepath.Join(dir, "users.csv"), 0o600)
	cfg := fmt.Sprintf(`state = "state.db"
workers = %d
accounts_file = "users.csv"
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
max_connections = 10
`, workers, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile())
	path := filepath.Join(dir, "migrate.toml")
	os.WriteFile(path, []byte(cfg), 0o600)

	start := time.Now()
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", path, "--json", "--progress", "none", "--report", filepath.Join(dir, "report.json"))
	t.Logf("%d accounts × %d messages with %d workers: %.1f s", accounts, perAccount, workers, time.Since(start).Seconds())
	if r.code != exitPartial {
		t.Fatalf("exit %d, want %d (one account fails)\n%s", r.code, exitPartial, r.stderr)
	}
	if got := r.report.Totals; got.Accounts != accounts || got.AccountsFailed != 1 || got.Copied != (accounts-1)*perAccount {
		t.Fatalf("totals: %d accounts, %d failed, %d copied; want %d, 1, %d", got.Accounts, got.AccountsFailed, got.Copied, accounts, (accounts-1)*perAccount)
	}
	for _, a := range r.report.Accounts {
		if strings.Contains(a.Account, "user13@") {
			if a.ErrorClass != "fatal" || !strings.Contains(a.Hint, "password") {
				t.Errorf("user13: class %q, hint %q; want fatal with a hint about the password", a.ErrorClass, a.Hint)
			}
		}
	}
	for i := 0; i < accounts; i++ {
		want := perAccount
		if i == 13 {
			want = 0
		}
		u := fmt.Sprintf("user%02d@new", i)
		if n, err := dst.MailboxCount(u, "INBOX"); err != nil || n != want {
			t.Errorf("%s INBOX holds %d (%v), want %d", u, n, err, want)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "wrong, with a comma") {
		t.Error("a password from the accounts file appears in the output")
	}
}
