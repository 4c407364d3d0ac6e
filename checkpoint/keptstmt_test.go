package checkpoint

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/mailferry/mailferry/pipeline"
)

// keptOf returns the statement texts db's connection keeps prepared
// (db has one connection, or the one it hands out is looked at).
func keptOf(t *testing.T, db *sql.DB) []string {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatalf("Conn() = %v", err)
	}
	defer conn.Close()
	var texts []string
	err = conn.Raw(func(dc any) error {
		k, ok := dc.(*keptConn)
		if !ok {
			return fmt.Errorf("connection is a %T, not a *keptConn", dc)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		for q := range k.kept {
			texts = append(texts, q)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Raw() = %v", err)
	}
	slices.Sort(texts)
	return texts
}

const createT = `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`

// openKept opens a database of one connection keeping its statements,
// with a table t (k TEXT PRIMARY KEY, v INTEGER).
func openKept(t *testing.T) *sql.DB {
	t.Helper()
	db, err := openSQLite(dsn(filepath.Join(t.TempDir(), "kept.db"), time.Second, false))
	if err != nil {
		t.Fatalf("openSQLite() = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(createT); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestLedgerKeepsStatements: the statements an account's run makes are
// prepared once per connection: holding, recording and finishing a run
// of a second account prepares nothing the first did not.
func TestLedgerKeepsStatements(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "ledger.db"), nil)
	runOne := func(user string) {
		t.Helper()
		id, h := held(t, l, user)
		run, err := l.StartRun(ctx, id, time.Now())
		if err != nil {
			t.Fatalf("StartRun() = %v", err)
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k1", State: pipeline.StateDone}}}); err != nil {
			t.Fatalf("Commit() = %v", err)
		}
		if err := l.FinishRun(ctx, run, pipeline.RunRecord{Finished: time.Now(), Result: "ok"}); err != nil {
			t.Fatalf("FinishRun() = %v", err)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatalf("Release() = %v", err)
		}
	}
	runOne("first")
	after1 := keptOf(t, l.w)
	if len(after1) == 0 {
		t.Fatal("the write connection keeps no statement after a run")
	}
	runOne("second")
	if after2 := keptOf(t, l.w); !reflect.DeepEqual(after2, after1) {
		t.Errorf("a second account's run prepared more statements:\nafter the first %q\nafter the second %q", after1, after2)
	}
}

// TestKeptStatements: a kept statement gives what the driver's
// statement prepared for one use gives, in every state the connection
// can be in.
func TestKeptStatements(t *testing.T) {
	ctx := context.Background()
	count := func(t *testing.T, db interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatalf("counting: %v", err)
		}
		return n
	}
	for _, c := range []struct {
		name string
		run  func(t *testing.T, db *sql.DB)
	}{
		{"ReusedWithNewArguments", func(t *testing.T, db *sql.DB) {
			for i := range 5 {
				if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), i); err != nil {
					t.Fatalf("insert %d: %v", i, err)
				}
			}
			for i := range 5 {
				var v int
				if err := db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, fmt.Sprint("k", i)).Scan(&v); err != nil || v != i {
					t.Errorf("v of k%d = %d, %v; want %d", i, v, err, i)
				}
			}
			want := []string{createT, `INSERT INTO t (k, v) VALUES (?, ?)`, `SELECT v FROM t WHERE k = ?`}
			if got := keptOf(t, db); !slices.Equal(got, want) {
				t.Errorf("kept %q, want %q", got, want)
			}
		}},
		{"SameTextWhileRowsOpen", func(t *testing.T, db *sql.DB) {
			for i := range 3 {
				db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), i)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			const q = `SELECT k, v FROM t WHERE v >= ? ORDER BY k`
			outer, err := tx.QueryContext(ctx, q, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for outer.Next() {
				var k string
				var v int
				if err := outer.Scan(&k, &v); err != nil {
					t.Fatal(err)
				}
				// The same text while outer's rows are open: prepared
				// for this once.
				inner, err := tx.QueryContext(ctx, q, v)
				if err != nil {
					t.Fatalf("inner query: %v", err)
				}
				n := 0
				for inner.Next() {
					n++
				}
				if err := inner.Close(); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s:%d", k, n))
			}
			if err := outer.Err(); err != nil {
				t.Fatal(err)
			}
			outer.Close()
			if want := []string{"k0:3", "k1:2", "k2:1"}; !slices.Equal(got, want) {
				t.Errorf("rows %q, want %q", got, want)
			}
			// The kept statement is free again.
			if n := count(t, tx); n != 3 {
				t.Errorf("count = %d, want 3", n)
			}
		}},
		{"RowsLeftUnread", func(t *testing.T, db *sql.DB) {
			for i := range 3 {
				db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), i)
			}
			rows, err := db.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
			if err != nil {
				t.Fatal(err)
			}
			rows.Next()
			rows.Close() // reset half-way
			rows, err = db.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var k string
				rows.Scan(&k)
				got = append(got, k)
			}
			if want := []string{"k0", "k1", "k2"}; !slices.Equal(got, want) {
				t.Errorf("rows %q, want %q", got, want)
			}
		}},
		{"FailedExecThenReused", func(t *testing.T, db *sql.DB) {
			const ins = `INSERT INTO t (k, v) VALUES (?, ?)`
			if _, err := db.ExecContext(ctx, ins, "a", 1); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, ins, "a", 2); err == nil {
				t.Fatal("a duplicate key was inserted")
			}
			if _, err := db.ExecContext(ctx, ins, "b", 2); err != nil {
				t.Fatalf("insert after a failed one: %v", err)
			}
			if n := count(t, db); n != 2 {
				t.Errorf("count = %d, want 2", n)
			}
		}},
		{"SyntaxError", func(t *testing.T, db *sql.DB) {
			if _, err := db.ExecContext(ctx, `INSERT INTO nowhere VALUES (1)`); err == nil {
				t.Error("a statement on a missing table ran")
			}
			if _, err := db.QueryContext(ctx, `SELEC 1`); err == nil {
				t.Error("a malformed statement ran")
			}
			if got := keptOf(t, db); !slices.Equal(got, []string{createT}) {
				t.Errorf("kept %q after failed prepares", got)
			}
		}},
		{"SchemaChange", func(t *testing.T, db *sql.DB) {
			db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ('a', 1)`)
			const q = `SELECT * FROM t`
			cols := func() []string {
				rows, err := db.QueryContext(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				c, _ := rows.Columns()
				return c
			}
			if got := cols(); len(got) != 2 {
				t.Fatalf("columns %q", got)
			}
			if _, err := db.ExecContext(ctx, `ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 7`); err != nil {
				t.Fatal(err)
			}
			if got := cols(); !slices.Equal(got, []string{"k", "v", "w"}) {
				t.Errorf("columns after ALTER TABLE %q, want k, v, w", got)
			}
		}},
		{"RolledBack", func(t *testing.T, db *sql.DB) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, "x", 1); err != nil {
				t.Fatal(err)
			}
			if n := count(t, tx); n != 1 {
				t.Errorf("count in the transaction = %d, want 1", n)
			}
			tx.Rollback()
			if n := count(t, db); n != 0 {
				t.Errorf("count after rollback = %d, want 0", n)
			}
		}},
		{"Canceled", func(t *testing.T, db *sql.DB) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := db.ExecContext(cctx, `INSERT INTO t (k, v) VALUES (?, ?)`, "x", 1); !errors.Is(err, context.Canceled) {
				t.Errorf("insert with a canceled context = %v, want context.Canceled", err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, "x", 1); err != nil {
				t.Errorf("insert after a canceled one: %v", err)
			}
		}},
		{"Evicted", func(t *testing.T, db *sql.DB) {
			for i := range keptStmts + 10 {
				var v int
				if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&v); err != nil || v != i {
					t.Fatalf("SELECT %d = %d, %v", i, v, err)
				}
			}
			got := keptOf(t, db)
			if len(got) != keptStmts {
				t.Errorf("%d statements kept, want %d", len(got), keptStmts)
			}
			if slices.Contains(got, `SELECT 0`) || !slices.Contains(got, fmt.Sprintf(`SELECT %d`, keptStmts+9)) {
				t.Errorf("kept %q: want the most recently used", got)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, openKept(t)) })
	}
}

// TestKeptConnForwards: the wrapper answers every optional interface of
// database/sql/driver that the driver's connection and rows answer
// (STYLE.md: a wrapper hides its wrapped value's optional interfaces), so
// that database/sql treats both alike.
func TestKeptConnForwards(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.NewConnector(dsn(filepath.Join(t.TempDir(), "f.db"), time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := base.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	outer, err := keptConnector{base}.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	connIfaces := []reflect.Type{
		reflect.TypeFor[driver.ConnBeginTx](), reflect.TypeFor[driver.ConnPrepareContext](),
		reflect.TypeFor[driver.ExecerContext](), reflect.TypeFor[driver.QueryerContext](),
		reflect.TypeFor[driver.Pinger](), reflect.TypeFor[driver.SessionResetter](),
		reflect.TypeFor[driver.Validator](), reflect.TypeFor[driver.NamedValueChecker](),
	}
	for _, it := range connIfaces {
		if in, out := reflect.TypeOf(inner).Implements(it), reflect.TypeOf(outer).Implements(it); in != out {
			t.Errorf("%v: the driver's connection %v, the wrapper %v", it, in, out)
		}
	}
	if u, ok := outer.(interface{ Unwrap() driver.Conn }); !ok || u.Unwrap() == nil {
		t.Error("the wrapper has no Unwrap")
	}
	query := func(c driver.Conn) driver.Rows {
		r, err := c.(driver.QueryerContext).QueryContext(ctx, `SELECT 1`, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rowIfaces := []reflect.Type{
		reflect.TypeFor[driver.RowsColumnTypeDatabaseTypeName](), reflect.TypeFor[driver.RowsColumnTypeLength](),
		reflect.TypeFor[driver.RowsColumnTypeNullable](), reflect.TypeFor[driver.RowsColumnTypePrecisionScale](),
		reflect.TypeFor[driver.RowsColumnTypeScanType](), reflect.TypeFor[driver.RowsNextResultSet](),
	}
	ri, ro := query(inner), query(outer)
	defer ri.Close()
	defer ro.Close()
	if _, ok := ro.(*keptRows); !ok {
		t.Fatalf("the wrapper's rows are a %T, not kept", ro)
	}
	for _, it := range rowIfaces {
		if in, out := reflect.TypeOf(ri).Implements(it), reflect.TypeOf(ro).Implements(it); in != out {
			t.Errorf("%v: the driver's rows %v, the wrapper's %v", it, in, out)
		}
	}
}
