package checkpoint

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The SQLite engine's own tests: files, modes, pragmas, locks across
// processes, and the pitfalls docs/ledger.md lists. The rules every engine
// keeps are in ledgertest (conformance_test.go).

// openTest opens a ledger at path (a new one in a temp dir when path is "")
// and closes it when the test ends.
func openTest(t testing.TB, path string, opts *Options) *Ledger {
	t.Helper()
	if path == "" && pgFresh != nil {
		return pgFresh(t, opts)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "ledger.db")
	}
	l, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l
}

// pgFresh, when set (TestPostgres's status page cases), makes
// openTest("") open a new PostgreSQL database instead of a new file, so
// that tests written for the status page's queries run on both engines.
var pgFresh func(t testing.TB, opts *Options) *Ledger

func testSpec(user string) AccountSpec {
	return AccountSpec{Endpoint: "pop3://" + user + "@pop.example.org:995 -> imap://" + user + "@imap.example.org:993/INBOX",
		SourceProto: "pop3", SourceUser: user, DestUser: user, DestFolder: "INBOX", KeyScheme: "pop3"}
}

// held resolves and holds an account.
func held(t testing.TB, l *Ledger, user string) (pipeline.AccountID, pipeline.Hold) {
	t.Helper()
	res, err := l.ResolveAccount(context.Background(), testSpec(user))
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Hold(context.Background(), res.Account)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Release(context.Background()) })
	return res.Account, h
}

func TestFileModes(t *testing.T) {
	// A permissive umask must not leak into the modes. Umask is process-wide:
	// this test does not run in parallel with others.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "state", "mailferry")
	path := filepath.Join(dir, "ledger.db")
	l := openTest(t, path, nil)
	a, _ := held(t, l, "alice")
	if err := l.Commit(context.Background(), a, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want fs.FileMode
	}{
		{"parent directory", dir, fs.ModeDir | 0o700},
		{"grandparent directory", filepath.Dir(dir), fs.ModeDir | 0o700},
		{"database", path, 0o600},
		{"wal", path + "-wal", 0o600},
		{"shm", path + "-shm", 0o600},
		{"lock directory", path + ".locks", fs.ModeDir | 0o700},
		{"lock file", l.LockPath(testSpec("alice").Endpoint), 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatalf("Stat(%s) = %v", tt.path, err)
			}
			if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != tt.want {
				t.Errorf("mode of %s = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestOpenPaths(t *testing.T) {
	for _, file := range []string{"ledger.db", "my ledger.db", "a?b=c&d#e%20f.db", filepath.Join("sub", "x.db")} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			l := openTest(t, file, nil)
			held(t, l, "alice")
			want := filepath.Join(dir, file)
			if l.Path() != want {
				t.Errorf("Path() = %q, want %q", l.Path(), want)
			}
			if _, err := os.Stat(want); err != nil {
				t.Errorf("ledger file not at %s: %v", want, err)
			}
		})
	}
}

// userVersion reads PRAGMA user_version with a plain connection.
func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatalf("reading user_version of %s: %v", path, err)
	}
	return v
}

func TestOpenRefuses(t *testing.T) {
	exec := func(stmts string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(stmts); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error
		wantMsg string
	}{
		{"newer schema", exec("PRAGMA user_version = 7"), ErrSchemaTooNew, "schema version 7"},
		{"another application's database", exec("CREATE TABLE customers (id INTEGER)"), ErrNotLedger, "ledger.db"},
		{"schema 5 without meta", exec("CREATE TABLE meta (key TEXT, value TEXT); PRAGMA user_version = 5"), ErrNotLedger, "ledger.db"},
		{"schema 6 without meta", exec("CREATE TABLE messages (k TEXT); PRAGMA user_version = 6"), ErrNotLedger, "ledger.db"},
		{"schema 6 whose meta says 5", exec(`CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('app', 'mailferry-ledger'), ('schema', '5');
			PRAGMA user_version = 6`), ErrNotLedger, "schema \"5\""},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("this is not sqlite\n", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrNotLedger, "not an SQLite database"},
		{"directory in the way", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil, "ledger.db"},
		{"a PostgreSQL URL with a password", nil, ErrPasswordInURL, "holds a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ledger.db")
			if tt.prepare != nil {
				tt.prepare(t, path)
			} else {
				path = "postgres://mailferry:secret@db.example.org/ledger"
			}
			var before []byte
			if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
				before, _ = os.ReadFile(path)
			}
			l, err := Open(context.Background(), path, nil)
			if err == nil {
				l.Close()
				t.Fatalf("Open(%s) = nil error, want one", path)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open(%s) = %v, want %v", path, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%s) = %q, want it to mention %q (and never a password)", path, err, tt.wantMsg)
			}
			if before != nil {
				if after, _ := os.ReadFile(path); string(after) != string(before) {
					t.Error("a refused file was written to")
				}
			}
		})
	}
}

func TestNewLedgerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openTest(t, path, nil)
	l.Close()
	if got := userVersion(t, path); got != SchemaVersion {
		t.Errorf("user_version = %d, want %d", got, SchemaVersion)
	}
	db, _ := sql.Open("sqlite", path)
	defer db.Close()
	var app, schema string
	db.QueryRow(`SELECT value FROM meta WHERE key = 'app'`).Scan(&app)
	db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&schema)
	if app != appName || schema != "6" {
		t.Errorf("meta: app %q, schema %q", app, schema)
	}
	// Every table of docs/ledger.md, also those only later features fill.
	for _, table := range []string{"meta", "accounts", "account_aliases", "folders", "messages", "account_counts", "runs",
		"resent", "usage", "workers", "slots", "passes", "throughput"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
	// At most one open pass.
	if _, err := db.Exec(`INSERT INTO passes (started) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO passes (started) VALUES (2)`); err == nil {
		t.Error("a second open pass was accepted")
	}
	if _, err := db.Exec(`UPDATE passes SET finished = 3; INSERT INTO passes (started) VALUES (4)`); err != nil {
		t.Errorf("a pass after the open one finished: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	l := openTest(t, "", nil)
	tests := []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"journal mode", l.w, "journal_mode", "wal"},
		{"synchronous FULL", l.w, "synchronous", "2"},
		{"foreign keys", l.w, "foreign_keys", "1"},
		{"busy timeout", l.w, "busy_timeout", "10000"},
		{"reader busy timeout", l.r, "busy_timeout", "10000"},
		{"reader query only", l.r, "query_only", "1"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q", tt.name, tt.pragma, got, tt.want)
		}
	}
}

// TestKeysBoundAsText pins SQLite's first pitfall: it compares TEXT and
// BLOB as different even with equal bytes. Keys are stored and bound as
// TEXT; a key bound as BLOB is not found (and a message would be copied
// again), which is why the dialect binds keys as Go strings only.
func TestKeysBoundAsText(t *testing.T) {
	l := openTest(t, "", nil)
	a, _ := held(t, l, "alice")
	key := "INBOX\x00123\x00\xff"
	if err := l.Commit(context.Background(), a, pipeline.Changes{Put: []pipeline.Entry{{Key: key, State: pipeline.StateDone}}}); err != nil {
		t.Fatal(err)
	}
	var asText, asBlob int
	l.r.QueryRow(`SELECT COUNT(*) FROM messages WHERE account_id = ? AND source_key = ?`, a, key).Scan(&asText)
	l.r.QueryRow(`SELECT COUNT(*) FROM messages WHERE account_id = ? AND source_key = ?`, a, []byte(key)).Scan(&asBlob)
	if asText != 1 || asBlob != 0 {
		t.Fatalf("bound as TEXT: %d, as BLOB: %d; the pitfall changed (want 1 and 0)", asText, asBlob)
	}
	var typ string
	l.r.QueryRow(`SELECT typeof(source_key) FROM messages WHERE account_id = ?`, a).Scan(&typ)
	if typ != "text" {
		t.Errorf("a key is stored as %s, want text", typ)
	}
	if k, ok := sqliteDialect.key(key).(string); !ok || k != key {
		t.Errorf("the dialect binds a key as %T", sqliteDialect.key(key))
	}
	// Digests are BLOBs, 32 bytes.
	if err := l.Commit(context.Background(), a, pipeline.Changes{Put: []pipeline.Entry{{Key: "d", State: pipeline.StateDone, Digest: strings.Repeat("ab", 32)}}}); err != nil {
		t.Fatal(err)
	}
	var n int
	l.r.QueryRow(`SELECT length(digest) FROM messages WHERE account_id = ? AND source_key = 'd' AND typeof(digest) = 'blob'`, a).Scan(&n)
	if n != 32 {
		t.Errorf("a digest is stored as %d bytes of blob, want 32", n)
	}
}

// TestLookupExactBytes pins the second: keys are never passed through JSON
// (which would change one that is not UTF-8) nor through a C string (which
// would cut one at NUL). Every key of a mixed batch is found.
func TestLookupExactBytes(t *testing.T) {
	l := openTest(t, "", nil)
	a, _ := held(t, l, "alice")
	keys := []string{"a\x00b", "a", "\xff\xfe", "\xc3\x28", "é", "e\u0301", "\x00", strings.Repeat("\x00", 3), "a\x00c"}
	var put []pipeline.Entry
	for _, k := range keys {
		put = append(put, pipeline.Entry{Key: k, State: pipeline.StateDone})
	}
	ctx := context.Background()
	if err := l.Commit(ctx, a, pipeline.Changes{Put: put}); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	if err := l.Lookup(ctx, a, keys, func(e pipeline.Entry) error { found[e.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !found[k] {
			t.Errorf("key %q not found", k)
		}
	}
	if len(found) != len(keys) {
		t.Errorf("found %d keys, want %d", len(found), len(keys))
	}
	if err := l.Lookup(ctx, a, []string{"a\x00"}, func(e pipeline.Entry) error { return fmt.Errorf("found %q", e.Key) }); err != nil {
		t.Errorf("a prefix up to NUL matched: %v", err)
	}
}

// TestSQLiteInPadding: a handful of statement texts serve every Lookup,
// and the padding repeats a real key (so it matches nothing else).
func TestSQLiteInPadding(t *testing.T) {
	for _, tc := range []struct{ n, size int }{{1, 1}, {2, 8}, {8, 8}, {9, 64}, {65, 512}, {512, 512}, {600, 600}} {
		vals := make([]any, tc.n)
		for i := range vals {
			vals[i] = fmt.Sprint("k", i)
		}
		cond, args := sqliteIn("source_key", vals)
		if len(args) != tc.size || strings.Count(cond, "?") != tc.size {
			t.Errorf("%d values: %d arguments, %d placeholders; want %d", tc.n, len(args), strings.Count(cond, "?"), tc.size)
		}
		for _, a := range args[tc.n:] {
			if a != vals[tc.n-1] {
				t.Errorf("%d values: padded with %v", tc.n, a)
			}
		}
	}
}

// TestQueryPlans pins the third: SQLite uses a partial index only when the
// query repeats its condition. Each query of the hot paths is checked to
// read through the index it was written for, never the whole table.
func TestQueryPlans(t *testing.T) {
	l := openTest(t, "", nil)
	plan := func(q string, args ...any) string {
		rows, err := l.r.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			rows.Scan(&id, &parent, &notused, &detail)
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	cond, args := sqliteIn("source_key", []any{"a", "b"})
	tests := []struct {
		name, query, want string
		args              []any
	}{
		{"Lookup", `SELECT ` + entryColumns + ` FROM messages WHERE account_id = ? AND ` + cond, "USING PRIMARY KEY", append([]any{1}, args...)},
		{"Copies", `SELECT dest_uid FROM messages WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND dest_uid IN (?, ?) AND dest_uidvalidity = ?`, "messages_dest", []any{1, 2, 3, 4}},
		{"Copies' pending", `SELECT 1 FROM messages WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND state <> 'done' AND state = 'pending'`, "messages_dest", []any{1}},
		{"DoneSince", `SELECT COUNT(*), MIN(done_at) FROM messages WHERE account_id = ? AND state = 'done' AND done_at > ?`, "messages_done_at", []any{1, 0}},
		{"ConfirmDeleted", `SELECT 1 FROM messages INDEXED BY messages_done_at WHERE account_id = ? AND state = 'done' AND reason_class = 'deleted'`, "messages_done_at", []any{1}},
		{"Copies' folders", `SELECT id FROM folders WHERE side = 'dst' AND name = ?`, "folders_dst_name", []any{"INBOX"}},
		{"pruning", `SELECT 1 FROM messages INDEXED BY messages_open WHERE account_id = ? AND state <> 'done' AND state = 'gone' AND gone_at < ?`, "messages_open", []any{1, 0}},
	}
	// Scan's statements, as Scan builds them: none reads the table
	// through, and one state's rows come in key order without a sort.
	digest := strings.Repeat("ab", 32)
	scans := []struct {
		name string
		q    pipeline.Query
		want string
	}{
		{"Scan pending", pipeline.Query{States: []pipeline.State{pipeline.StatePending}}, "messages_open"},
		{"Scan pending, a page on", pipeline.Query{States: []pipeline.State{pipeline.StatePending}, After: "k"}, "messages_open"},
		{"Scan gone in a folder", pipeline.Query{States: []pipeline.State{pipeline.StateGone}, KeyPrefix: "INBOX\x00"}, "messages_open"},
		{"Scan gone by digest in a folder", pipeline.Query{States: []pipeline.State{pipeline.StateGone}, Digest: digest, KeyPrefix: "INBOX\x00"}, "messages_gone_digest"},
		{"Scan gone by digest", pipeline.Query{States: []pipeline.State{pipeline.StateGone}, Digest: digest}, "messages_gone_digest"},
		{"Scan a folder", pipeline.Query{KeyPrefix: "INBOX\x00", KeysOnly: true}, "USING PRIMARY KEY"},
		{"Scan a folder's done", pipeline.Query{KeyPrefix: "INBOX\x00", States: []pipeline.State{pipeline.StateDone}, Digest: digest}, "USING PRIMARY KEY"},
		{"Scan done", pipeline.Query{States: []pipeline.State{pipeline.StateDone}}, "USING PRIMARY KEY"},
		{"Scan everything", pipeline.Query{}, "USING PRIMARY KEY"},
	}
	for _, sc := range scans {
		query, args, err := l.scanQuery(1, sc.q, pipeline.MaxPage)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name, query, want string
			args              []any
		}{sc.name, query, sc.want, args})
		if len(sc.q.States) == 1 {
			if got := plan(query, args...); strings.Contains(got, "TEMP B-TREE") {
				t.Errorf("%s: plan %q sorts", sc.name, got)
			}
		}
	}
	for _, tc := range tests {
		if got := plan(tc.query, tc.args...); !strings.Contains(got, tc.want) || strings.Contains(got, "SCAN messages") && !strings.Contains(got, "USING") {
			t.Errorf("%s: plan %q, want it to use %s", tc.name, got, tc.want)
		}
	}
}

// Environment of the helper process run by startHelper.
const (
	helperEnv     = "MAILFERRY_CHECKPOINT_HELPER" // "hold", "commit" or "upgrade"
	helperPathEnv = "MAILFERRY_CHECKPOINT_HELPER_PATH"
	helperReady   = "ready"
)

// TestHelperProcess is not a test: it is the child process of the
// cross-process tests. It opens the ledger and holds alice's account
// with a run started ("hold"), commits one entry ("commit"), or upgrades an older file (schema 4 or 5) and
// kills itself just before the upgrade's commit ("upgrade"); it prints
// "ready" and waits to be killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the cross-process tests")
	}
	ctx := context.Background()
	path := os.Getenv(helperPathEnv)
	opts := &Options{}
	if mode == "upgrade" {
		opts.Crashpoint = func(point string) {
			if point == "upgrade: copied" {
				fmt.Println(helperReady)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	l, err := Open(ctx, path, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res, err := l.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := l.Hold(ctx, res.Account); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if mode == "hold" {
		// As a run does: its start is recorded (Status looks for the
		// holder of an account whose last run has not finished).
		if _, err := l.StartRun(ctx, res.Account, time.Time{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if mode == "commit" {
		if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: []pipeline.Entry{{Key: "killed-after-commit",
			State: pipeline.StateDone, Digest: strings.Repeat("0f", 32), Size: 7}}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println(helperReady)
	time.Sleep(time.Minute) // killed long before
	os.Exit(3)
}

// startHelper runs TestHelperProcess in a child process and waits until it
// is ready. The returned function kills it with SIGKILL and reaps it.
func startHelper(t *testing.T, mode, path string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill = func() {
		if killed {
			return
		}
		killed = true
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	t.Cleanup(kill)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case got := <-line:
		if got != helperReady {
			kill()
			t.Fatalf("helper %s said %q; stderr: %s", mode, got, stderr.String())
		}
	case <-time.After(30 * time.Second):
		kill()
		t.Fatalf("helper %s not ready after 30s; stderr: %s", mode, stderr.String())
	}
	return kill
}

func TestHoldCrossProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openTest(t, path, nil)
	a, err := l.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	kill := startHelper(t, "hold", path)
	_, err = l.Hold(ctx, a.Account)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Hold(alice) while another process holds it = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "pid ") {
		t.Errorf("Hold error %q should name the account and the holder's pid", err)
	}
	if st, _ := l.Status(ctx, Selector{IDs: []pipeline.AccountID{a.Account}}); len(st) != 1 || st[0].Holder == 0 {
		t.Errorf("status does not show the other process holding the account: %+v", st)
	}
	_, h := held(t, l, "bob")
	h.Release(ctx)

	kill() // SIGKILL: no chance to release; the kernel drops the flock.

	h, err = l.Hold(ctx, a.Account)
	if err != nil {
		t.Fatalf("Hold(alice) after the holder was killed = %v", err)
	}
	h.Release(ctx)
	if st, _ := l.Status(ctx, Selector{IDs: []pipeline.AccountID{a.Account}}); len(st) != 1 || st[0].Holder != 0 {
		t.Errorf("status shows a holder after the account was released: %+v", st)
	}
}

func TestHoldWait(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openTest(t, path, nil)
	a, h := held(t, l, "alice")
	waiter := openTest(t, path, &Options{LockWait: 5 * time.Second})
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.Release(ctx)
	}()
	start := time.Now()
	h2, err := waiter.Hold(ctx, a)
	if err != nil {
		t.Fatalf("Hold with LockWait while the holder releases: %v", err)
	}
	h2.Release(ctx)
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("Hold returned after %v, before the holder released", time.Since(start))
	}
	short := openTest(t, path, &Options{LockWait: 150 * time.Millisecond})
	_, h3 := held(t, l, "alice")
	if _, err := short.Hold(ctx, a); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "gave up after waiting") {
		t.Errorf("Hold past its LockWait: %v", err)
	}
	h3.Release(ctx)
}

func TestCommitSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	kill := startHelper(t, "commit", path)
	kill() // right after Commit returned
	l := openTest(t, path, nil)
	a, _ := held(t, l, "alice")
	var got pipeline.Entry
	if err := l.Lookup(context.Background(), a, []string{"killed-after-commit"}, func(e pipeline.Entry) error { got = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.State != pipeline.StateDone || got.Size != 7 || got.Digest != strings.Repeat("0f", 32) {
		t.Errorf("entry committed before kill -9: %+v", got)
	}
}

// TestResolveKnownWritesNothing: resolving a known account whose servers,
// key scheme and spec are unchanged (every account of a fleet, every
// pass) changes no row: its transaction commits without writing the file.
func TestResolveKnownWritesNothing(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "ledger.db"), nil)
	changes := func() int64 {
		t.Helper()
		var n int64
		if err := l.w.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sp := testSpec("alice")
	sp.Spec = []byte(`{"name":"alice"}`)
	if _, err := l.ResolveAccount(ctx, sp); err != nil {
		t.Fatal(err)
	}
	before := changes()
	if _, err := l.ResolveAccount(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if n := changes() - before; n != 0 {
		t.Errorf("resolving a known, unchanged account changed %d rows, want 0", n)
	}
	sp.Spec = []byte(`{"name":"alice","x":1}`)
	if _, err := l.ResolveAccount(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if n := changes() - before; n != 1 {
		t.Errorf("resolving it with a new spec changed %d rows, want 1", n)
	}
}
