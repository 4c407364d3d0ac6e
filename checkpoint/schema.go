package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the schema version this package writes and understands.
const SchemaVersion = 6

// appName is meta's "app": what tells a mailferry ledger from another
// application's database.
const appName = "mailferry-ledger"

// schema4 are the released migrations from an empty file to schema 4,
// frozen: a file of schema 1 to 3 goes through them, then through the
// upgrade from 4 (upgrade4). Append only, never edit: they are what users' files hold.
var schema4 = []string{
	// 1: messages and runs.
	`CREATE TABLE messages (
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
	CREATE INDEX runs_account_id ON runs (account, id);`,
	// 2: the flags last set on the destination copy.
	`ALTER TABLE messages ADD COLUMN flags TEXT NOT NULL DEFAULT '';`,
	// 3: when each message first became done.
	`ALTER TABLE messages ADD COLUMN done_at INTEGER NOT NULL DEFAULT 0;
	UPDATE messages SET done_at = updated WHERE state = 'done';
	CREATE INDEX messages_account_done_at ON messages (account, done_at) WHERE state = 'done';`,
	// 4: messages reconcile forgot and sent again.
	`CREATE TABLE resent (
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
	CREATE INDEX resent_account ON resent (account, id);`,
}

// devSchema5 is what an unreleased development version of mailferry (its
// status page, before the ledger changed once) added to schema 4 and
// numbered 5: the operator's controls and each run's error class and hint.
// Such a file has user_version 5 but none of schema 5's tables (no meta);
// it is upgraded in place like a schema-4 file, its controls and runs'
// hints kept (upgrade4). Frozen: it is what those files hold.
const devSchema5 = `CREATE TABLE account_control (
		account         TEXT    NOT NULL PRIMARY KEY,
		paused          INTEGER NOT NULL DEFAULT 0,
		changed         INTEGER NOT NULL DEFAULT 0,
		retry_requested INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	ALTER TABLE runs ADD COLUMN error_class TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN hint TEXT NOT NULL DEFAULT '';`

// isDevSchema5 reports whether a file of user_version 5 is devSchema5's:
// schema 4's messages table (keyed by account) and account_control, no
// meta.
func isDevSchema5(ctx context.Context, tx *sql.Tx) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'account_control')
		+ (SELECT COUNT(*) = 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta')
		+ (SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'account')`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("reading the tables: %w", err)
	}
	return n == 3, nil
}

// migrate brings the file to schema 6 in one immediate transaction, so
// that two processes opening a new file at once do not both create
// tables, and a kill at any point leaves the file as it was. It reports
// whether it rebuilt an older schema's tables (the caller then compacts
// the file).
//
//   - no tables at all: schema 6 is created;
//   - tables, but no user_version and no meta: ErrNotLedger, nothing written;
//   - schema 1 to 4: the frozen migrations to 4, then upgrade4, which
//     rebuilds the tables as they are now (schema 6);
//   - user_version 5: either the development schema (devSchema5: no
//     meta), upgraded like schema 4, or schema 5 as released (meta app
//     and schema "5"), upgraded in place by upgrade5; anything else of
//     user_version 5 is not a ledger. This is the one number two schemas
//     shared: no release writes it any more;
//   - schema 6: checked to be a mailferry ledger of schema 6 (user_version
//     and meta agree);
//   - newer: ErrSchemaTooNew.
func (l *Ledger) migrate(ctx context.Context, opts *Options) (bool, error) {
	tx, err := l.beginMigration(ctx)
	if err != nil {
		return false, fmt.Errorf("starting schema migration: %w", notDatabase(err))
	}
	defer func() { _ = tx.Rollback() }()

	var version, tables int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("reading schema version: %w", notDatabase(err))
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&tables); err != nil {
		return false, fmt.Errorf("reading the tables: %w", err)
	}
	dev := false
	switch {
	case version > SchemaVersion:
		return false, fmt.Errorf("schema version %d, this mailferry knows up to %d: %w", version, SchemaVersion, ErrSchemaTooNew)
	case version < 0:
		return false, fmt.Errorf("invalid schema version %d: %w", version, ErrNotLedger)
	case version == 0 && tables > 0:
		return false, fmt.Errorf("the file holds %d tables but no mailferry schema: %w", tables, ErrNotLedger)
	case version == SchemaVersion:
		if err := checkMeta(ctx, tx, SchemaVersion); err != nil {
			return false, err
		}
		return false, nil
	case version == 5:
		if dev, err = isDevSchema5(ctx, tx); err != nil {
			return false, err
		}
		if !dev {
			return false, l.upgrade5(ctx, tx, opts)
		}
	case version == 0:
		if err := l.create(ctx, tx); err != nil {
			return false, err
		}
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("committing the new ledger: %w", err)
		}
		l.log.Debug("ledger created", "path", l.path, "schema", SchemaVersion)
		return false, nil
	}
	for v := version; v < len(schema4) && !dev; v++ {
		if _, err := tx.ExecContext(ctx, schema4[v]); err != nil {
			return false, fmt.Errorf("migrating schema from version %d to %d: %w", v, v+1, err)
		}
	}
	start := time.Now()
	from := strconv.Itoa(version)
	if dev {
		from = "5 of a development version (account_control)"
	}
	to := strconv.Itoa(SchemaVersion)
	stats, err := l.upgrade4(ctx, tx, opts, dev)
	if err != nil {
		return false, fmt.Errorf("upgrading the ledger from schema %s to %s (the file is left as it was): %w", from, to, err)
	}
	if opts.Crashpoint != nil {
		opts.Crashpoint("upgrade: copied")
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("committing the upgrade from schema %s to %s: %w", from, to, err)
	}
	l.log.Info("ledger upgraded from schema "+from+" to "+to+"; nothing will be copied again",
		"path", l.path, "accounts", stats.accounts, "entries", stats.entries, "runs", stats.runs,
		"took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// checkMeta checks that meta says the file is a mailferry ledger of
// schema version: user_version alone is a number another schema may
// have had (5 was two), meta's app and schema are mailferry's own.
func checkMeta(ctx context.Context, tx *sql.Tx, version int) error {
	var hasMeta int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).Scan(&hasMeta); err != nil {
		return fmt.Errorf("reading the tables: %w", err)
	}
	var app, schema string
	if hasMeta == 1 {
		err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM meta WHERE key = 'app'), ''),
			COALESCE((SELECT value FROM meta WHERE key = 'schema'), '')`).Scan(&app, &schema)
		if err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
	}
	if app != appName || schema != strconv.Itoa(version) {
		return fmt.Errorf("schema version %d without mailferry's meta table saying so (app %q, schema %q): %w", version, app, schema, ErrNotLedger)
	}
	return nil
}

// upgrade5 turns a schema-5 ledger (as released) into schema 6 in place,
// inside tx, and commits: the entries gain their source EMAILID, NULL
// until a pass lists the message again. One ALTER TABLE, which SQLite
// makes by changing the table's definition alone: no row is rewritten,
// nothing is copied again, and the upgrade takes as long on a ledger of
// a million entries as on an empty one.
func (l *Ledger) upgrade5(ctx context.Context, tx *sql.Tx, opts *Options) error {
	if err := checkMeta(ctx, tx, 5); err != nil {
		return err
	}
	for _, stmt := range schema6 {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("upgrading the ledger from schema 5 to 6 (the file is left as it was): %s: %w", firstLine(stmt), err)
		}
	}
	if err := l.writeMeta(ctx, tx); err != nil {
		return fmt.Errorf("upgrading the ledger from schema 5 to 6 (the file is left as it was): %w", err)
	}
	if opts.Crashpoint != nil {
		opts.Crashpoint("upgrade: copied")
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing the upgrade from schema 5 to 6: %w", err)
	}
	l.log.Info("ledger upgraded from schema 5 to 6; nothing will be copied again", "path", l.path)
	return nil
}

// schema6 are the statements from schema 5 to 6, the same in both
// engines: the entries' source EMAILID (docs/ledger.md "Upgrading from
// schema 5"). Append only, never edit: they are what users' ledgers hold.
var schema6 = []string{
	`ALTER TABLE messages ADD COLUMN source_emailid TEXT`,
}

// create makes the current schema in an empty file.
func (l *Ledger) create(ctx context.Context, tx *sql.Tx) error {
	for _, part := range [][]string{l.d.tables, l.d.indexes, l.d.triggers} {
		for _, stmt := range part {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("creating schema %d: %s: %w", SchemaVersion, firstLine(stmt), err)
			}
		}
	}
	return l.writeMeta(ctx, tx)
}

// writeMeta records what the file is, and its schema version.
func (l *Ledger) writeMeta(ctx context.Context, tx *sql.Tx) error {
	for _, kv := range [][2]string{{"app", appName}, {"schema", strconv.Itoa(SchemaVersion)},
		{"created", strconv.FormatInt(nanos(l.now()), 10)}} {
		if _, err := tx.ExecContext(ctx, l.d.q(`INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`), kv[0], kv[1]); err != nil {
			return fmt.Errorf("writing meta %s: %w", kv[0], err)
		}
	}
	if l.pg != nil {
		return nil
	}
	// PRAGMA takes no bound parameters; the value is a constant. Schema-4
	// binaries read it to refuse a newer file.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("setting schema version %d: %w", SchemaVersion, err)
	}
	return nil
}

// notDatabase turns SQLite's SQLITE_NOTADB into ErrNotLedger.
func notDatabase(err error) error {
	if strings.Contains(err.Error(), "file is not a database") {
		return fmt.Errorf("%w: not an SQLite database (%v)", ErrNotLedger, err)
	}
	return err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// beginMigration starts the migration's immediate transaction. When two
// processes create a new file at the same moment, SQLite can answer BEGIN
// IMMEDIATE with SQLITE_BUSY without calling the busy handler (the other
// one is switching the file to WAL), so a busy answer is retried here for
// up to about ten seconds.
func (l *Ledger) beginMigration(ctx context.Context) (*sql.Tx, error) {
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		tx, err := l.w.BeginTx(ctx, nil)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || wait > 5*time.Second {
			return tx, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}
