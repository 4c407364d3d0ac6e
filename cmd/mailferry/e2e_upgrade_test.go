package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// schema4DDL is the ledger of the last schema-4 release, frozen as its
// migrations 1 to 4 left it (checkpoint keeps the same statements; this
// copy cannot drift with them).
const schema4DDL = `CREATE TABLE messages (
	account          TEXT    NOT NULL,
	source_key       TEXT    NOT NULL,
	state            TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'skipped', 'failed')),
	reason           TEXT    NOT NULL DEFAULT '',
	digest           TEXT    NOT NULL DEFAULT '',
	size             INTEGER NOT NULL DEFAULT 0,
	message_id       TEXT    NOT NULL DEFAULT '',
	dest_mailbox     TEXT    NOT NULL DEFAULT '',
	dest_uidvalidity INTEGER NOT NULL DEFAULT 0,
	dest_uid         INTEGER NOT NULL DEFAULT 0,
	dest_uidnext     INTEGER NOT NULL DEFAULT 0,
	updated          INTEGER NOT NULL,
	PRIMARY KEY (account, source_key)
) WITHOUT ROWID;
CREATE INDEX messages_account_state ON messages (account, state);
CREATE TABLE runs (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	account  TEXT    NOT NULL,
	started  INTEGER NOT NULL,
	finished INTEGER,
	result   TEXT    NOT NULL DEFAULT '',
	error    TEXT    NOT NULL DEFAULT '',
	copied   INTEGER NOT NULL DEFAULT 0,
	skipped  INTEGER NOT NULL DEFAULT 0,
	failed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_account_id ON runs (account, id);
ALTER TABLE messages ADD COLUMN flags TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN done_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_account_done_at ON messages (account, done_at) WHERE state = 'done';
CREATE TABLE resent (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	account          TEXT    NOT NULL,
	source_key       TEXT    NOT NULL,
	dest_mailbox     TEXT    NOT NULL,
	dest_uidvalidity INTEGER NOT NULL,
	from_uid         INTEGER NOT NULL,
	digest           TEXT    NOT NULL,
	size             INTEGER NOT NULL,
	recorded         INTEGER NOT NULL
);
CREATE INDEX resent_account ON resent (account, id);
PRAGMA user_version = 4;`

// downgradeToSchema4 rewrites the ledger at path as the schema-4 release
// would have written it for the same runs: every entry under its
// account's key (what schema 5 keeps as the account's ident), with its
// state, digest, destination, flags and done_at; the runs.
func downgradeToSchema4(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := l.Status(ctx, checkpoint.Selector{All: true})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		account string
		e       pipeline.Entry
	}
	var rows []row
	type run struct {
		account string
		r       pipeline.RunRecord
	}
	var runs []run
	for _, a := range accounts {
		q := pipeline.Query{}
		for {
			page, next, err := l.Scan(ctx, a.ID, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				rows = append(rows, row{a.Ident, e})
			}
			if next == "" {
				break
			}
			q.After = next
		}
		rs, err := l.Runs(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(rs) - 1; i >= 0; i-- {
			runs = append(runs, run{a.Ident, rs[i]})
		}
	}
	l.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema4DDL); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		e := r.e
		var doneAt int64
		if e.State == pipeline.StateDone {
			doneAt = e.DoneAt.UnixNano()
		}
		if _, err := db.Exec(`INSERT INTO messages (account, source_key, state, reason, digest, size, message_id,
			dest_mailbox, dest_uidvalidity, dest_uid, dest_uidnext, flags, updated, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.account, e.Key, e.State.String(), e.Reason, e.Digest, e.Size, e.MessageID, e.DestMailbox, int64(e.DestUIDValidity),
			int64(e.DestUID), int64(e.DestUIDNext), strings.Join(e.Flags, " "), e.Updated.UnixNano(), doneAt); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		var finished any
		if !r.r.Finished.IsZero() {
			finished = r.r.Finished.UnixNano()
		}
		if _, err := db.Exec(`INSERT INTO runs (account, started, finished, result, error, copied, skipped, failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.account, r.r.Started.UnixNano(), finished, r.r.Result, r.r.Error, r.r.Copied, r.r.Skipped, r.r.Failed); err != nil {
			t.Fatal(err)
		}
	}
}

// TestE2EUpgradeSchema4: a ledger as the schema-4 release wrote it (a POP3
// account with delete_after and an IMAP account, keys with NUL bytes) is
// upgraded by the next run in place; that run copies nothing, deletes
// nothing early (the delete_after clocks kept their done times), status
// shows the same counts, and verify finds every message.
func TestE2EUpgradeSchema4(t *testing.T) {
	p := startPair(t)
	seed(t, p, append(simpleMessages(8), tooBigMessage))
	pop3 := p.copyArgs("--delete-after", "30d", "--max-message-size", "2000")
	// Old is a new top-level folder on the destination: named on purpose.
	imapArgs := []string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), p.dstURL() + "/Old", "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none", "--max-message-size", "2000", "--create-folders"}
	start := time.Now()
	if r := runInProcess(t, p.getenv, pop3...); r.code != exitPartial || r.report.Accounts[0].Copied != 8 {
		t.Fatalf("POP3 copy: exit %d, %+v\n%s", r.code, r.report.Accounts, r.stderr)
	}
	r := runInProcess(t, p.getenv, imapArgs...)
	if r.code != exitOK && r.code != exitPartial || r.report.Accounts[0].Copied < 8 {
		t.Fatalf("IMAP copy: exit %d, %+v\n%s", r.code, r.report.Accounts[0], r.stderr)
	}
	imapCopied := r.report.Accounts[0].Copied
	statusJSON := func() statusReport {
		t.Helper()
		r := runInProcess(t, p.getenv, "status", "--state", p.state, "--json")
		if r.code != exitOK {
			t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		for i := range rep.Accounts {
			rep.Accounts[i].LastRun, rep.Accounts[i].LastSuccess = nil, nil
		}
		rep.Size = 0
		return rep
	}
	before := statusJSON()
	downgradeToSchema4(t, p.state)
	var v int
	db, _ := sql.Open("sqlite", p.state)
	db.QueryRow("PRAGMA user_version").Scan(&v)
	db.Close()
	if v != 4 {
		t.Fatalf("the rewritten ledger is schema %d", v)
	}

	// 29 days later, the first run of the new version upgrades it.
	later := atTime(p.getenv, start.Add(29*24*time.Hour))
	r = runInProcess(t, later, pop3...)
	// The big message was skipped for good by the first run: listed as
	// skipped before, no failure.
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != 8 || a.Deleted != 0 || a.DeleteWaiting != 8 || a.SkippedBefore != 1 {
		t.Fatalf("after the upgrade: exit %d, copied %d, already done %d, deleted %d, waiting %d, skipped before %d; want %d, 0, 8, 0, 8, 1\n%s",
			r.code, a.Copied, a.AlreadyDone, a.Deleted, a.DeleteWaiting, a.SkippedBefore, exitOK, r.stderr)
	}
	if !strings.Contains(r.stderr, "ledger upgraded from schema 4 to 6") {
		t.Errorf("the upgrade is not logged:\n%s", r.stderr)
	}
	r = runInProcess(t, p.getenv, imapArgs...)
	if a := r.report.Accounts[0]; a.Copied != 0 || a.AlreadyDone != imapCopied {
		t.Fatalf("IMAP after the upgrade: copied %d, already done %d; want 0, %d\n%s", a.Copied, a.AlreadyDone, imapCopied, r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")) + len(destMessages(t, p, "Old/INBOX")); n != 8+imapCopied {
		t.Errorf("the destination holds %d messages, want %d: nothing copied twice", n, 8+imapCopied)
	}
	after := statusJSON()
	b1, _ := json.Marshal(before.Accounts)
	b2, _ := json.Marshal(after.Accounts)
	if !bytes.Equal(b1, b2) || after.Entries != before.Entries {
		t.Errorf("status after the upgrade differs:\n before %s\n after  %s", b1, b2)
	}
	for i, args := range [][]string{
		{p.srcURL(), p.dstURL()},
		{"imaps://alice@" + p.src.IMAPSAddr(), p.dstURL() + "/Old"},
	} {
		matched := []int{8, imapCopied}[i]
		r := runCmd(t, runVerify, p.getenv, append(args, "--tls-ca", p.src.CAFile(), "--state", p.state, "--json")...)
		var rep verifyReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
			t.Fatalf("verify %s: exit %d, %v\n%s", args[0], r.code, err, r.stderr)
		}
		// Every copied message found through the upgraded ledger's
		// entries; the big message was never copied.
		if a := rep.Accounts[0]; !a.Ledger || a.Stats.Matched != matched || a.Stats.SourceMessages != 9 {
			t.Errorf("verify %s after the upgrade: ledger used %v, stats %+v; want %d of 9 matched through the ledger", args[0], a.Ledger, a.Stats, matched)
		}
	}
	// 31 days after the copy, delete_after deletes: the clocks survived.
	r = runInProcess(t, atTime(p.getenv, start.Add(31*24*time.Hour)), pop3...)
	if a := r.report.Accounts[0]; a.Deleted != 8 {
		t.Errorf("31 days later: deleted %d, want 8\n%s", a.Deleted, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "state.db")); err != nil {
		t.Fatal(err)
	}
}

// TestE2EUpgradeFromReleaseBinary is TestE2EUpgradeSchema4 with the
// schema-4 ledger written by a schema-4 release itself: the binary named
// by MAILFERRY_SCHEMA4_BIN (e.g. built from the last release tag) copies a
// POP3 and an IMAP account; this version then runs the same copies, which
// upgrade the ledger and copy nothing. A binary of the unreleased
// development schema also numbered 5 (account_control, no meta table) is
// accepted too: its file is upgraded the same way. Skipped without the
// binary.
func TestE2EUpgradeFromReleaseBinary(t *testing.T) {
	// A schema-4 release has no BINARY: it skips a message with a NUL
	// byte for good.
	nulMessage := []byte("Message-ID: <nul@example.test>\r\nSubject: has a NUL\r\n\r\nbefore\x00after\r\n")
	bin := os.Getenv("MAILFERRY_SCHEMA4_BIN")
	if bin == "" {
		t.Skip("MAILFERRY_SCHEMA4_BIN names no schema-4 mailferry binary")
	}
	p := startPair(t)
	seed(t, p, append(simpleMessages(12), nulMessage))
	pop3 := p.copyArgs()
	imapArgs := []string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), p.dstURL() + "/Old", "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none"}
	old := func(args []string) report {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run() // partial (the NUL message) exits 3
		var rep report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Accounts) != 1 {
			t.Fatalf("%s %s: %v\n%s\n%s", bin, args[0], err, stdout.String(), stderr.String())
		}
		return rep
	}
	first := old(pop3)
	firstIMAP := old(imapArgs)
	if first.Accounts[0].Copied == 0 || firstIMAP.Accounts[0].Copied == 0 {
		t.Fatalf("the release copied %d and %d", first.Accounts[0].Copied, firstIMAP.Accounts[0].Copied)
	}
	var v, dev int
	db, _ := sql.Open("sqlite", p.state)
	db.QueryRow("PRAGMA user_version").Scan(&v)
	db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name = 'account_control'").Scan(&dev)
	db.Close()
	if v != 4 && (v != 5 || dev != 1) {
		t.Fatalf("the old binary wrote schema %d (account_control: %d), want 4 or the development 5", v, dev)
	}
	t.Logf("the old binary wrote schema %d (account_control: %d)", v, dev)
	for i, args := range [][]string{pop3, imapArgs} {
		want := []report{first, firstIMAP}[i].Accounts[0]
		r := runInProcess(t, p.getenv, args...)
		a := r.report.Accounts[0]
		// The release's skips are listed as skipped before.
		if a.Copied != 0 || a.AlreadyDone != want.Copied || a.Skipped != 0 || a.SkippedBefore != want.Skipped {
			t.Errorf("%s after the upgrade: copied %d, already done %d, skipped %d, before %d; want 0, %d, 0, %d\n%s",
				args[1], a.Copied, a.AlreadyDone, a.Skipped, a.SkippedBefore, want.Copied, want.Skipped, r.stderr)
		}
	}
	if n := len(destMessages(t, p, "INBOX")) + len(destMessages(t, p, "Old/INBOX")); n != first.Accounts[0].Copied+firstIMAP.Accounts[0].Copied {
		t.Errorf("the destination holds %d messages: something was copied twice", n)
	}
}

// TestE2EUpgradeSchema5: a ledger that schema 5 wrote (the file of a bulk
// pass with this version, turned back into schema 5: no source_emailid,
// user_version and meta 5) is upgraded in place by the next pass, a mirror
// pass after 2 messages moved at the source: the log says so, nothing is
// copied again, the moves are mirrored (by digest: Dovecot has no
// OBJECTID). The same on PostgreSQL: a run refuses the schema-5 database
// and names 'mailferry ledger upgrade', which upgrades it; the run then
// copies nothing, and a second 'ledger upgrade' has nothing to do.
func TestE2EUpgradeSchema5(t *testing.T) {
	p := imapPair(t)
	ctx := context.Background()
	base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		if err := p.src.SeedMaildir("alice", "INBOX", mirrorMessage("INBOX", i), "S", base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	src := imapLogin(t, p.src, srcPassword)
	if err := src.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 6 {
		t.Fatalf("bulk pass: exit %d, copied %d; want 0, 6\n%s", r.code, a.Copied, r.stderr)
	}
	db, err := sql.Open("sqlite", p.state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ALTER TABLE messages DROP COLUMN source_emailid; UPDATE meta SET value = '5' WHERE key = 'schema'; PRAGMA user_version = 5`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := src.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Move(imap.UIDSet{{Start: 2, Stop: 3}}, "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, p.getenv, p.imapCopyArgs("--mirror")...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Moved != 2 || a.Removed != 0 {
		t.Fatalf("mirror pass on the schema-5 ledger: exit %d, copied %d, moved %d, removed %d; want 0, 0, 2, 0\n%s",
			r.code, a.Copied, a.Moved, a.Removed, r.stderr)
	}
	if !strings.Contains(r.stderr, "ledger upgraded from schema 5 to 6") {
		t.Errorf("the upgrade was not logged:\n%s", r.stderr)
	}
	db, _ = sql.Open("sqlite", p.state)
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	db.Close()
	if v != 6 {
		t.Errorf("user_version %d after the pass, want 6", v)
	}
	assertMirrored(t, p, map[string]string{"INBOX": "INBOX", "Work": "Work"}, nil)

	// PostgreSQL: workers never upgrade a shared database by themselves.
	pg := postgres.Start(t, postgres.Options{})
	dbURL := postgres.Database(t, pg)
	getenv := func(k string) string {
		if k == statePasswordEnv {
			return pg.Password()
		}
		return p.getenv(k)
	}
	args := []string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), "imaps://alice@" + p.dst.IMAPSAddr() + "/PG",
		"--tls-ca", p.src.CAFile(), "--state", dbURL, "--json", "--progress", "none", "--create-folders"}
	r = runInProcess(t, getenv, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 6 {
		t.Fatalf("copy with PostgreSQL: exit %d, copied %d; want 0, 6\n%s", r.code, a.Copied, r.stderr)
	}
	u, _ := url.Parse(dbURL)
	if err := pg.Exec(ctx, strings.TrimPrefix(u.Path, "/"), `ALTER TABLE mailferry.messages DROP COLUMN source_emailid;
		UPDATE mailferry.meta SET value = '5' WHERE key = 'schema'`); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, getenv, args...)
	if r.code == exitOK || !strings.Contains(r.stderr, "mailferry ledger upgrade --state") {
		t.Fatalf("a run on the schema-5 database: exit %d, want a refusal naming 'mailferry ledger upgrade'\n%s", r.code, r.stderr)
	}
	r = runInProcess(t, getenv, "ledger", "upgrade", "--state", dbURL)
	if r.code != exitOK || !strings.Contains(r.stdout, "from schema 5 to 6; nothing will be copied again") {
		t.Fatalf("ledger upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, pg.Password()) {
		t.Error("the database password was printed")
	}
	r = runInProcess(t, getenv, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != 6 {
		t.Errorf("copy after the upgrade: exit %d, copied %d, already done %d; want 0, 0, 6\n%s", r.code, a.Copied, a.AlreadyDone, r.stderr)
	}
	r = runInProcess(t, getenv, "ledger", "upgrade", "--state", dbURL)
	if r.code != exitOK || !strings.Contains(r.stdout, "of schema 6 already") {
		t.Errorf("ledger upgrade again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
