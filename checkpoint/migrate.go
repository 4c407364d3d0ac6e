package checkpoint

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Moving a ledger between engines (`mailferry ledger migrate`,
// docs/fleet.md "Moving a checkpoint"): every table of what was done —
// accounts and their aliases, folders, messages, runs, resent records,
// usage, passes, throughput — copied row by row from one ledger into an
// empty one (SQLite into PostgreSQL, or back), so that a migration started
// on one machine continues on a fleet. The source is read in one snapshot
// and the target written in one transaction, checked before its commit:
// a copy that fails or does not add up leaves the target as it was.

// migrateTables are the tables copied, in an order that inserts every row
// after the rows it refers to. account_counts is not among them: the
// target's triggers count the messages as they are inserted, and the
// counts are compared with the source's. Not copied: meta (the target's
// own: its schema and creation), workers and slots (the processes running
// now and the connections they hold, which do not move).
var migrateTables = []struct{ name, order string }{
	{"accounts", "id"},
	{"account_aliases", "alias"},
	{"folders", "id"},
	{"messages", "account_id, source_key"},
	{"runs", "id"},
	{"resent", "id"},
	{"usage", "account_id, window_start"},
	{"passes", "id"},
	{"throughput", "minute, worker"},
}

// identityTables have an id the database hands out: PostgreSQL's sequences
// are moved past the copied ids (SQLite's AUTOINCREMENT follows inserted
// ids by itself).
var identityTables = []string{"accounts", "folders", "runs", "resent", "passes"}

// ErrTargetNotEmpty is wrapped by Migrate when the target ledger holds
// accounts and Replace was not given.
var ErrTargetNotEmpty = errors.New("checkpoint: the target ledger is not empty")

// MigrateOptions configure Migrate.
type MigrateOptions struct {
	// From and To open the source and the target (a password, a logger).
	From, To *Options
	// Replace lets Migrate delete what the target holds first.
	Replace bool
}

// MigrateResult is what Migrate copied: rows by table, in copy order.
type MigrateResult struct {
	Tables []TableRows
	// Scrubbed counts the secrets removed from accounts' recorded
	// configs (a spec holds none; one written by hand or by a bug might).
	Scrubbed int
}

// TableRows is one table's rows copied.
type TableRows struct {
	Table string
	Rows  int64
}

// Migrate copies the ledger at from into the ledger at to (either a
// SQLite file or a postgres:// URL; a new file or an empty database is
// created), refusing a target that holds accounts unless Replace, and a
// PostgreSQL source or target with accounts held by running workers. It
// checks every table's row count and the per-account counts before it
// commits.
func Migrate(ctx context.Context, from, to string, o MigrateOptions) (MigrateResult, error) {
	var res MigrateResult
	if from == to {
		return res, fmt.Errorf("migrating the ledger: source and target are both %s", Redact(from))
	}
	src, err := Open(ctx, from, o.From)
	if err != nil {
		return res, fmt.Errorf("opening the source: %w", err)
	}
	defer src.Close()
	dst, err := Open(ctx, to, o.To)
	if err != nil {
		return res, fmt.Errorf("opening the target: %w", err)
	}
	defer dst.Close()

	var rtx *sql.Tx
	if src.pg != nil {
		rtx, err = src.r.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	} else {
		rtx, err = src.r.BeginTx(ctx, nil)
	}
	if err != nil {
		return res, fmt.Errorf("reading %s: %w", src.path, explainConnect(err))
	}
	defer func() { _ = rtx.Rollback() }()
	if err := noLiveLeases(ctx, src, rtx); err != nil {
		return res, err
	}
	wtx, err := dst.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("writing %s: %w", dst.path, explainConnect(err))
	}
	defer func() { _ = wtx.Rollback() }()
	if dst.pg != nil {
		// One migrate at a time, and no Upgrade meanwhile.
		if _, err := wtx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mailferry-ledger'))`); err != nil {
			return res, fmt.Errorf("writing %s: %w", dst.path, err)
		}
	}
	if err := noLiveLeases(ctx, dst, wtx); err != nil {
		return res, err
	}
	var accounts int64
	if err := wtx.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&accounts); err != nil {
		return res, fmt.Errorf("reading %s: %w", dst.path, err)
	}
	if accounts > 0 {
		if !o.Replace {
			return res, fmt.Errorf("%s holds %d accounts: %w (give --replace to delete them and copy; nothing was written)", dst.path, accounts, ErrTargetNotEmpty)
		}
		if err := clearLedger(ctx, dst, wtx); err != nil {
			return res, err
		}
	}
	for _, t := range migrateTables {
		n, scrubbed, err := copyTable(ctx, src, rtx, dst, wtx, t.name, t.order)
		if err != nil {
			return res, fmt.Errorf("copying %s from %s to %s: %w", t.name, src.path, dst.path, err)
		}
		res.Tables = append(res.Tables, TableRows{Table: t.name, Rows: n})
		res.Scrubbed += scrubbed
	}
	if dst.pg != nil {
		for _, t := range identityTables {
			if _, err := wtx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), GREATEST((SELECT max(id) FROM `+t+`), 1))`, t); err != nil {
				return res, fmt.Errorf("moving the ids of %s in %s past the copied ones: %w", t, dst.path, err)
			}
		}
	}
	if err := verifyCopy(ctx, src, rtx, dst, wtx); err != nil {
		return res, err
	}
	if err := wtx.Commit(); err != nil {
		return res, fmt.Errorf("writing %s: %w", dst.path, explainConnect(err))
	}
	dst.folders.init() // the cache of the handle, should it be used again
	return res, nil
}

// noLiveLeases refuses a PostgreSQL ledger whose accounts are held by
// running workers: the copy would miss what they write after it.
func noLiveLeases(ctx context.Context, l *Ledger, tx *sql.Tx) error {
	if l.pg == nil {
		return nil
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE queue = 'running' AND lease_expires > `+pgNow).Scan(&live); err != nil {
		return fmt.Errorf("reading the leases of %s: %w", l.path, explainConnect(err))
	}
	if live > 0 {
		return fmt.Errorf("%s: %d accounts are held by running workers: stop every worker first", l.path, live)
	}
	return nil
}

// clearLedger deletes every row the copy writes, and the counts, workers
// and slots, children first.
func clearLedger(ctx context.Context, l *Ledger, tx *sql.Tx) error {
	tables := []string{"resent", "messages", "account_counts", "usage", "runs", "account_aliases", "folders", "throughput", "passes", "workers", "slots", "accounts"}
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
			return fmt.Errorf("emptying %s of %s: %w", t, l.path, err)
		}
	}
	return nil
}

// column is a target column and how a value is bound to it.
type column struct {
	name string
	kind byte // 't' text, 'b' bytes, 'i' integer, '?' boolean
}

// columnsOf lists table's columns in l with their kinds.
func columnsOf(ctx context.Context, l *Ledger, tx *sql.Tx, table string) ([]column, error) {
	var q string
	var args []any
	if l.pg != nil {
		q, args = `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, []any{pgSchema, table}
	} else {
		q = `SELECT name, type FROM pragma_table_info('` + table + `') ORDER BY cid`
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		c := column{name: name, kind: 'i'}
		switch strings.ToLower(typ) {
		case "text":
			c.kind = 't'
		case "blob", "bytea":
			c.kind = 'b'
		case "boolean":
			c.kind = '?'
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("no table %s", table)
	}
	return cols, nil
}

// copyTable copies table's rows from the source's snapshot into the
// target's transaction, many rows a statement. It returns the rows copied
// and the secrets scrubbed from accounts' specs.
func copyTable(ctx context.Context, src *Ledger, rtx *sql.Tx, dst *Ledger, wtx *sql.Tx, table, order string) (int64, int, error) {
	cols, err := columnsOf(ctx, dst, wtx, table)
	if err != nil {
		return 0, 0, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	list := strings.Join(names, ", ")
	rows, err := rtx.QueryContext(ctx, `SELECT `+list+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return 0, 0, explainConnect(err)
	}
	defer rows.Close()
	perStmt := max(1, 4000/len(cols))
	row := "(?" + strings.Repeat(", ?", len(cols)-1) + ")"
	var batch []any
	var n int64
	scrubbed := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		k := len(batch) / len(cols)
		stmt := `INSERT INTO ` + table + ` (` + list + `) VALUES ` + row + strings.Repeat(", "+row, k-1)
		if _, err := wtx.ExecContext(ctx, dst.d.q(stmt), batch...); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, scrubbed, err
		}
		for i, c := range cols {
			v := bindAs(c.kind, vals[i])
			if table == "accounts" {
				var s bool
				if v, s = accountValue(c.name, v); s {
					scrubbed++
				}
			}
			batch = append(batch, v)
		}
		n++
		if len(batch)/len(cols) >= perStmt {
			if err := flush(); err != nil {
				return n, scrubbed, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, scrubbed, explainConnect(err)
	}
	return n, scrubbed, flush()
}

// bindAs converts a value read from one engine to what the other's column
// of kind takes: SQLite keeps keys as TEXT and booleans as integers,
// PostgreSQL keys as BYTEA and booleans as BOOLEAN.
func bindAs(kind byte, v any) any {
	switch x := v.(type) {
	case string:
		if kind == 'b' {
			return []byte(x)
		}
	case []byte:
		if kind == 't' {
			return string(x)
		}
	case int64:
		if kind == '?' {
			return x != 0
		}
	case bool:
		if kind == 'i' {
			if x {
				return int64(1)
			}
			return int64(0)
		}
	}
	return v
}

// accountValue is what the target gets of an accounts column: no lease
// (the copy holds no account; one that was running is queued again) and a
// spec without secrets. scrubbed reports a secret removed.
func accountValue(col string, v any) (any, bool) {
	switch col {
	case "lease_worker":
		return "", false
	case "lease_expires":
		return int64(0), false
	case "queue":
		if v == "running" {
			return "queued", false
		}
	case "spec":
		if s, ok := v.(string); ok {
			out, n := scrubSpec(s)
			return out, n > 0
		}
	}
	return v, false
}

// scrubSpec removes from a recorded config (JSON) every member that holds
// a secret itself rather than where to read it: "password", "*_password",
// "*secret", "*token" with a string value. Names of environment variables,
// files and commands (*_env, *_file, *_command) stay.
func scrubSpec(spec string) (string, int) {
	var v any
	if err := json.Unmarshal([]byte(spec), &v); err != nil {
		return spec, 0
	}
	n := scrub(v)
	if n == 0 {
		return spec, 0
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "{}", n
	}
	return string(b), n
}

func scrub(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if _, isString := val.(string); isString && secretName(k) {
				delete(x, k)
				n++
				continue
			}
			n += scrub(val)
		}
	case []any:
		for _, e := range x {
			n += scrub(e)
		}
	}
	return n
}

// secretName reports whether a config key names a secret's value.
func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, suffix := range []string{"_env", "_file", "_command"} {
		if strings.HasSuffix(k, suffix) {
			return false
		}
	}
	return strings.HasSuffix(k, "password") || strings.HasSuffix(k, "secret") || strings.HasSuffix(k, "token")
}

// verifyCopy compares every copied table's rows and the per-account
// counts of the source's snapshot with the target's transaction.
func verifyCopy(ctx context.Context, src *Ledger, rtx *sql.Tx, dst *Ledger, wtx *sql.Tx) error {
	for _, t := range migrateTables {
		var a, b int64
		if err := rtx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&a); err != nil {
			return fmt.Errorf("counting %s in %s: %w", t.name, src.path, err)
		}
		if err := wtx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&b); err != nil {
			return fmt.Errorf("counting %s in %s: %w", t.name, dst.path, err)
		}
		if a != b {
			return fmt.Errorf("the copy does not add up: %s has %d rows in %s and %d in %s; nothing was written", t.name, a, src.path, b, dst.path)
		}
	}
	read := func(tx *sql.Tx) (map[[2]string][2]int64, error) {
		rows, err := tx.QueryContext(ctx, `SELECT CAST(account_id AS TEXT), state, messages, bytes FROM account_counts WHERE messages <> 0 OR bytes <> 0`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[[2]string][2]int64{}
		for rows.Next() {
			var id, state string
			var m, b int64
			if err := rows.Scan(&id, &state, &m, &b); err != nil {
				return nil, err
			}
			out[[2]string{id, state}] = [2]int64{m, b}
		}
		return out, rows.Err()
	}
	a, err := read(rtx)
	if err != nil {
		return fmt.Errorf("reading the counts of %s: %w", src.path, err)
	}
	b, err := read(wtx)
	if err != nil {
		return fmt.Errorf("reading the counts of %s: %w", dst.path, err)
	}
	if len(a) != len(b) {
		return fmt.Errorf("the copy does not add up: %d per-account counts in %s, %d in %s; nothing was written", len(a), src.path, len(b), dst.path)
	}
	for k, v := range a {
		if b[k] != v {
			return fmt.Errorf("the copy does not add up: account %s, %s: %d messages (%d bytes) in %s, %d (%d) in %s; nothing was written",
				k[0], k[1], v[0], v[1], src.path, b[k][0], b[k][1], dst.path)
		}
	}
	return nil
}
