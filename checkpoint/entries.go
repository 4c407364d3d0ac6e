package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/pipeline"
)

// upsertRows is how many entries one INSERT statement carries: each
// statement costs the pure-Go SQLite about as much as several rows, and a
// batch's entries are written together anyway. 64 rows × 14 columns stay
// far below SQLite's limit on bound parameters.
const upsertRows = 64

// upsertSQL inserts n entries or, for a key already there, updates it.
// SQLite applies the rows of a multi-row VALUES in order, so a key twice in
// one statement ends as its last row, as with one statement per entry.
func upsertSQL(n int) string {
	return upsertInsert + strings.Repeat(upsertRow+", ", n-1) + upsertRow + upsertConflict
}

const upsertInsert = `INSERT INTO messages (
	account, source_key, state, reason, digest, size, message_id,
	dest_mailbox, dest_uidvalidity, dest_uid, dest_uidnext, flags, updated, done_at
) VALUES `

const upsertRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const upsertConflict = `
ON CONFLICT (account, source_key) DO UPDATE SET
	state = excluded.state,
	reason = excluded.reason,
	digest = excluded.digest,
	size = excluded.size,
	message_id = excluded.message_id,
	dest_mailbox = excluded.dest_mailbox,
	dest_uidvalidity = excluded.dest_uidvalidity,
	dest_uid = excluded.dest_uid,
	dest_uidnext = excluded.dest_uidnext,
	flags = excluded.flags,
	updated = excluded.updated,
	done_at = CASE
		WHEN excluded.state <> 'done' THEN 0
		WHEN messages.state = 'done' AND messages.done_at <> 0 THEN messages.done_at
		ELSE excluded.done_at
	END`

// stateNames maps the stored state names back to pipeline.State.
var stateNames = map[string]pipeline.State{
	pipeline.StatePending.String(): pipeline.StatePending,
	pipeline.StateDone.String():    pipeline.StateDone,
	pipeline.StateSkipped.String(): pipeline.StateSkipped,
	pipeline.StateFailed.String():  pipeline.StateFailed,
}

func validState(s pipeline.State) bool {
	_, ok := stateNames[s.String()]
	return ok
}

// Put inserts or replaces entries, all in one transaction that is synced to
// disk before Put returns. Entries may belong to several accounts. An entry
// with a zero Updated gets the current time.
//
// DoneAt keeps the time an entry first became done: a done entry that
// replaces a done one keeps the stored DoneAt (flag syncs do not move it);
// one that becomes done now stores its DoneAt, or its Updated time when
// DoneAt is zero; an entry in another state stores none.
//
// It fails with an error wrapping ErrInvalidEntry, before writing anything,
// when an entry has no account, no key, an unknown state or an Updated or
// DoneAt time outside the years 1678 to 2262.
func (l *Ledger) Put(ctx context.Context, entries []pipeline.Entry) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Account == "":
			return fmt.Errorf("putting entry %q: no account: %w", e.Key, ErrInvalidEntry)
		case e.Key == "":
			return fmt.Errorf("putting entry for %s: no source key: %w", e.Account, ErrInvalidEntry)
		case !validState(e.State):
			return fmt.Errorf("putting entry %q for %s: state %d: %w", e.Key, e.Account, int(e.State), ErrInvalidEntry)
		case !e.Updated.IsZero() && !fromNanos(nanos(e.Updated)).Equal(e.Updated):
			return fmt.Errorf("putting entry %q for %s: time %v out of range: %w", e.Key, e.Account, e.Updated, ErrInvalidEntry)
		case !e.DoneAt.IsZero() && !fromNanos(nanos(e.DoneAt)).Equal(e.DoneAt):
			return fmt.Errorf("putting entry %q for %s: done time %v out of range: %w", e.Key, e.Account, e.DoneAt, ErrInvalidEntry)
		}
	}
	now := l.now()

	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("putting %d entries into %s: starting transaction: %w", len(entries), l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	stmts := map[int]*sql.Stmt{} // by rows: a full chunk and the rest
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	args := make([]any, 0, upsertRows*14)
	for start := 0; start < len(entries); start += upsertRows {
		chunk := entries[start:min(start+upsertRows, len(entries))]
		stmt := stmts[len(chunk)]
		if stmt == nil {
			if stmt, err = tx.PrepareContext(ctx, upsertSQL(len(chunk))); err != nil {
				return fmt.Errorf("putting %d entries into %s: preparing: %w", len(entries), l.path, err)
			}
			stmts[len(chunk)] = stmt
		}
		args = args[:0]
		for _, e := range chunk {
			updated := e.Updated
			if updated.IsZero() {
				updated = now
			}
			var doneAt int64
			if e.State == pipeline.StateDone {
				doneAt = nanos(updated)
				if !e.DoneAt.IsZero() {
					doneAt = nanos(e.DoneAt)
				}
			}
			args = append(args,
				e.Account, e.Key, e.State.String(), e.Reason, e.Digest, e.Size, e.MessageID,
				e.DestMailbox, int64(e.DestUIDValidity), int64(e.DestUID), int64(e.DestUIDNext),
				strings.Join(e.Flags, " "), nanos(updated), doneAt)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if len(chunk) == 1 {
				return fmt.Errorf("putting entry %q for %s into %s: %w", chunk[0].Key, chunk[0].Account, l.path, err)
			}
			return fmt.Errorf("putting entries %q to %q for %s into %s: %w", chunk[0].Key, chunk[len(chunk)-1].Key, chunk[0].Account, l.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("putting %d entries into %s: committing: %w", len(entries), l.path, err)
	}
	return nil
}

// Entries returns every entry of account, by Key. An account without entries
// gives an empty, non-nil map.
func (l *Ledger) Entries(ctx context.Context, account string) (map[string]pipeline.Entry, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	var n int
	if err := l.r.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM messages WHERE account = ?`, account).Scan(&n); err != nil {
		return nil, fmt.Errorf("reading entries of %s from %s: %w", account, l.path, err)
	}
	rows, err := l.r.QueryContext(ctx, `SELECT source_key, state, reason, digest, size, message_id,
		dest_mailbox, dest_uidvalidity, dest_uid, dest_uidnext, flags, updated, done_at
		FROM messages WHERE account = ?`, account)
	if err != nil {
		return nil, fmt.Errorf("reading entries of %s from %s: %w", account, l.path, err)
	}
	defer rows.Close()
	out := make(map[string]pipeline.Entry, n)
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("reading entries of %s from %s: %w", account, l.path, err)
		}
		e.Account = account
		out[e.Key] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading entries of %s from %s: %w", account, l.path, err)
	}
	return out, nil
}

func scanEntry(rows *sql.Rows) (pipeline.Entry, error) {
	var (
		e                     pipeline.Entry
		state                 string
		uidValidity, uid, nxt int64
		updated, doneAt       int64
		flags                 string
	)
	if err := rows.Scan(&e.Key, &state, &e.Reason, &e.Digest, &e.Size, &e.MessageID,
		&e.DestMailbox, &uidValidity, &uid, &nxt, &flags, &updated, &doneAt); err != nil {
		return e, err
	}
	s, ok := stateNames[state]
	if !ok {
		return e, fmt.Errorf("entry %q: unknown state %q", e.Key, state)
	}
	e.State = s
	e.DestUIDValidity = uint32(uidValidity)
	e.DestUID = uint32(uid)
	e.DestUIDNext = uint32(nxt)
	if flags != "" {
		e.Flags = strings.Fields(flags)
	}
	e.Updated = fromNanos(updated)
	if s == pipeline.StateDone {
		e.DoneAt = fromNanos(doneAt)
	}
	return e, nil
}

// Delete removes the entries of account with the given keys, in one durable
// transaction. Keys without an entry are ignored.
func (l *Ledger) Delete(ctx context.Context, account string, keys []string) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("deleting %d entries of %s from %s: starting transaction: %w", len(keys), account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE account = ? AND source_key = ?`)
	if err != nil {
		return fmt.Errorf("deleting %d entries of %s from %s: preparing: %w", len(keys), account, l.path, err)
	}
	defer stmt.Close()
	for _, k := range keys {
		if _, err := stmt.ExecContext(ctx, account, k); err != nil {
			return fmt.Errorf("deleting entry %q of %s from %s: %w", k, account, l.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("deleting %d entries of %s from %s: committing: %w", len(keys), account, l.path, err)
	}
	return nil
}
