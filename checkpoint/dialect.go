package checkpoint

import (
	"strings"
)

// dialect is what an engine changes in the ledger's SQL: the statements
// that create schema 5, how placeholders are spelled, how keys and byte
// strings are bound, and the few statements the engines write
// differently. The code that uses it (validation, change sets, pruning,
// the folder cache) is the same for every engine. PostgreSQL adds one
// value of this type (dialect_postgres.go) and the lease-based hold.
type dialect struct {
	name string
	// tables, indexes and triggers create schema 5 in that order: an
	// upgrade or a ledger migrate copies the rows between the first and
	// the others (faster than maintaining indexes row by row).
	tables, indexes, triggers []string
	// q rewrites a statement written with "?" placeholders.
	q func(string) string
	// key binds a source key, a Message-ID or a folder name: SQLite keeps
	// them as TEXT (and compares TEXT and BLOB as different even with
	// equal bytes, so a key is always bound as a Go string); PostgreSQL as
	// BYTEA (its TEXT refuses NUL and invalid UTF-8, and IMAP keys hold
	// NUL).
	key func(string) any
	// in returns a condition "col IN (...)" for n values and the values'
	// arguments. SQLite binds the values one by one (padding up to a
	// bound, so that one prepared statement serves every call);
	// PostgreSQL passes one array.
	in func(col string, values []any) (string, []any)
	// indexedBy names the index a statement must read (SQLite: "INDEXED
	// BY", where its planner, without statistics, would read the whole
	// account through the primary key instead); "" lets the planner
	// choose (PostgreSQL picks by cost).
	indexedBy func(index string) string
	// rekey moves the keys of one prefix to another (Changes.Rekey), on
	// bytes: its arguments are the new prefix, the first byte after the
	// old prefix (1-based), the account and the range's low end; the
	// caller appends "AND source_key < ?" for a bounded range.
	rekey string
}

// sqliteDialect is the embedded engine's.
var sqliteDialect = &dialect{
	name:     "sqlite",
	tables:   sqliteTables,
	indexes:  sqliteIndexes,
	triggers: sqliteTriggers,
	q:        func(s string) string { return s },
	key:      func(s string) any { return s },
	in:       sqliteIn,
	indexedBy: func(index string) string {
		return " INDEXED BY " + index
	},
	// substr counts characters in TEXT, and keys are bytes.
	rekey: `UPDATE messages SET source_key = CAST(? || CAST(substr(CAST(source_key AS BLOB), ?) AS TEXT) AS TEXT)
			WHERE account_id = ? AND source_key >= ?`,
}

// sqliteIn spells "col IN (?, ?, ...)" for values, padded with the last
// value to the next of 1, 8, 64 or MaxLookup values, so that a handful of
// statement texts serve every call (each text is parsed once per
// connection and cached). Repeating a value in an IN list changes nothing.
func sqliteIn(col string, values []any) (string, []any) {
	n := len(values)
	size := 1
	for _, s := range []int{1, 8, 64, 512} {
		size = s
		if n <= s {
			break
		}
	}
	if n > size {
		size = n
	}
	args := make([]any, size)
	copy(args, values)
	for i := n; i < size; i++ {
		args[i] = values[n-1]
	}
	return col + " IN (?" + strings.Repeat(", ?", size-1) + ")", args
}

// Schema 5 (docs/ledger.md "Tables"). Times are Unix nanoseconds (0:
// never); states are stored by name, so that the file stays readable with
// the sqlite3 shell; digests are 32 bytes. Every table exists in both
// engines, also those only a fleet fills (workers, slots, passes,
// throughput), so that `ledger migrate` copies table by table.
var sqliteTables = []string{
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) WITHOUT ROWID`,
	`CREATE TABLE accounts (
		id            INTEGER PRIMARY KEY,
		ident         TEXT    NOT NULL UNIQUE,
		name          TEXT    UNIQUE,
		src_proto     TEXT    NOT NULL DEFAULT '',
		src_user      TEXT    NOT NULL DEFAULT '',
		dst_user      TEXT    NOT NULL DEFAULT '',
		dst_folder    TEXT    NOT NULL DEFAULT '',
		source        TEXT    NOT NULL DEFAULT '',
		destination   TEXT    NOT NULL DEFAULT '',
		key_scheme    TEXT    NOT NULL DEFAULT '',
		spec          TEXT    NOT NULL DEFAULT '{}',
		created       INTEGER NOT NULL DEFAULT 0,
		provisional   INTEGER NOT NULL DEFAULT 0,
		paused        INTEGER NOT NULL DEFAULT 0,
		pause_reason  TEXT    NOT NULL DEFAULT '',
		paused_at     INTEGER NOT NULL DEFAULT 0,
		retry_asked   INTEGER NOT NULL DEFAULT 0,
		not_before    INTEGER NOT NULL DEFAULT 0,
		wait_reason   TEXT    NOT NULL DEFAULT '',
		retry_skipped INTEGER NOT NULL DEFAULT 0,
		queue         TEXT    NOT NULL DEFAULT 'idle' CHECK (queue IN ('idle', 'queued', 'running')),
		pass          INTEGER NOT NULL DEFAULT 0,
		queued_at     INTEGER NOT NULL DEFAULT 0,
		lease_worker  TEXT    NOT NULL DEFAULT '',
		lease_epoch   INTEGER NOT NULL DEFAULT 0,
		lease_expires INTEGER NOT NULL DEFAULT 0,
		last_run      INTEGER,
		last_ok_run   INTEGER,
		last_err_run  INTEGER
	)`,
	`CREATE TABLE account_aliases (
		alias      TEXT    PRIMARY KEY,
		account_id INTEGER NOT NULL REFERENCES accounts (id),
		added      INTEGER NOT NULL,
		proof      TEXT    NOT NULL
	) WITHOUT ROWID`,
	`CREATE TABLE folders (
		id            INTEGER PRIMARY KEY,
		account_id    INTEGER NOT NULL REFERENCES accounts (id),
		side          TEXT    NOT NULL CHECK (side IN ('src', 'dst')),
		name          TEXT    NOT NULL,
		uidvalidity   INTEGER NOT NULL DEFAULT 0,
		uidnext       INTEGER NOT NULL DEFAULT 0,
		highestmodseq INTEGER NOT NULL DEFAULT 0,
		messages      INTEGER NOT NULL DEFAULT 0,
		synced_at     INTEGER NOT NULL DEFAULT 0,
		op            TEXT    NOT NULL DEFAULT '' CHECK (op IN ('', 'renaming', 'deleting', 'deleted')),
		op_name       TEXT    NOT NULL DEFAULT '',
		UNIQUE (account_id, side, name)
	)`,
	// One row per source message. account_id refers to accounts without a
	// foreign key in SQLite: the check would cost a lookup on every write
	// of the hot table, and only accounts with no entries are ever removed.
	// source_emailid (schema 6) is the source's EMAILID of the message (RFC
	// 8474 OBJECTID), NULL when the server has none; it is the last column,
	// so that a file upgraded from schema 5 (upgrade5: ADD COLUMN) and a
	// new one have the same columns in the same order.
	`CREATE TABLE messages (
		account_id        INTEGER NOT NULL,
		source_key        TEXT    NOT NULL,
		state             TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'skipped', 'failed', 'gone', 'removing', 'removed', 'moving')),
		reason_class      TEXT    NOT NULL DEFAULT '',
		reason            TEXT    NOT NULL DEFAULT '',
		digest            BLOB,
		size              INTEGER NOT NULL DEFAULT 0,
		message_id        TEXT    NOT NULL DEFAULT '',
		dest_folder_id    INTEGER NOT NULL DEFAULT 0,
		dest_uidvalidity  INTEGER NOT NULL DEFAULT 0,
		dest_uid          INTEGER NOT NULL DEFAULT 0,
		dest_uidnext      INTEGER NOT NULL DEFAULT 0,
		move_to_folder_id INTEGER NOT NULL DEFAULT 0,
		flags             TEXT    NOT NULL DEFAULT '',
		updated           INTEGER NOT NULL DEFAULT 0,
		done_at           INTEGER NOT NULL DEFAULT 0,
		gone_at           INTEGER NOT NULL DEFAULT 0,
		source_emailid    TEXT,
		PRIMARY KEY (account_id, source_key)
	) WITHOUT ROWID`,
	`CREATE TABLE account_counts (
		account_id INTEGER NOT NULL,
		state      TEXT    NOT NULL,
		messages   INTEGER NOT NULL DEFAULT 0,
		bytes      INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (account_id, state)
	) WITHOUT ROWID`,
	`CREATE TABLE runs (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		account_id   INTEGER NOT NULL REFERENCES accounts (id),
		worker       TEXT    NOT NULL DEFAULT '',
		pass         INTEGER NOT NULL DEFAULT 0,
		started      INTEGER NOT NULL,
		finished     INTEGER,
		result       TEXT    NOT NULL DEFAULT '',
		error        TEXT    NOT NULL DEFAULT '',
		error_class  TEXT    NOT NULL DEFAULT '',
		hint         TEXT    NOT NULL DEFAULT '',
		listed       INTEGER NOT NULL DEFAULT 0,
		listed_bytes INTEGER NOT NULL DEFAULT 0,
		copied       INTEGER NOT NULL DEFAULT 0,
		found        INTEGER NOT NULL DEFAULT 0,
		skipped      INTEGER NOT NULL DEFAULT 0,
		failed       INTEGER NOT NULL DEFAULT 0,
		gone         INTEGER NOT NULL DEFAULT 0,
		moved        INTEGER NOT NULL DEFAULT 0,
		removed      INTEGER NOT NULL DEFAULT 0,
		deleted      INTEGER NOT NULL DEFAULT 0,
		bytes        INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE resent (
		id               INTEGER PRIMARY KEY AUTOINCREMENT,
		account_id       INTEGER NOT NULL REFERENCES accounts (id),
		source_key       TEXT    NOT NULL,
		dest_folder_id   INTEGER NOT NULL,
		dest_uidvalidity INTEGER NOT NULL,
		from_uid         INTEGER NOT NULL,
		digest           BLOB,
		size             INTEGER NOT NULL,
		recorded         INTEGER NOT NULL
	)`,
	`CREATE TABLE usage (
		account_id    INTEGER NOT NULL REFERENCES accounts (id),
		window_start  INTEGER NOT NULL,
		read_bytes    INTEGER NOT NULL DEFAULT 0,
		written_bytes INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (account_id, window_start)
	) WITHOUT ROWID`,
	`CREATE TABLE workers (
		id        TEXT    PRIMARY KEY,
		host      TEXT    NOT NULL DEFAULT '',
		pid       INTEGER NOT NULL DEFAULT 0,
		version   TEXT    NOT NULL DEFAULT '',
		started   INTEGER NOT NULL DEFAULT 0,
		heartbeat INTEGER NOT NULL DEFAULT 0,
		draining  INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID`,
	`CREATE TABLE slots (
		scope      TEXT    NOT NULL,
		slot       INTEGER NOT NULL,
		worker     TEXT    NOT NULL DEFAULT '',
		account_id INTEGER NOT NULL DEFAULT 0,
		expires    INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (scope, slot)
	) WITHOUT ROWID`,
	`CREATE TABLE passes (
		id       INTEGER PRIMARY KEY,
		started  INTEGER NOT NULL,
		finished INTEGER
	)`,
	`CREATE TABLE throughput (
		minute   INTEGER NOT NULL,
		worker   TEXT    NOT NULL,
		messages INTEGER NOT NULL DEFAULT 0,
		bytes    INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (minute, worker)
	) WITHOUT ROWID`,
}

// Each index exists for a query that would otherwise read the whole
// account or the whole table (docs/ledger.md). SQLite uses a partial index
// only when the query repeats its condition, so the queries spell it out.
var sqliteIndexes = []string{
	`CREATE INDEX accounts_candidates ON accounts (src_user, dst_user)`,
	`CREATE INDEX accounts_claimable ON accounts (queued_at, id) WHERE queue <> 'idle'`,
	`CREATE INDEX account_aliases_account ON account_aliases (account_id)`,
	`CREATE INDEX folders_dst_name ON folders (name, uidvalidity) WHERE side = 'dst'`,
	`CREATE INDEX messages_open ON messages (account_id, state) WHERE state <> 'done'`,
	`CREATE INDEX messages_dest ON messages (dest_folder_id, dest_uid) WHERE dest_folder_id <> 0`,
	`CREATE INDEX messages_gone_digest ON messages (account_id, digest) WHERE state = 'gone'`,
	`CREATE INDEX messages_done_at ON messages (account_id, done_at) WHERE state = 'done'`,
	`CREATE INDEX runs_account_id ON runs (account_id, id)`,
	`CREATE INDEX resent_account ON resent (account_id, id)`,
	// At most one open pass (a fleet's; the expression is 1 for every open
	// pass, so a second open one breaks the uniqueness).
	`CREATE UNIQUE INDEX passes_one_open ON passes ((finished IS NULL)) WHERE finished IS NULL`,
}

// account_counts is kept by triggers, so that every writer (commits,
// pruning, the upgrade, ledger migrate) keeps it right without knowing
// about it. An upsert that takes its update path fires the update trigger
// only; a flag sync changes neither state nor size and fires none.
var sqliteTriggers = []string{
	`CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
		INSERT INTO account_counts (account_id, state, messages, bytes) VALUES (NEW.account_id, NEW.state, 1, NEW.size)
		ON CONFLICT (account_id, state) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes;
	END`,
	`CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
		UPDATE account_counts SET messages = messages - 1, bytes = bytes - OLD.size
		WHERE account_id = OLD.account_id AND state = OLD.state;
	END`,
	`CREATE TRIGGER messages_count_update AFTER UPDATE OF state, size ON messages
	WHEN OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size BEGIN
		UPDATE account_counts SET messages = messages - 1, bytes = bytes - OLD.size
		WHERE account_id = OLD.account_id AND state = OLD.state;
		INSERT INTO account_counts (account_id, state, messages, bytes) VALUES (NEW.account_id, NEW.state, 1, NEW.size)
		ON CONFLICT (account_id, state) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes;
	END`,
}
