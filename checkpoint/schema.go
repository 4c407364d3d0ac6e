package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migrations brings the schema from version i to i+1 with migrations[i]. The
// schema version is PRAGMA user_version: 0 for a new file, len(migrations)
// when up to date. Append only: never edit or reorder a released migration.
var migrations = []string{
	// 1: messages and runs.
	// Times are Unix nanoseconds (UTC). States are stored by name so that the
	// file stays readable with the sqlite3 shell and does not depend on the
	// order of pipeline.State's constants.
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
	// 2: the flags last set on the destination copy, space-separated (IMAP
	// flags are atoms and never contain spaces), for flag sync.
	`ALTER TABLE messages ADD COLUMN flags TEXT NOT NULL DEFAULT '';`,
	// 3: when each message first became done (Unix nanoseconds; 0 for the
	// other states), for delete_after. Rows already done take their last
	// update time: never earlier than the real one, so a deletion it
	// allows can only come later than due, never sooner.
	`ALTER TABLE messages ADD COLUMN done_at INTEGER NOT NULL DEFAULT 0;
	UPDATE messages SET done_at = updated WHERE state = 'done';
	CREATE INDEX messages_account_done_at ON messages (account, done_at) WHERE state = 'done';`,
	// 4: messages reconcile forgot and sent again, whose first APPEND may
	// still land late (pipeline.Resent).
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
	// 5: what an operator asked of an account (the status page's pause and
	// retry; see control.go), and each run's error class and hint, so that
	// a page served from the ledger alone says what went wrong and what
	// fixes it.
	`CREATE TABLE account_control (
		account         TEXT    NOT NULL PRIMARY KEY,
		paused          INTEGER NOT NULL DEFAULT 0,
		changed         INTEGER NOT NULL DEFAULT 0,
		retry_requested INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	ALTER TABLE runs ADD COLUMN error_class TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN hint TEXT NOT NULL DEFAULT '';`,
}

// SchemaVersion is the schema version this package writes and understands.
func SchemaVersion() int { return len(migrations) }

// migrate applies the missing migrations in one immediate transaction, so
// that two processes opening a new file at once do not both create tables.
func (l *Ledger) migrate(ctx context.Context) error {
	tx, err := l.beginMigration(ctx)
	if err != nil {
		return fmt.Errorf("starting schema migration: %w", notDatabase(err))
	}
	defer func() { _ = tx.Rollback() }()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("reading schema version: %w", notDatabase(err))
	}
	switch {
	case version > len(migrations):
		return fmt.Errorf("schema version %d, this version supports up to %d: %w", version, len(migrations), ErrSchemaTooNew)
	case version < 0:
		return fmt.Errorf("invalid schema version %d", version)
	case version == len(migrations):
		return nil
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrating schema from version %d to %d: %w", v, v+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is an int we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("setting schema version %d: %w", len(migrations), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing schema migration to version %d: %w", len(migrations), err)
	}
	l.log.Debug("schema migrated", "path", l.path, "from", version, "to", len(migrations))
	return nil
}

// notDatabase turns SQLite's SQLITE_NOTADB into ErrNotLedger.
func notDatabase(err error) error {
	if strings.Contains(err.Error(), "file is not a database") {
		return fmt.Errorf("%w: not an SQLite database (%v)", ErrNotLedger, err)
	}
	return err
}

// inspect refuses, through a read-only connection that changes nothing, a
// file that is not an SQLite database or is some other program's: one
// without a schema version that has tables (a new ledger has none), or one
// with a version whose tables are there but not the messages table.
// Without it, Open would turn someone else's database to WAL mode and add
// the ledger's tables to it.
func inspect(ctx context.Context, path string, busy time.Duration) error {
	db, err := sql.Open("sqlite", dsn(path, busy, true))
	if err != nil {
		return err
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("reading schema version: %w", notDatabase(err))
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return fmt.Errorf("reading the tables: %w", notDatabase(err))
	}
	defer rows.Close()
	var tables []string
	ours := false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("reading the tables: %w", err)
		}
		tables = append(tables, name)
		ours = ours || name == "messages"
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the tables: %w", err)
	}
	if len(tables) == 0 || version > 0 && ours {
		return nil
	}
	if len(tables) > 5 {
		tables = append(tables[:5], "...")
	}
	return fmt.Errorf("%w: an SQLite database of another program (schema version %d, tables %s)",
		ErrNotLedger, version, strings.Join(tables, ", "))
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
