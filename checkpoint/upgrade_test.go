package checkpoint

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// fixtureEntry is one entry of testdata/schema4.json, as the schema-4
// release read it back from testdata/schema4.db (schema4gen).
type fixtureEntry struct {
	Account, KeyHex, State, Reason, Digest, MessageIDHex, DestMailboxHex string
	Size                                                                 int64
	DestUIDValidity, DestUID, DestUIDNext                                uint32
	Flags                                                                []string
	Updated, DoneAt                                                      int64
}

// copyFixture copies testdata/schema4.db into a temp dir.
func copyFixture(t *testing.T) string {
	t.Helper()
	return copyTestdata(t, "schema4.db")
}

// copyTestdata copies the ledger testdata/name into a temp dir.
func copyTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func unhexString(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpgradeReleasedSchema4: the ledger the schema-4 release wrote
// (testdata/schema4.db) opens as the current schema with every entry field by field,
// every account resolving by its schema-4 key (and locking the same file),
// its runs, resent records and counts.
func TestUpgradeReleasedSchema4(t *testing.T) {
	ctx := context.Background()
	path := copyFixture(t)
	if v := userVersion(t, path); v != 4 {
		t.Fatalf("the fixture is schema %d, want 4", v)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "schema4.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []fixtureEntry
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, path, nil)
	if v := userVersion(t, path); v != SchemaVersion {
		t.Errorf("user_version after the upgrade = %d, want %d", v, SchemaVersion)
	}
	if err := l.Check(ctx); err != nil {
		t.Errorf("Check after the upgrade: %v", err)
	}
	ids := map[string]pipeline.AccountID{}
	for _, e := range want {
		if _, ok := ids[e.Account]; ok {
			continue
		}
		id, ok, err := l.LookupAccount(ctx, AccountSpec{Endpoint: e.Account})
		if err != nil || !ok {
			t.Fatalf("account %q after the upgrade: %v, %v", e.Account, ok, err)
		}
		ids[e.Account] = id
	}
	reasonClass := map[string]pipeline.ReasonClass{
		"contains NUL bytes, which IMAP cannot carry": pipeline.ReasonNUL,
		"empty message": pipeline.ReasonEmpty,
		"too big: the source announces 90000000 bytes, the limit is 52428800 (max message size); not downloaded": pipeline.ReasonTooBig,
		"imapdst: APPEND refused: [TOOBIG] message too large":                                                    pipeline.ReasonTooBig,
		"imapdst: APPEND refused: NO [OVERQUOTA] quota exceeded":                                                 pipeline.ReasonRefused,
	}
	counts := map[pipeline.AccountID]pipeline.Counts{}
	for _, w := range want {
		id := ids[w.Account]
		key := unhexString(t, w.KeyHex)
		var got pipeline.Entry
		found := false
		if err := l.Lookup(ctx, id, []string{key}, func(e pipeline.Entry) error { got, found = e, true; return nil }); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Errorf("entry %q of %q lost", key, w.Account)
			continue
		}
		state := stateOf[w.State]
		var doneAt time.Time
		if w.DoneAt != 0 {
			doneAt = fromNanos(w.DoneAt)
		}
		exp := pipeline.Entry{Key: key, State: state, ReasonClass: reasonClass[w.Reason], Reason: w.Reason, Digest: w.Digest,
			Size: w.Size, MessageID: unhexString(t, w.MessageIDHex), DestMailbox: unhexString(t, w.DestMailboxHex),
			DestUIDValidity: w.DestUIDValidity, DestUID: w.DestUID, DestUIDNext: w.DestUIDNext, Flags: w.Flags,
			Updated: fromNanos(w.Updated), DoneAt: doneAt}
		if len(exp.Flags) == 0 {
			exp.Flags = nil
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", exp) {
			t.Errorf("entry %q of %q:\n got  %+v\n want %+v", key, w.Account, got, exp)
		}
		c := counts[id]
		if c == nil {
			c = pipeline.Counts{}
			counts[id] = c
		}
		n := c[state]
		n.Messages++
		n.Bytes += w.Size
		c[state] = n
	}
	for account, id := range ids {
		got, _ := l.Counts(ctx, id)
		if fmt.Sprint(got) != fmt.Sprint(counts[id]) {
			t.Errorf("counts of %q: %v, want %v", account, got, counts[id])
		}
		// Lock files keep their names: a schema-4 process and this one
		// exclude each other.
		st, _ := l.Status(ctx, Selector{IDs: []pipeline.AccountID{id}})
		if len(st) != 1 || st[0].Ident != account {
			t.Errorf("ident of %q: %+v", account, st)
		}
	}
	pop3 := ids["pop3://alice@pop.old.example:995 -> imap://alice@imap.new.example:993/INBOX"]
	imap := ids["imap://bob@corp.example@imap.old.example:993 -> imap://bob@new.example@imap.new.example:993/"]
	// Runs, with the last ones per account.
	runs, _ := l.Runs(ctx, pop3, 0)
	if len(runs) != 4 || runs[0].Result != "" || !runs[0].Finished.IsZero() || runs[1].Result != "partial" || runs[2].Error == "" || runs[3].Copied != 40 {
		t.Errorf("runs of the POP3 account: %+v", runs)
	}
	st, _ := l.Status(ctx, Selector{IDs: []pipeline.AccountID{pop3}})
	if len(st) != 1 || st[0].LastOK == nil || st[0].LastOK.Result != "partial" || st[0].LastError == nil ||
		!strings.Contains(st[0].LastError.Error, "i/o timeout") || st[0].Source != "pop3://alice@pop.old.example:995" {
		t.Errorf("status of the POP3 account: %+v", st)
	}
	if id, ok, _ := l.LookupAccount(ctx, AccountSpec{Endpoint: "runs only, no entries"}); !ok {
		t.Error("an account with runs only was lost")
	} else if runs, _ := l.Runs(ctx, id, 0); len(runs) != 1 {
		t.Errorf("its runs: %+v", runs)
	}
	// Resent records, with their digests.
	recs, _ := l.Resent(ctx, imap)
	if len(recs) != 1 || recs[0].Key != "INBOX\x001234567890\x0022" || recs[0].Mailbox != "INBOX" || recs[0].FromUID != 13 ||
		recs[0].Digest != fmt.Sprintf("%064x", 132*7919+1) {
		t.Errorf("resent records: %+v", recs)
	}
	// The endpoint keys parsed into candidates' columns.
	var srcUser, dstUser, dstFolder string
	l.r.QueryRow(`SELECT src_user, dst_user, dst_folder FROM accounts WHERE id = ?`, imap).Scan(&srcUser, &dstUser, &dstFolder)
	if srcUser != "bob@corp.example" || dstUser != "bob@new.example" || dstFolder != "" {
		t.Errorf("parsed IMAP key: %q %q %q", srcUser, dstUser, dstFolder)
	}
	// The pipeline can go on: a hold, a commit.
	h, err := l.Hold(ctx, pop3)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	if err := l.Commit(ctx, pop3, pipeline.Changes{Gone: []string{"000000016553F100"}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Counts(ctx, pop3); c[pipeline.StateGone].Messages != 1 {
		t.Errorf("a migrated entry did not go gone: %v", c)
	}
	// Reopening leaves it as it is.
	l.Close()
	l2 := openTest(t, path, nil)
	if err := l2.Check(ctx); err != nil {
		t.Error(err)
	}
}

// schema4File writes a ledger of schema version v (1 to 4) with the frozen
// statements and the given inserts (in that version's columns).
func schema4File(t *testing.T, v int, inserts string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.db", v))
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := strings.Join(schema4[:v], ";\n") + fmt.Sprintf(";\nPRAGMA user_version = %d;\n", v) + inserts
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpgradeFromVersions: files of schema 1, 2 and 3 go through the
// frozen migrations to 4, then through the upgrade from 4 to the current
// schema.
func TestUpgradeFromVersions(t *testing.T) {
	ctx := context.Background()
	d := strings.Repeat("ab", 32)
	doneAt := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	tests := []struct {
		v        int
		inserts  string
		wantDone time.Time
		flags    []string
	}{
		{1, fmt.Sprintf(`INSERT INTO messages (account, source_key, state, digest, size, updated) VALUES ('k', 'done', 'done', '%s', 10, %d);`, d, doneAt),
			fromNanos(doneAt), nil},
		{2, fmt.Sprintf(`INSERT INTO messages (account, source_key, state, digest, size, flags, updated) VALUES ('k', 'done', 'done', '%s', 10, '\Seen', %d);`, d, doneAt),
			fromNanos(doneAt), []string{`\Seen`}},
		{3, fmt.Sprintf(`INSERT INTO messages (account, source_key, state, digest, size, flags, updated, done_at) VALUES ('k', 'done', 'done', '%s', 10, '', %d, %d);`, d, doneAt+5, doneAt),
			fromNanos(doneAt), nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("from ", tc.v), func(t *testing.T) {
			path := schema4File(t, tc.v, tc.inserts)
			l := openTest(t, path, nil)
			id, ok, err := l.LookupAccount(ctx, AccountSpec{Endpoint: "k"})
			if err != nil || !ok {
				t.Fatalf("account: %v %v", ok, err)
			}
			var got pipeline.Entry
			l.Lookup(ctx, id, []string{"done"}, func(e pipeline.Entry) error { got = e; return nil })
			if got.State != pipeline.StateDone || got.Digest != d || !got.DoneAt.Equal(tc.wantDone) || !slices.Equal(got.Flags, tc.flags) {
				t.Errorf("upgraded entry: %+v", got)
			}
			if v := userVersion(t, path); v != SchemaVersion {
				t.Errorf("user_version %d", v)
			}
		})
	}
}

// TestUpgradeRefusals: a digest that is not 64 hex digits, or too little
// disk space, stops the upgrade and leaves the file as it was.
func TestUpgradeRefusals(t *testing.T) {
	tests := []struct {
		name    string
		inserts string
		free    uint64
		wantErr error
		wantMsg string
	}{
		{"a digest is not hex", `INSERT INTO messages (account, source_key, state, digest, size, updated) VALUES ('k', 'x', 'done', 'abc', 1, 1);`,
			1 << 40, nil, "never dropped silently"},
		{"a resent digest is not hex", `INSERT INTO resent (account, source_key, dest_mailbox, dest_uidvalidity, from_uid, digest, size, recorded)
			VALUES ('k', 'x', 'INBOX', 1, 1, 'ABCD', 1, 1);`, 1 << 40, nil, "never dropped silently"},
		{"not enough disk space", `INSERT INTO messages (account, source_key, state, digest, size, updated) VALUES ('k', 'x', 'done', '', 1, 1);`,
			1000, ErrNotEnoughSpace, "bytes free"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := schema4File(t, 4, tc.inserts)
			before, _ := os.ReadFile(path)
			l, err := Open(context.Background(), path, &Options{FreeSpace: func(string) (uint64, error) { return tc.free, nil }})
			if err == nil {
				l.Close()
				t.Fatal("the upgrade went through")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) ||
				!strings.Contains(err.Error(), "left as it was") {
				t.Errorf("error %q, want %v mentioning %q and that the file is left as it was", err, tc.wantErr, tc.wantMsg)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) || userVersion(t, path) != 4 {
				t.Error("the refused upgrade changed the file")
			}
		})
	}
}

func TestSpaceEnough(t *testing.T) {
	tests := []struct {
		size  int64
		avail uint64
		ok    bool
	}{
		{0, 0, true},
		{1000, 1200, true},
		{1000, 1199, false},
		{606 << 20, 728 << 20, true},
		{606 << 20, 700 << 20, false},
	}
	for _, tc := range tests {
		err := spaceEnough(tc.size, tc.avail, "/d")
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrNotEnoughSpace) {
			t.Errorf("spaceEnough(%d, %d) = %v, want ok %v", tc.size, tc.avail, err, tc.ok)
		}
	}
}

// TestUpgradeKilledMidway: a process killed just before the upgrade's
// commit leaves the file at schema 4, intact; the next Open upgrades it.
func TestUpgradeKilledMidway(t *testing.T) {
	path := copyFixture(t)
	kill := startHelper(t, "upgrade", path)
	kill()
	if v := userVersion(t, path); v != 4 {
		t.Fatalf("user_version after a kill mid-upgrade = %d, want 4", v)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var check string
	var n int
	db.QueryRow("PRAGMA quick_check").Scan(&check)
	db.QueryRow("SELECT COUNT(*) FROM messages").Scan(&n)
	var tables int
	db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name IN ('accounts', 'messages_v5')`).Scan(&tables)
	db.Close()
	if check != "ok" || n != 71 || tables != 0 {
		t.Errorf("after the kill: quick_check %q, %d entries, %d schema-5 tables; want ok, 71, 0", check, n, tables)
	}
	l := openTest(t, path, nil)
	if err := l.Check(context.Background()); err != nil {
		t.Error(err)
	}
	if _, entries, _ := l.Size(context.Background()); entries != 71 {
		t.Errorf("%d entries after the upgrade, want 71", entries)
	}
}

func TestParseEndpointKey(t *testing.T) {
	tests := []struct {
		key  string
		want endpointParts
	}{
		{"pop3://alice@pop.old:995 -> imap://alice@imap.new:993/INBOX",
			endpointParts{"pop3", "alice", "alice", "INBOX", "pop3://alice@pop.old:995", "imap://alice@imap.new:993"}},
		{"imap://bob@corp.example@imap.old:993 -> imap://bob@new@imap.new:993/",
			endpointParts{"imap", "bob@corp.example", "bob@new", "", "imap://bob@corp.example@imap.old:993", "imap://bob@new@imap.new:993"}},
		{"pop3://u@[2001:db8::1]:110 -> imap://u@h:143/a@b/c d",
			endpointParts{"pop3", "u", "u", "a@b/c d", "pop3://u@[2001:db8::1]:110", "imap://u@h:143"}},
		{"not a key", endpointParts{}},
		{"pop3://alice@host -> imap://alice@h:1/INBOX", endpointParts{}},
	}
	for _, tc := range tests {
		if got := parseEndpointKey(tc.key); got != tc.want {
			t.Errorf("parseEndpointKey(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

// TestUpgradeDevSchema5: a file of the development version whose status
// page numbered its schema 5 (schema 4 with account_control and the runs'
// error class and hint, never released) is not taken for schema 5 nor
// refused: it is upgraded in place like schema 4, its entries, pauses,
// retry requests and hints kept.
func TestUpgradeDevSchema5(t *testing.T) {
	ctx := context.Background()
	d := strings.Repeat("cd", 32)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	alice := "pop3://alice@pop.example.org:995 -> imap://alice@imap.example.org:993/INBOX"
	carol := "pop3://carol@pop.example.org:995 -> imap://carol@imap.example.org:993/INBOX"
	path := schema4File(t, 4, fmt.Sprintf(`INSERT INTO messages (account, source_key, state, digest, size, dest_mailbox, dest_uidvalidity, dest_uid, updated, done_at)
		VALUES ('%[1]s', 'u1', 'done', '%[2]s', 10, 'INBOX', 7, 1, %[3]d, %[3]d);
		INSERT INTO messages (account, source_key, state, reason, size, updated)
		VALUES ('%[1]s', 'u2', 'failed', 'retry asked for; had been skipped: too big: 9 bytes', 9, %[3]d);`, alice, d, t0)+
		devSchema5+fmt.Sprintf(`
		INSERT INTO runs (account, started, finished, result, error, error_class, hint, copied)
		VALUES ('%[1]s', %[2]d, %[2]d, 'failed', 'login failed', 'login', 'check the password', 1);
		INSERT INTO account_control (account, paused, changed, retry_requested) VALUES ('%[1]s', 1, %[2]d, %[2]d);
		INSERT INTO account_control (account, paused, changed) VALUES ('%[3]s', 1, %[2]d);
		PRAGMA user_version = 5;`, alice, t0, carol))
	l := openTest(t, path, nil)
	if v := userVersion(t, path); v != SchemaVersion {
		t.Errorf("user_version %d, want %d: the development schema's 5 is upgraded to the current schema", v, SchemaVersion)
	}
	id, ok, err := l.LookupAccount(ctx, AccountSpec{Endpoint: alice})
	if err != nil || !ok {
		t.Fatalf("account: %v %v", ok, err)
	}
	got := map[string]pipeline.Entry{}
	l.Lookup(ctx, id, []string{"u1", "u2"}, func(e pipeline.Entry) error { got[e.Key] = e; return nil })
	if e := got["u1"]; e.State != pipeline.StateDone || e.Digest != d || e.DestUID != 1 {
		t.Errorf("upgraded done entry: %+v", e)
	}
	if e := got["u2"]; e.State != pipeline.StateFailed {
		t.Errorf("upgraded failed entry: %+v", e)
	}
	c, err := l.Control(ctx, alice)
	if err != nil || !c.Paused || !c.Changed.Equal(fromNanos(t0)) || !c.RetryRequested.Equal(fromNanos(t0)) {
		t.Errorf("Control(alice) after the upgrade = %+v, %v; want paused, changed and retry at %v", c, err, fromNanos(t0))
	}
	if c, err := l.Control(ctx, carol); err != nil || !c.Paused {
		t.Errorf("Control(carol), paused before it ever ran = %+v, %v", c, err)
	}
	runs, err := l.Runs(ctx, id, 1)
	if err != nil || len(runs) != 1 || runs[0].ErrorClass != "login" || runs[0].Hint != "check the password" {
		t.Errorf("runs after the upgrade = %+v, %v; want the class and hint kept", runs, err)
	}
	if err := l.Check(ctx); err != nil {
		t.Error(err)
	}
	var tables int
	db, _ := sql.Open("sqlite", path+"?mode=ro")
	defer db.Close()
	db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'account_control'`).Scan(&tables)
	if tables != 0 {
		t.Error("account_control is still in the upgraded file")
	}
}

// copySchema5 copies testdata/schema5.db (a ledger of schema 5 as
// released, written by testdata/schema5gen) into a temp dir.
func copySchema5(t *testing.T) string {
	t.Helper()
	return copyTestdata(t, "schema5.db")
}

// dumpTables returns every row of every table of the SQLite file at path
// but meta, as text, by table, in rowid or primary key order; the
// messages table without source_emailid.
func dumpTables(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'meta' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string][]string{}
	for _, table := range tables {
		var cols []string
		crows, err := db.Query(`SELECT name FROM pragma_table_info('` + table + `') WHERE name <> 'source_emailid' ORDER BY cid`)
		if err != nil {
			t.Fatal(err)
		}
		for crows.Next() {
			var c string
			crows.Scan(&c)
			cols = append(cols, "quote("+c+")")
		}
		crows.Close()
		r, err := db.Query(`SELECT ` + strings.Join(cols, ` || '|' || `) + ` FROM ` + table + ` ORDER BY 1`)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		for r.Next() {
			var line string
			if err := r.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], line)
		}
		r.Close()
		slices.Sort(out[table])
	}
	return out
}

// TestUpgradeReleasedSchema5: the ledger schema 5 as released wrote
// (testdata/schema5.db) is upgraded to schema 6 in place: user_version and
// meta say 6, every row of every table is as it was (no entry copied,
// rewritten or lost), every entry's source EMAILID is NULL, and the
// upgraded file takes and keeps EMAILIDs like a new one. A kill before the
// upgrade's commit leaves the file at schema 5, intact.
func TestUpgradeReleasedSchema5(t *testing.T) {
	ctx := context.Background()
	path := copySchema5(t)
	if v := userVersion(t, path); v != 5 {
		t.Fatalf("the fixture is schema %d, want 5", v)
	}
	before := dumpTables(t, path)
	if len(before["messages"]) != 49 || len(before["folders"]) == 0 || len(before["runs"]) != 2 || len(before["usage"]) != 1 {
		t.Fatalf("the fixture holds %d entries, %d folders, %d runs, %d usage rows; want 49, some, 2, 1",
			len(before["messages"]), len(before["folders"]), len(before["runs"]), len(before["usage"]))
	}

	kill := startHelper(t, "upgrade", path)
	kill()
	if v := userVersion(t, path); v != 5 {
		t.Fatalf("user_version after a kill mid-upgrade = %d, want 5", v)
	}
	if got := dumpTables(t, path); !reflect.DeepEqual(got, before) {
		t.Fatal("a kill mid-upgrade changed the file")
	}

	l := openTest(t, path, nil)
	if v := userVersion(t, path); v != 6 {
		t.Errorf("user_version after the upgrade = %d, want 6", v)
	}
	if err := l.Check(ctx); err != nil {
		t.Errorf("Check after the upgrade: %v", err)
	}
	after := dumpTables(t, path)
	for table, rows := range before {
		if !slices.Equal(after[table], rows) {
			t.Errorf("table %s changed by the upgrade:\nbefore %q\nafter  %q", table, rows, after[table])
		}
	}
	if len(after) != len(before) {
		t.Errorf("the upgrade left %d tables, there were %d", len(after), len(before))
	}
	db, _ := sql.Open("sqlite", path+"?mode=ro")
	defer db.Close()
	var schema string
	var nonNull int
	db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&schema)
	db.QueryRow(`SELECT COUNT(*) FROM messages WHERE source_emailid IS NOT NULL`).Scan(&nonNull)
	if schema != "6" || nonNull != 0 {
		t.Errorf("meta schema %q, %d entries with an EMAILID; want 6, 0", schema, nonNull)
	}

	// The upgraded file keeps what later passes learn, and what a Put
	// that carries no EMAILID would otherwise clear.
	id, ok, err := l.LookupAccount(ctx, AccountSpec{ID: "bob"})
	if err != nil || !ok {
		t.Fatalf("account bob after the upgrade: %v, %v", ok, err)
	}
	h, err := l.Hold(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	key := "INBOX\x001234567890\x001"
	var e pipeline.Entry
	l.Lookup(ctx, id, []string{key}, func(got pipeline.Entry) error { e = got; return nil })
	if e.State != pipeline.StateDone || e.EmailID != "" || e.DestUID != 1 {
		t.Fatalf("entry %q after the upgrade: %+v", key, e)
	}
	e.EmailID = "M02630f48bc34ecea8538ea09"
	if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{e}}); err != nil {
		t.Fatal(err)
	}
	e.EmailID, e.Flags = "", []string{`\Seen`, `\Answered`}
	if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{e}}); err != nil {
		t.Fatal(err)
	}
	l.Lookup(ctx, id, []string{key}, func(got pipeline.Entry) error { e = got; return nil })
	if e.EmailID != "M02630f48bc34ecea8538ea09" || len(e.Flags) != 2 {
		t.Errorf("after a Put with an EMAILID and one without: EMAILID %q, flags %v; want the EMAILID kept, the flags changed", e.EmailID, e.Flags)
	}
	e.EmailID = "not an objectid!"
	if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{e}}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("an EMAILID that is no objectid: %v, want ErrInvalidEntry", err)
	}
}

// TestUpgradeSQLiteCommand: Upgrade (`mailferry ledger upgrade`) on a
// SQLite file reports the schema it found and upgrades it as opening it
// would; a second call finds it current; a file that does not exist is
// an error, and is not created.
func TestUpgradeSQLiteCommand(t *testing.T) {
	ctx := context.Background()
	path := copySchema5(t)
	if from, to, err := Upgrade(ctx, path, nil); err != nil || from != 5 || to != 6 {
		t.Fatalf("Upgrade = %d, %d, %v; want 5, 6", from, to, err)
	}
	if v := userVersion(t, path); v != 6 {
		t.Errorf("user_version %d after Upgrade, want 6", v)
	}
	if from, to, err := Upgrade(ctx, path, nil); err != nil || from != 6 || to != 6 {
		t.Errorf("Upgrade again = %d, %d, %v; want 6, 6", from, to, err)
	}
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, _, err := Upgrade(ctx, missing, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Upgrade of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Upgrade created %s", missing)
	}
}
