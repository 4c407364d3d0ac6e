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

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestE2EBatch50Accounts migrates 50 accounts against Dovecot with 8
// workers and a cap of 10 destination connections, in one run that mixes
// every kind of login through per-account overrides:
//   - user07 ([[account]] with [account.source] and [account.destination]
//     tables) has no password at all: it logs in through master users, as
//     "user07*srcadmin" (master_login = "separator") over POP3 and with SASL
//     PLAIN and an authorization identity over IMAP;
//   - user41 (CSV row with a dest_auth column) logs in to the destination
//     with an XOAUTH2 bearer token from a file;
//   - user13 has a wrong source password (with a comma, quoted in the CSV);
//   - user29 has a tiny quota of its own at the destination (a passwd-file
//     userdb_quota_rule).
//
// The two failing accounts are reported with their reasons, the other 48
// hold exactly the source's messages, the exit status is 3, and no password,
// master password or token appears in the output, the report or the ledger.
// MAILFERRY_TEST_BATCH_MESSAGES raises the messages per account (for timing
// runs; the default keeps CI fast) and MAILFERRY_TEST_WORKERS sets the
// workers.
func TestE2EBatch50Accounts(t *testing.T) {
	const (
		accounts                  = 50
		wrongPW, overQuota        = 13, 29
		viaMaster, viaToken       = 7, 41
		srcMasterPW, dstMasterPW  = "Src-Master-7q!", "Dst-Master-5z!"
		token                     = "Tok-user41-Zz9-bearer"
		wrongPassword             = "wrong, with a comma"
		srcPWFormat, dstPWFormat  = "Src-Pw-%s-k3", "Dst-Pw-%s-m8"
		userFormat, destUserFomat = "user%02d", "user%02d@new"
	)
	perAccount, workers := 4, 8
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_TEST_BATCH_MESSAGES")); err == nil && v > 0 {
		perAccount = v
	}
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_TEST_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	intro := dovecot.StartIntrospector(t, map[string]string{token: fmt.Sprintf(destUserFomat, viaToken)})
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{srcMasterPW, dstMasterPW, token, wrongPassword}
	srcUsers, dstUsers := map[string]string{}, map[string]string{}
	for i := range accounts {
		u, du := fmt.Sprintf(userFormat, i), fmt.Sprintf(destUserFomat, i)
		srcUsers[u], dstUsers[du] = fmt.Sprintf(srcPWFormat, u), fmt.Sprintf(dstPWFormat, u)
		secrets = append(secrets, srcUsers[u], dstUsers[du])
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: srcUsers,
		MasterUser: "srcadmin", MasterPassword: srcMasterPW})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: dstUsers,
		MasterUser: "dstadmin", MasterPassword: dstMasterPW,
		OAuth2IntrospectionURL: intro.URL(),
		QuotaBytes:             1 << 30,
		UserFields:             map[string]string{fmt.Sprintf(destUserFomat, overQuota): "userdb_quota_rule=*:storage=300B"},
	})
	base := time.Date(2021, 5, 1, 0, 0, 0, 0, time.UTC)
	served := make([][][]byte, accounts)
	for i := range accounts {
		u := fmt.Sprintf(userFormat, i)
		for j, m := range simpleMessages(perAccount) {
			m = append([]byte("X-Account: "+u+"\r\n"), m...)
			served[i] = append(served[i], m)
			if err := src.SeedMaildir(u, "INBOX", m, "", base.Add(time.Duration(j)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "user41.token")
	masterFile := filepath.Join(dir, "dst-master.pw")
	for path, v := range map[string]string{tokenFile: token, masterFile: dstMasterPW} {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "users.csv"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"source_user", "source_password", "dest_user", "dest_password", "dest_auth", "dest_password_file"})
	for i := range accounts {
		u, du := fmt.Sprintf(userFormat, i), fmt.Sprintf(destUserFomat, i)
		row := []string{u, srcUsers[u], du, dstUsers[du], "", ""}
		switch i {
		case viaMaster:
			continue // an [[account]] in the config file
		case wrongPW:
			row[1] = wrongPassword
		case viaToken:
			row[3], row[4], row[5] = "", "xoauth2", tokenFile
		}
		w.Write(row)
	}
	w.Flush()
	if err := f.Close(); err != nil || w.Error() != nil {
		t.Fatal(err, w.Error())
	}
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

[[account]]
source_user = "user07"
dest_user = "user07@new"
[account.source]
master_user = "srcadmin"
master_login = "separator"
master_password_env = "T_BATCH_SRC_MASTER"
[account.destination]
master_user = "dstadmin"
master_password_file = %q
`, workers, src.POP3SAddr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile(), masterFile)
	path := filepath.Join(dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("T_BATCH_SRC_MASTER", srcMasterPW)

	start := time.Now()
	reportFile := filepath.Join(dir, "report.json")
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", path, "--json", "--progress", "none", "--report", reportFile)
	t.Logf("%d accounts × %d messages with %d workers: %.1f s", accounts, perAccount, workers, time.Since(start).Seconds())
	if r.code != exitPartial {
		t.Fatalf("exit %d, want %d (two accounts fail)\n%s", r.code, exitPartial, r.stderr)
	}
	if got := r.report.Totals; got.Accounts != accounts || got.AccountsFailed != 2 {
		t.Fatalf("totals: %d accounts, %d failed; want %d, 2\n%s", got.Accounts, got.AccountsFailed, accounts, r.stderr)
	}
	quotaCopied := -1
	for _, a := range r.report.Accounts {
		switch {
		case strings.Contains(a.LedgerKey, fmt.Sprintf(userFormat, wrongPW)+"@"):
			if a.ErrorClass != "fatal" || !strings.Contains(a.Hint, "password") || a.Copied != 0 {
				t.Errorf("user13 (wrong password): class %q, hint %q, copied %d; want fatal, a hint about the password, 0", a.ErrorClass, a.Hint, a.Copied)
			}
		case strings.Contains(a.LedgerKey, fmt.Sprintf(userFormat, overQuota)+"@"):
			quotaCopied = a.Copied
			if !strings.Contains(a.Error, "OVERQUOTA") || !strings.Contains(a.Hint, "quota") || a.Copied >= perAccount {
				t.Errorf("user29 (over quota): error %q, hint %q, copied %d; want OVERQUOTA, a hint about the quota, fewer than %d", a.Error, a.Hint, a.Copied, perAccount)
			}
		case a.Error != "" || a.Copied != perAccount:
			t.Errorf("%s: copied %d, error %q; want %d and none", a.Account, a.Copied, a.Error, perAccount)
		}
	}
	for i := range accounts {
		du := fmt.Sprintf(destUserFomat, i)
		got := imapBodies(t, dst, du, dstUsers[du], "INBOX")
		switch i {
		case wrongPW:
			if len(got) != 0 {
				t.Errorf("%s holds %d messages, want none", du, len(got))
			}
		case overQuota:
			if _, extra := multisetDiff(served[i], got); extra > 0 || len(got) != quotaCopied {
				t.Errorf("%s holds %d messages (%d not from the source), the report says %d copied", du, len(got), extra, quotaCopied)
			}
		default:
			assertSameMultiset(t, served[i], got)
		}
	}
	// No secret in stdout, stderr, the report file or the ledger (with its
	// write-ahead log).
	places := map[string]string{"stdout": r.stdout, "stderr": r.stderr}
	for _, p := range []string{reportFile, filepath.Join(dir, "state.db"), filepath.Join(dir, "state.db-wal")} {
		if b, err := os.ReadFile(p); err == nil {
			places[filepath.Base(p)] = string(b)
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if _, ok := places["state.db"]; !ok {
		t.Fatal("no ledger was written")
	}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the secret %q appears in %s", s, where)
			}
		}
	}
}
