package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotEnoughSpace is wrapped by Open when the disk cannot hold an upgrade
// of the ledger (the old and new tables coexist until it commits).
var ErrNotEnoughSpace = errors.New("checkpoint: not enough free disk space to upgrade the ledger")

// upgradeStats is what an upgrade moved, for its log line.
type upgradeStats struct{ accounts, entries, runs int64 }

// upgrade4 turns a schema-4 ledger into the current schema (6) inside tx
// (docs/ledger.md "Upgrading from schema 4"): it creates the tables as they
// are now, so schema 5's additions come with them (the entries' source
// EMAILID is NULL). every entry, its state, digest, done_at and
// destination keep their meaning; accounts become numbers whose alias is
// the schema-4 key, so that every key resolves to its account and lock
// files keep their names; nothing is copied again. It writes nothing
// when a check fails. dev: the file is devSchema5's, whose operator
// controls (account_control) become the accounts' paused, paused_at and
// retry_asked, and whose runs keep their error class and hint.
func (l *Ledger) upgrade4(ctx context.Context, tx *sql.Tx, opts *Options, dev bool) (upgradeStats, error) {
	var st upgradeStats
	// 1. Checks.
	if err := checkSpace(l.path, opts.FreeSpace); err != nil {
		return st, err
	}
	for _, table := range []string{"messages", "resent"} {
		var bad sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT account || ' ' || quote(source_key) || ': ' || quote(digest) FROM `+table+`
			WHERE digest <> '' AND (length(digest) <> 64 OR digest GLOB '*[^0-9a-f]*') LIMIT 1`).Scan(&bad)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return st, fmt.Errorf("checking the digests of %s: %w", table, err)
		}
		if bad.Valid {
			return st, fmt.Errorf("a digest in %s is not 64 lower-case hex digits (%s); a digest is never dropped silently", table, bad.String)
		}
	}

	// The new tables; those that replace schema-4 tables get a temporary
	// name until the old ones are dropped.
	renamed := map[string]string{"messages": "messages_v5", "runs": "runs_v5", "resent": "resent_v5"}
	for _, stmt := range l.d.tables {
		for old, tmp := range renamed {
			stmt = strings.Replace(stmt, "CREATE TABLE "+old+" (", "CREATE TABLE "+tmp+" (", 1)
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return st, fmt.Errorf("creating the tables of schema %d: %s: %w", SchemaVersion, firstLine(stmt), err)
		}
	}

	// 2. Accounts: one per schema-4 key, its alias the key itself.
	type account struct {
		key     string
		created int64
	}
	controls := ""
	if dev {
		controls = `UNION ALL SELECT account, MIN(changed) FROM account_control GROUP BY account`
	}
	rows, err := tx.QueryContext(ctx, `SELECT account, MIN(t) FROM (
			SELECT account, MIN(updated) AS t FROM messages GROUP BY account
			UNION ALL SELECT account, MIN(started) FROM runs GROUP BY account
			UNION ALL SELECT account, MIN(recorded) FROM resent GROUP BY account
			`+controls+`)
		GROUP BY account ORDER BY account`)
	if err != nil {
		return st, fmt.Errorf("reading the accounts: %w", err)
	}
	var accounts []account
	for rows.Next() {
		var a account
		if err := rows.Scan(&a.key, &a.created); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading the accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	if err := rows.Close(); err != nil {
		return st, fmt.Errorf("reading the accounts: %w", err)
	}
	now := nanos(l.now())
	for _, a := range accounts {
		p := parseEndpointKey(a.key)
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (ident, src_proto, src_user, dst_user, dst_folder, source, destination, key_scheme, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.key, p.srcProto, strings.ToLower(p.srcUser), strings.ToLower(p.dstUser), strings.ToLower(p.dstFolder),
			p.source, p.destination, p.srcProto, a.created)
		if err != nil {
			return st, fmt.Errorf("creating account %q: %w", a.key, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return st, fmt.Errorf("creating account %q: %w", a.key, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO account_aliases (alias, account_id, added, proof) VALUES (?, ?, ?, 'schema 4')`,
			a.key, id, now); err != nil {
			return st, fmt.Errorf("recording the alias of account %q: %w", a.key, err)
		}
		st.accounts++
	}

	if dev {
		// The operator's pause and retry requests. A retry had made the
		// skipped entries failed already, which the copy below keeps.
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET
			paused = COALESCE((SELECT c.paused FROM account_control c WHERE c.account = accounts.ident), 0),
			pause_reason = CASE WHEN (SELECT c.paused FROM account_control c WHERE c.account = accounts.ident) THEN ? ELSE '' END,
			paused_at = COALESCE((SELECT c.changed FROM account_control c WHERE c.account = accounts.ident), 0),
			retry_asked = COALESCE((SELECT c.retry_requested FROM account_control c WHERE c.account = accounts.ident), 0)`,
			OperatorPauseReason); err != nil {
			return st, fmt.Errorf("copying the operator's controls: %w", err)
		}
	}

	// 3. Destination folders: one per account and mailbox named; their
	// UIDVALIDITY is unknown until a run sees them.
	if _, err := tx.ExecContext(ctx, `INSERT INTO folders (account_id, side, name)
		SELECT al.account_id, 'dst', b.dest_mailbox FROM (
			SELECT DISTINCT account, dest_mailbox FROM messages WHERE dest_mailbox <> ''
			UNION SELECT account, dest_mailbox FROM resent WHERE dest_mailbox <> '') b
		JOIN account_aliases al ON al.alias = b.account`); err != nil {
		return st, fmt.Errorf("recording the destination folders: %w", err)
	}

	// 4. Entries, in the old primary key's order. Reasons become classes
	// the engine branches on; a server's [TOOBIG] refusal was skipped for
	// good as too big.
	res, err := tx.ExecContext(ctx, `INSERT INTO messages_v5 (account_id, source_key, state, reason_class, reason, digest, size,
			message_id, dest_folder_id, dest_uidvalidity, dest_uid, dest_uidnext, move_to_folder_id, flags, updated, done_at, gone_at)
		SELECT al.account_id, m.source_key, m.state,
			CASE
				WHEN m.state = 'skipped' AND m.reason LIKE 'contains NUL bytes%' THEN 'nul'
				WHEN m.state = 'skipped' AND m.reason = 'empty message' THEN 'empty'
				WHEN m.state = 'skipped' AND (m.reason LIKE 'too big:%' OR m.reason LIKE '%[TOOBIG]%') THEN 'too_big'
				WHEN m.state IN ('skipped', 'failed') THEN 'refused'
				ELSE ''
			END,
			m.reason, CASE WHEN m.digest = '' THEN NULL ELSE unhex(m.digest) END, m.size, m.message_id,
			COALESCE(f.id, 0), m.dest_uidvalidity, m.dest_uid, m.dest_uidnext, 0, m.flags, m.updated,
			CASE WHEN m.state = 'done' THEN m.done_at ELSE 0 END, 0
		FROM messages m
		JOIN account_aliases al ON al.alias = m.account
		LEFT JOIN folders f ON f.account_id = al.account_id AND f.side = 'dst' AND f.name = m.dest_mailbox AND m.dest_mailbox <> ''
		ORDER BY al.account_id, m.source_key`)
	if err != nil {
		return st, fmt.Errorf("copying the entries: %w", err)
	}
	st.entries, _ = res.RowsAffected()
	var old int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&old); err != nil {
		return st, fmt.Errorf("counting the entries: %w", err)
	}
	if old != st.entries {
		return st, fmt.Errorf("copied %d of %d entries", st.entries, old)
	}

	// 5. Runs (ids kept) and resent records.
	class, hint := `CASE WHEN r.result = 'interrupted' THEN 'interrupted' ELSE '' END`, `''`
	if dev {
		class, hint = `CASE WHEN r.error_class <> '' THEN r.error_class WHEN r.result = 'interrupted' THEN 'interrupted' ELSE '' END`, `r.hint`
	}
	res, err = tx.ExecContext(ctx, `INSERT INTO runs_v5 (id, account_id, started, finished, result, error, error_class, hint, copied, skipped, failed)
		SELECT r.id, al.account_id, r.started, r.finished, r.result, r.error, `+class+`, `+hint+`, r.copied, r.skipped, r.failed
		FROM runs r JOIN account_aliases al ON al.alias = r.account ORDER BY r.id`)
	if err != nil {
		return st, fmt.Errorf("copying the runs: %w", err)
	}
	st.runs, _ = res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `INSERT INTO resent_v5 (id, account_id, source_key, dest_folder_id, dest_uidvalidity, from_uid, digest, size, recorded)
		SELECT r.id, al.account_id, r.source_key, COALESCE(f.id, 0), r.dest_uidvalidity, r.from_uid,
			CASE WHEN r.digest = '' THEN NULL ELSE unhex(r.digest) END, r.size, r.recorded
		FROM resent r JOIN account_aliases al ON al.alias = r.account
		LEFT JOIN folders f ON f.account_id = al.account_id AND f.side = 'dst' AND f.name = r.dest_mailbox
		ORDER BY r.id`); err != nil {
		return st, fmt.Errorf("copying the resent records: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET
		last_run = (SELECT MAX(id) FROM runs_v5 r WHERE r.account_id = accounts.id),
		last_ok_run = (SELECT MAX(id) FROM runs_v5 r WHERE r.account_id = accounts.id AND r.result IN ('ok', 'partial')),
		last_err_run = (SELECT MAX(id) FROM runs_v5 r WHERE r.account_id = accounts.id AND r.error <> '' AND r.result <> 'paused')`); err != nil {
		return st, fmt.Errorf("recording the accounts' last runs: %w", err)
	}

	if dev {
		if _, err := tx.ExecContext(ctx, `DROP TABLE account_control`); err != nil {
			return st, fmt.Errorf("dropping account_control: %w", err)
		}
	}

	// 6. The old tables go, the new ones take their names, then the
	// indexes, the counts and the triggers (faster than row by row).
	for old, tmp := range renamed {
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+old); err != nil {
			return st, fmt.Errorf("dropping the schema-4 table %s: %w", old, err)
		}
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+tmp+` RENAME TO `+old); err != nil {
			return st, fmt.Errorf("renaming %s: %w", tmp, err)
		}
	}
	for _, stmt := range l.d.indexes {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return st, fmt.Errorf("creating index: %s: %w", firstLine(stmt), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO account_counts (account_id, state, messages, bytes)
		SELECT account_id, state, COUNT(*), SUM(size) FROM messages GROUP BY account_id, state`); err != nil {
		return st, fmt.Errorf("counting the entries per account: %w", err)
	}
	for _, stmt := range l.d.triggers {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return st, fmt.Errorf("creating trigger: %s: %w", firstLine(stmt), err)
		}
	}
	// 7. What the file is now.
	return st, l.writeMeta(ctx, tx)
}

// checkSpace fails unless the disk holding path has 1.2 times the ledger's
// size free: the old and the new tables coexist until the upgrade commits,
// and the WAL holds the new pages.
func checkSpace(path string, free func(string) (uint64, error)) error {
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			size += fi.Size()
		}
	}
	if free == nil {
		free = freeSpace
	}
	dir := filepath.Dir(path)
	avail, err := free(dir)
	if err != nil {
		return fmt.Errorf("checking the free space in %s: %w", dir, err)
	}
	return spaceEnough(size, avail, dir)
}

// spaceEnough says whether avail bytes free are enough to upgrade a ledger
// of size bytes.
func spaceEnough(size int64, avail uint64, dir string) error {
	need := uint64(size) * 12 / 10
	if avail < need {
		return fmt.Errorf("%s has %d bytes free, the upgrade of a %d-byte ledger needs %d: %w", dir, avail, size, need, ErrNotEnoughSpace)
	}
	return nil
}

func freeSpace(dir string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return fs.Bavail * uint64(fs.Bsize), nil
}

// endpointParts are what a schema-4 account key (an endpoint key) says.
type endpointParts struct {
	srcProto, srcUser, dstUser, dstFolder string
	source, destination                   string
}

// parseEndpointKey is the inverse of how account keys are spelled
// ("<proto>://<user>@<host:port> -> <proto>://<user>@<host:port>/<folder>",
// account.Key). Users may hold '@' and folders anything: a side's user is
// what comes before the '@' that is followed by a host:port. A key that
// does not parse gives empty parts: it still names its account, only not
// as a candidate for a renamed server.
func parseEndpointKey(key string) endpointParts {
	src, dst, ok := strings.Cut(key, " -> ")
	if !ok {
		return endpointParts{}
	}
	sp, ok1 := splitEndpoint(src, false)
	dp, ok2 := splitEndpoint(dst, true)
	if !ok1 || !ok2 {
		return endpointParts{}
	}
	return endpointParts{srcProto: sp.proto, srcUser: sp.user, dstUser: dp.user, dstFolder: dp.folder,
		source:      sp.proto + "://" + sp.user + "@" + sp.hostPort,
		destination: dp.proto + "://" + dp.user + "@" + dp.hostPort}
}

type endpoint struct{ proto, user, hostPort, folder string }

func splitEndpoint(s string, withFolder bool) (endpoint, bool) {
	proto, rest, ok := strings.Cut(s, "://")
	if !ok || proto == "" {
		return endpoint{}, false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != '@' || i == 0 {
			continue
		}
		hostPort, folder := rest[i+1:], ""
		if withFolder {
			var found bool
			hostPort, folder, found = strings.Cut(hostPort, "/")
			if !found {
				continue
			}
		}
		if validHostPort(hostPort) {
			return endpoint{proto: proto, user: rest[:i], hostPort: hostPort, folder: folder}, true
		}
	}
	return endpoint{}, false
}

// validHostPort accepts "host:port" and "[v6]:port" with a decimal port.
func validHostPort(s string) bool {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 || strings.ContainsAny(s, "@/ ") {
		return false
	}
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
