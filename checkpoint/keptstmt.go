package checkpoint

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"

	"modernc.org/sqlite"
)

// The SQLite driver (modernc.org/sqlite v1.62) prepares every statement
// that database/sql runs without a *sql.Stmt anew and finalizes it after
// one use. Parsing and planning is most of what a small statement costs: a
// run with nothing new spent a quarter of mailferry's CPU preparing the
// thirty-odd statements each account's run makes (hold, run records, folder
// records, counts, pruning), about 1.5 ms per account of a fleet. So each
// connection of a ledger keeps the statements it ran prepared, by their
// text, and runs them again after a reset: the same SQL on the same
// connection with the same arguments, only not parsed again (SQLite
// re-prepares a kept statement by itself when the schema changes).

// keptStmts is how many statements one connection keeps prepared. A run
// of one account uses about 30 texts, a Commit a handful (its IN lists are
// padded to 4 sizes); beyond that the least recently used is finalized.
const keptStmts = 64

// openSQLite opens the SQLite database dsn names through connections that
// keep their statements prepared (keptConn).
func openSQLite(dsn string) (*sql.DB, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(keptConnector{base}), nil
}

// keptConnector opens base's connections wrapped in keptConn.
type keptConnector struct{ base driver.Connector }

func (k keptConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := k.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(sqliteConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("checkpoint: the SQLite driver's connection %T lacks an interface the ledger relies on", c)
	}
	return &keptConn{c: sc, kept: map[string]*keptStmt{}}, nil
}

func (k keptConnector) Driver() driver.Driver { return k.base.Driver() }

// sqliteConn is what the driver's connections implement (its
// NewConnector's documentation lists them) and keptConn forwards: a
// wrapper that hid one would make database/sql fall back to the methods
// without context (a wait for a lock that no longer ends with the
// context, connections no longer validated).
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteRows is what the driver's rows implement and keptRows forwards.
type sqliteRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// sqliteStmt is what keptConn needs of the driver's statements.
type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// keptConn is one SQLite connection keeping up to keptStmts statements
// prepared for ExecContext and QueryContext. database/sql uses a
// connection from one goroutine at a time, but the rows of a query may
// still be open when the next statement runs: a statement whose rows are
// open is busy, and the same text run meanwhile is prepared for that once,
// as the driver would.
type keptConn struct {
	c sqliteConn

	mu   sync.Mutex
	kept map[string]*keptStmt
	tick uint64 // for least recently used
}

type keptStmt struct {
	st   sqliteStmt
	busy bool
	used uint64
}

var (
	_ sqliteConn = (*keptConn)(nil)
	_ sqliteRows = (*keptRows)(nil)
)

// take returns query's kept statement, prepared if need be, marked busy;
// nil (and no error) when it is busy already.
func (k *keptConn) take(ctx context.Context, query string) (*keptStmt, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tick++
	if ks := k.kept[query]; ks != nil {
		if ks.busy {
			return nil, nil
		}
		ks.busy, ks.used = true, k.tick
		return ks, nil
	}
	st, err := k.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sst, ok := st.(sqliteStmt)
	if !ok {
		st.Close()
		return nil, nil
	}
	if len(k.kept) >= keptStmts {
		k.evict()
	}
	ks := &keptStmt{st: sst, busy: true, used: k.tick}
	k.kept[query] = ks
	return ks, nil
}

// evict finalizes the least recently used statement that is not busy.
func (k *keptConn) evict() {
	var oldest string
	var o *keptStmt
	for q, ks := range k.kept {
		if !ks.busy && (o == nil || ks.used < o.used) {
			oldest, o = q, ks
		}
	}
	if o != nil {
		delete(k.kept, oldest)
		o.st.Close()
	}
}

func (k *keptConn) release(ks *keptStmt) {
	k.mu.Lock()
	ks.busy = false
	k.mu.Unlock()
}

func (k *keptConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ks, err := k.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if ks == nil {
		return k.c.ExecContext(ctx, query, args)
	}
	defer k.release(ks)
	return ks.st.ExecContext(ctx, args)
}

func (k *keptConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ks, err := k.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if ks == nil {
		return k.c.QueryContext(ctx, query, args)
	}
	r, err := ks.st.QueryContext(ctx, args)
	if err != nil {
		k.release(ks)
		return nil, err
	}
	sr, ok := r.(sqliteRows)
	if !ok {
		r.Close()
		k.release(ks)
		return nil, fmt.Errorf("checkpoint: the SQLite driver's rows %T lack an interface the ledger relies on", r)
	}
	return &keptRows{sqliteRows: sr, done: func() { k.release(ks) }}, nil
}

// Close finalizes the kept statements and closes the connection.
func (k *keptConn) Close() error {
	k.mu.Lock()
	kept := k.kept
	k.kept = nil
	k.mu.Unlock()
	for _, ks := range kept {
		ks.st.Close()
	}
	return k.c.Close()
}

// Unwrap returns the driver's connection (sqlite.Limit finds it so).
func (k *keptConn) Unwrap() driver.Conn { return k.c }

func (k *keptConn) Prepare(query string) (driver.Stmt, error) { return k.c.Prepare(query) }
func (k *keptConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return k.c.PrepareContext(ctx, query)
}
func (k *keptConn) Begin() (driver.Tx, error) { return k.c.Begin() } //nolint:staticcheck // driver.Conn requires it
func (k *keptConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return k.c.BeginTx(ctx, opts)
}
func (k *keptConn) Ping(ctx context.Context) error         { return k.c.Ping(ctx) }
func (k *keptConn) ResetSession(ctx context.Context) error { return k.c.ResetSession(ctx) }
func (k *keptConn) IsValid() bool                          { return k.c.IsValid() }

// keptRows are the rows of a kept statement: closing them resets the
// statement (the driver does) and frees it for the next use.
type keptRows struct {
	sqliteRows
	done func()
}

func (r *keptRows) Close() error {
	err := r.sqliteRows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}
