package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// TestE2ELedgerMigrate: a copy with a SQLite checkpoint, interrupted
// after its second batch; `ledger migrate` into PostgreSQL; the copy
// resumed on PostgreSQL copies only the rest and a re-run nothing; back
// into a new SQLite file, a re-run there copies nothing either, and status
// reads the same counts and runs on all three. A non-empty target is
// refused (and left as it was) unless --replace; nothing of the
// database's password ends up in what is printed.
func TestE2ELedgerMigrate(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(100))
	served := sourceServed(t, p)
	pg := postgres.Start(t, postgres.Options{})
	dbURL := postgres.Database(t, pg)
	getenv := func(k string) string {
		if k == statePasswordEnv {
			return pg.Password()
		}
		return p.getenv(k)
	}
	sqlitePath := p.state
	args := func(state string) []string {
		a := p.copyArgs("--batch-messages", "10")
		for i := range a {
			if a[i] == "--state" {
				a[i+1] = state
			}
		}
		return a
	}

	// Part of 100 copied on SQLite: killed after its second commit.
	r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=committed:2"}, args(sqlitePath)...)
	if r.code != -1 {
		t.Fatalf("the first run was not killed after its second batch: exit %d\n%s", r.code, r.stderr)
	}
	before := len(destMessages(t, p, "INBOX"))

	r = runInProcess(t, getenv, "ledger", "migrate", "--from", sqlitePath, "--to", dbURL)
	if r.code != exitOK || !strings.Contains(r.stdout, "every table's rows and every account's counts match") {
		t.Fatalf("migrate into PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("migrate:\n%s", r.stdout)
	if strings.Contains(r.stdout+r.stderr, pg.Password()) {
		t.Error("the database password was printed")
	}
	for _, want := range []string{"accounts         1", "runs             1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("migrate's table does not say %q:\n%s", want, r.stdout)
		}
	}

	// Resumed on PostgreSQL: only what was not done, then nothing.
	r = runInProcess(t, getenv, args(dbURL)...)
	if r.code != exitOK {
		t.Fatalf("resume on PostgreSQL: exit %d\n%s", r.code, r.stderr)
	}
	a := r.report.Accounts[0]
	t.Logf("killed with %d of 100 on the destination; resumed on PostgreSQL: copied %d, already done %d, reconciled %d", before, a.Copied, a.AlreadyDone, a.Reconciled)
	if a.AlreadyDone == 0 || a.Copied+a.Reconciled != 100-a.AlreadyDone || a.Copied >= 100-before+1 {
		t.Errorf("the resume on PostgreSQL did not continue where SQLite stopped: %d on the destination before, copied %d, already done %d, reconciled %d",
			before, a.Copied, a.AlreadyDone, a.Reconciled)
	}
	r = runInProcess(t, getenv, args(dbURL)...)
	if r.code != exitOK || r.report.Totals.Copied != 0 || r.report.Totals.AlreadyDone != 100 {
		t.Fatalf("re-run on PostgreSQL: exit %d, copied %d, already done %d, want 0 and 100\n%s", r.code, r.report.Totals.Copied, r.report.Totals.AlreadyDone, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))

	// A non-empty target is refused and left alone; --replace copies.
	r = runInProcess(t, getenv, "ledger", "migrate", "--from", sqlitePath, "--to", dbURL)
	if r.code != exitFatal || !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "--replace") {
		t.Fatalf("migrate into a non-empty target: exit %d\n%s", r.code, r.stderr)
	}
	if rep := statusOf(t, getenv, "--state", dbURL); len(rep.Accounts) != 1 || rep.Accounts[0].Done != 100 {
		t.Fatalf("the refused migrate changed the target: %+v", rep)
	}

	// Back: PostgreSQL into a new SQLite file; a re-run there copies
	// nothing, and the runs recorded on both engines came along.
	back := filepath.Join(t.TempDir(), "back.db")
	r = runInProcess(t, getenv, "ledger", "migrate", "--from", dbURL, "--to", back)
	if r.code != exitOK || !strings.Contains(r.stdout, "runs             3") {
		t.Fatalf("migrate back into SQLite: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runInProcess(t, getenv, args(back)...)
	if r.code != exitOK || r.report.Totals.Copied != 0 || r.report.Totals.AlreadyDone != 100 {
		t.Fatalf("re-run on the SQLite copy: exit %d, copied %d, already done %d, want 0 and 100\n%s", r.code, r.report.Totals.Copied, r.report.Totals.AlreadyDone, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
	if rep := statusOf(t, getenv, "--state", back); len(rep.Accounts) != 1 || rep.Accounts[0].Done != 100 {
		t.Errorf("status of the SQLite copy: %+v", rep)
	}

	// --replace: the first SQLite checkpoint (20 done) over the
	// PostgreSQL one (40 done).
	r = runInProcess(t, getenv, "ledger", "migrate", "--from", sqlitePath, "--to", dbURL, "--replace")
	if r.code != exitOK {
		t.Fatalf("migrate --replace: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if rep := statusOf(t, getenv, "--state", dbURL); len(rep.Accounts) != 1 || rep.Accounts[0].Done >= 100 {
		t.Errorf("after --replace the target holds %+v, want the first SQLite checkpoint's (fewer than 100 done)", rep.Accounts)
	}
	if r := runInProcess(t, getenv, "ledger", "migrate", "--from", sqlitePath); r.code != exitUsage {
		t.Errorf("migrate without --to: exit %d, want 2", r.code)
	}
}
