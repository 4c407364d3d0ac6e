package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mailferry/mailferry/pipeline"
)

// The PostgreSQL engine: the same schema, statements and rules as SQLite
// (one package, a dialect), the queue and leases of a fleet of workers
// (lease.go, queue.go, slots.go), and the checks a shared database needs:
// no password in the URL, a session that commits synchronously, the
// schema version (older: refused until an admin upgrades it (Upgrade),
// never upgraded by a worker under the others' feet).

// ErrPasswordInURL is wrapped by Open for a postgres:// URL that holds a
// password: passwords come from state_password_env, state_password_file
// or MAILFERRY_STATE_PASSWORD, never from a URL that ends up in process
// lists, shell histories and logs.
var ErrPasswordInURL = errors.New("checkpoint: the database URL holds a password: remove it and give it through state_password_env, state_password_file or MAILFERRY_STATE_PASSWORD")

// Lease timing (docs/ledger.md "Leases and fencing"): a lease lasts 30 s
// and is renewed every 7.5 s; a worker whose last renewal was sent more
// than 15 s ago stops appending, 15 s before anyone can take over.
const (
	DefaultLeaseTTL       = 30 * time.Second
	defaultConnectTimeout = 10 * time.Second
	pgMaxConns            = 16
)

// IsPostgres reports whether state names a PostgreSQL ledger
// ("postgres://…", "postgresql://…") rather than a file: what Open does
// with it, and how the config's state key is read (no path resolution, a
// URL without password).
func IsPostgres(state string) bool {
	return strings.HasPrefix(state, "postgres://") || strings.HasPrefix(state, "postgresql://")
}

// Redact returns state as it may be shown: a database URL without its
// password (Open refuses one that holds it, but a message about the
// refusal must not repeat it); a file path as it is.
func Redact(state string) string {
	if !IsPostgres(state) {
		return state
	}
	u, err := url.Parse(state)
	if err != nil {
		return "(a database URL that does not parse)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// pgNow is the database's clock in Unix nanoseconds: leases are compared
// with it, so the workers' clocks do not matter.
const pgNow = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000 AS BIGINT)`

// openPostgres opens the PostgreSQL ledger at state, creating schema 5 in
// an empty database (in the schema "mailferry").
func openPostgres(ctx context.Context, state string, opts *Options) (*Ledger, error) {
	u, err := url.Parse(state)
	if err != nil {
		return nil, fmt.Errorf("opening ledger: the database URL does not parse (%v)", redactErr(err, state))
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		u.User = url.User(u.User.Username())
		q := u.Query()
		q.Del("password")
		u.RawQuery = q.Encode()
		return nil, fmt.Errorf("opening ledger %s: %w", u.Redacted(), ErrPasswordInURL)
	}
	display := u.Redacted()
	cfg, err := pgx.ParseConfig(state)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", display, err)
	}
	if opts.Password != "" {
		cfg.Password = opts.Password
	}
	cfg.ConnectTimeout = opts.ConnectTimeout
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	replyTimeout := opts.LeaseTTL
	if replyTimeout <= 0 {
		replyTimeout = DefaultLeaseTTL
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 15 * time.Second}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &replyBound{Conn: c, timeout: replyTimeout}, nil
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["search_path"] = pgSchema
	cfg.RuntimeParams["application_name"] = "mailferry"
	log, now, retention := opts.defaults()
	e := newPGEngine(opts)
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
		// A Commit that returned must be on disk: a session that
		// commits asynchronously could lose what the pipeline then
		// acts on (deleting at the source, say).
		var sc string
		if err := c.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc); err != nil {
			return fmt.Errorf("reading synchronous_commit: %w", err)
		}
		if sc == "off" {
			return errAsyncCommit
		}
		return nil
	}))
	db.SetMaxOpenConns(pgMaxConns)
	db.SetMaxIdleConns(pgMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	l := &Ledger{
		path:      display,
		log:       log,
		lockWait:  opts.LockWait,
		now:       now,
		retention: retention,
		d:         postgresDialect,
		w:         db,
		r:         db,
		pg:        e,
		held:      make(map[pipeline.AccountID]*hold),
	}
	l.crashpoint = opts.crashpoint()
	l.folders.init()
	e.l = l
	if opts.skipSchemaCheck {
		return l, nil
	}
	if err := l.pgSchemaCheck(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening ledger %s: %w", display, err)
	}
	log.Debug("ledger open", "database", display, "worker", e.worker)
	return l, nil
}

var errAsyncCommit = errors.New("the database session has synchronous_commit = off: a commit could be lost after mailferry acted on it; set it to on (ALTER ROLE … SET synchronous_commit = on) for mailferry's role or database")

// redactErr keeps a URL's password out of a parse error.
func redactErr(err error, state string) string {
	s := err.Error()
	if u, perr := url.Parse(state); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

// pgSchemaCheck creates the current schema in an empty database, or checks that the
// database holds a mailferry ledger of this schema. Workers starting at
// once serialize on an advisory lock, so only one creates the tables.
func (l *Ledger) pgSchemaCheck(ctx context.Context) error {
	conn, err := l.w.Conn(ctx)
	if err != nil {
		return explainConnect(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return explainConnect(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mailferry-ledger'))`); err != nil {
		return fmt.Errorf("locking the schema check: %w", err)
	}
	var tables int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, pgSchema).Scan(&tables); err != nil {
		return fmt.Errorf("reading the tables: %w", err)
	}
	if tables == 0 {
		if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgSchema); err != nil {
			return fmt.Errorf("creating the schema %q (the role needs CREATE on the database): %w", pgSchema, err)
		}
		if err := l.create(ctx, tx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("committing the new ledger: %w", err)
		}
		l.log.Info("ledger created", "database", l.path, "schema", SchemaVersion)
		return nil
	}
	version, err := pgVersion(ctx, tx)
	if err != nil {
		return err
	}
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("schema version %d, this mailferry knows up to %d: %w", version, SchemaVersion, ErrSchemaTooNew)
	case version < SchemaVersion:
		// No worker upgrades a shared database under the others' feet:
		// Upgrade does, from `mailferry ledger upgrade`, with every worker
		// stopped.
		return fmt.Errorf("schema version %d, this mailferry needs %d and does not upgrade a shared database by itself: stop every worker first, then run 'mailferry ledger upgrade --state %s': %w",
			version, SchemaVersion, l.path, ErrSchemaTooOld)
	}
	return nil
}

// pgVersion reads meta's schema version, or ErrNotLedger when the schema
// "mailferry" holds tables that are not a mailferry ledger.
func pgVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var hasMeta bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'meta')`, pgSchema).Scan(&hasMeta); err != nil {
		return 0, fmt.Errorf("reading the tables: %w", err)
	}
	if !hasMeta {
		return 0, fmt.Errorf("the schema %q holds tables but no mailferry meta table: %w", pgSchema, ErrNotLedger)
	}
	var app, schema string
	err := q.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM meta WHERE key = 'app'), ''), COALESCE((SELECT value FROM meta WHERE key = 'schema'), '')`).Scan(&app, &schema)
	if err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", errors.Join(err, ErrNotLedger))
	}
	if app != appName {
		return 0, fmt.Errorf("the schema %q is not a mailferry ledger (meta app %q): %w", pgSchema, app, ErrNotLedger)
	}
	v, err := strconv.Atoi(schema)
	if err != nil {
		return 0, fmt.Errorf("schema version %q: %w", schema, ErrNotLedger)
	}
	return v, nil
}

// explainConnect says what a failed connection means: where it tried, and
// whether the password was refused.
func explainConnect(err error) error {
	var oor *OutOfReachError
	if errors.As(err, &oor) {
		return err // says it already
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
		return fmt.Errorf("the database refused the login (wrong password or user; give the password through state_password_env, state_password_file or MAILFERRY_STATE_PASSWORD): %w", err)
	}
	if errors.Is(err, errAsyncCommit) {
		return errAsyncCommit
	}
	return fmt.Errorf("cannot reach the database: %w", err)
}

// pgSize is Size for PostgreSQL: the mailferry tables with their indexes
// and TOAST.
func (l *Ledger) pgSize(ctx context.Context) (bytes, entries int64, err error) {
	// A run's report reads it as the run ends: out of reach, it gives up
	// with the run's last statements (final).
	ctx, cancel := l.pg.final(ctx, "the ledger's size is left out of the report")
	defer cancel()
	if err := l.r.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, pgSchema).Scan(&bytes); err != nil {
		return 0, 0, fmt.Errorf("reading the size of %s: %w", l.path, outOfReach(ctx, err))
	}
	if err := l.r.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(messages), 0) AS BIGINT) FROM account_counts`).Scan(&entries); err != nil {
		return 0, 0, fmt.Errorf("counting the entries of %s: %w", l.path, outOfReach(ctx, err))
	}
	return bytes, entries, nil
}

// Upgrade brings the ledger at state to this mailferry's schema (`mailferry
// ledger upgrade`): a PostgreSQL ledger with every worker stopped; a SQLite
// file, which must exist, by opening it (as every run does). It reports the
// schema found and the schema now.
func Upgrade(ctx context.Context, state string, opts *Options) (from, to int, err error) {
	if opts == nil {
		opts = &Options{}
	}
	if !IsPostgres(state) {
		if _, err := os.Stat(state); err != nil {
			return 0, 0, fmt.Errorf("upgrading %s: %w", state, err)
		}
		abs, err := filepath.Abs(state)
		if err != nil {
			return 0, 0, fmt.Errorf("upgrading %s: %w", state, err)
		}
		db, err := sql.Open("sqlite", dsn(abs, time.Second, true))
		if err != nil {
			return 0, 0, fmt.Errorf("upgrading %s: %w", state, err)
		}
		err = db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from)
		db.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("upgrading %s: reading its schema version: %w", state, notDatabase(err))
		}
		l, err := Open(ctx, state, opts)
		if err != nil {
			return from, from, err
		}
		return from, SchemaVersion, l.Close()
	}
	o := *opts
	o.skipSchemaCheck = true
	l, err := openPostgres(ctx, state, &o)
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("upgrading %s: %w", l.path, explainConnect(err))
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mailferry-ledger'))`); err != nil {
		return 0, 0, fmt.Errorf("upgrading %s: %w", l.path, err)
	}
	v, err := pgVersion(ctx, tx)
	if err != nil {
		return 0, 0, fmt.Errorf("upgrading %s: %w", l.path, err)
	}
	switch {
	case v > SchemaVersion:
		return v, v, fmt.Errorf("upgrading %s: schema version %d, this mailferry knows up to %d: %w", l.path, v, SchemaVersion, ErrSchemaTooNew)
	case v == SchemaVersion:
		return v, v, nil
	}
	// Live leases mean workers are running: upgrading would pull the
	// schema from under them.
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE queue = 'running' AND lease_expires > `+pgNow).Scan(&live); err != nil {
		return v, v, fmt.Errorf("upgrading %s: %w", l.path, err)
	}
	if live > 0 {
		return v, v, fmt.Errorf("upgrading %s: %d accounts are held by running workers: stop every worker first", l.path, live)
	}
	from = v
	for ; v < SchemaVersion; v++ {
		up, ok := pgUpgrades[v]
		if !ok {
			return from, from, fmt.Errorf("upgrading %s: no upgrade from schema %d (PostgreSQL ledgers start at schema 5)", l.path, v)
		}
		if err := up(ctx, tx); err != nil {
			return from, from, fmt.Errorf("upgrading %s from schema %d: %w", l.path, v, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'schema'`, strconv.Itoa(SchemaVersion)); err != nil {
		return from, from, fmt.Errorf("upgrading %s: %w", l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return from, from, fmt.Errorf("upgrading %s: %w", l.path, err)
	}
	l.log.Info("ledger upgraded from schema "+strconv.Itoa(from)+" to "+strconv.Itoa(SchemaVersion)+"; nothing will be copied again", "database", l.path)
	return from, SchemaVersion, nil
}

// pgUpgrades bring a PostgreSQL ledger from schema N to N+1, in the
// upgrade's transaction. Schema 5 is the first PostgreSQL schema.
var pgUpgrades = map[int]func(context.Context, *sql.Tx) error{
	// 5 to 6: the entries' source EMAILID, the statements SQLite runs
	// too (schema6). Adding a nullable column without a default changes
	// the catalog only: no row is rewritten.
	5: func(ctx context.Context, tx *sql.Tx) error {
		for _, stmt := range schema6 {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", firstLine(stmt), err)
			}
		}
		return nil
	},
}

// replyBound is a connection to the database that gives up on a reply
// not received within timeout (the lease TTL): a database cut off by the
// network (packets dropped, no reset) would otherwise keep a statement
// waiting for minutes, and a worker cut off must stop and exit rather than
// hang. Deadlines the driver sets itself (a cancelled context) still
// apply when they are earlier.
type replyBound struct {
	net.Conn
	timeout time.Duration

	mu       sync.Mutex
	explicit time.Time // the driver's read deadline; zero: none
}

func (c *replyBound) Read(b []byte) (int, error) {
	c.mu.Lock()
	d := time.Now().Add(c.timeout)
	if !c.explicit.IsZero() && c.explicit.Before(d) {
		d = c.explicit
	}
	err := c.Conn.SetReadDeadline(d)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *replyBound) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.explicit = t
	return c.Conn.SetDeadline(t)
}

func (c *replyBound) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.explicit = t
	return c.Conn.SetReadDeadline(t)
}

// hostname is the machine's name for worker ids.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
