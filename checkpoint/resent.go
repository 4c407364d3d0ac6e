package checkpoint

import (
	"context"
	"fmt"

	"github.com/mailferry/mailferry/pipeline"
)

// Forget removes the pending entries keys of account and records resent in
// the same transaction, synced before it returns: the entry is never gone
// without the note that its first APPEND may still land late.
func (l *Ledger) Forget(ctx context.Context, account string, keys []string, resent []pipeline.Resent) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if len(keys) == 0 && len(resent) == 0 {
		return nil
	}
	now := l.now()
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forgetting %d entries of %s in %s: starting transaction: %w", len(keys), account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account = ? AND source_key = ?`, account, k); err != nil {
			return fmt.Errorf("forgetting entry %q of %s in %s: %w", k, account, l.path, err)
		}
	}
	for _, r := range resent {
		if r.Account != account || r.Key == "" {
			return fmt.Errorf("recording resent message %q of %q under %s: %w", r.Key, r.Account, account, ErrInvalidEntry)
		}
		rec := r.Recorded
		if rec.IsZero() {
			rec = now
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO resent
			(account, source_key, dest_mailbox, dest_uidvalidity, from_uid, digest, size, recorded)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			account, r.Key, r.Mailbox, int64(r.UIDValidity), int64(r.FromUID), r.Digest, r.Size, nanos(rec)); err != nil {
			return fmt.Errorf("recording resent message %q of %s in %s: %w", r.Key, account, l.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forgetting %d entries of %s in %s: committing: %w", len(keys), account, l.path, err)
	}
	return nil
}

// Resent returns the account's Resent records, oldest first.
func (l *Ledger) Resent(ctx context.Context, account string) ([]pipeline.Resent, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT id, source_key, dest_mailbox, dest_uidvalidity, from_uid, digest, size, recorded
		FROM resent WHERE account = ? ORDER BY id`, account)
	if err != nil {
		return nil, fmt.Errorf("reading resent messages of %s from %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.Resent
	for rows.Next() {
		r := pipeline.Resent{Account: account}
		var uidValidity, fromUID, recorded int64
		if err := rows.Scan(&r.ID, &r.Key, &r.Mailbox, &uidValidity, &fromUID, &r.Digest, &r.Size, &recorded); err != nil {
			return nil, fmt.Errorf("reading resent messages of %s from %s: %w", account, l.path, err)
		}
		r.UIDValidity, r.FromUID, r.Recorded = uint32(uidValidity), uint32(fromUID), fromNanos(recorded)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading resent messages of %s from %s: %w", account, l.path, err)
	}
	return out, nil
}

// DropResent removes the account's Resent records with the given IDs.
func (l *Ledger) DropResent(ctx context.Context, account string, ids []int64) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dropping %d resent records of %s from %s: starting transaction: %w", len(ids), account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM resent WHERE account = ? AND id = ?`, account, id); err != nil {
			return fmt.Errorf("dropping resent record %d of %s from %s: %w", id, account, l.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dropping %d resent records of %s from %s: committing: %w", len(ids), account, l.path, err)
	}
	return nil
}

// Claims returns what entries of any account may own among the copies of
// messages with digest in mailbox under uidValidity: the UIDs done entries
// name, and, when entries are pending, every UID from the lowest UIDNEXT
// they recorded (1 when they recorded none or another UIDVALIDITY). It
// scans the whole table (digest has no index, to keep every Put cheap);
// the pipeline asks only for copies its own entries do not name.
func (l *Ledger) Claims(ctx context.Context, mailbox string, uidValidity uint32, digest string) (pipeline.Claims, error) {
	out := pipeline.Claims{UIDs: map[uint32]bool{}}
	if err := l.checkOpen(); err != nil {
		return out, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT state, dest_uidvalidity, dest_uid, dest_uidnext FROM messages
		WHERE digest = ? AND dest_mailbox = ? AND state IN ('done', 'pending')`, digest, mailbox)
	if err != nil {
		return out, fmt.Errorf("reading the copies of %s in %q from %s: %w", digest, mailbox, l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var uv, uid, next int64
		if err := rows.Scan(&state, &uv, &uid, &next); err != nil {
			return out, fmt.Errorf("reading the copies of %s in %q from %s: %w", digest, mailbox, l.path, err)
		}
		switch {
		case state == "done" && uint32(uv) == uidValidity && uid != 0:
			out.UIDs[uint32(uid)] = true
		case state == "pending":
			from := uint32(1)
			if uint32(uv) == uidValidity && next > 0 {
				from = uint32(next)
			}
			if out.PendingFrom == 0 || from < out.PendingFrom {
				out.PendingFrom = from
			}
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reading the copies of %s in %q from %s: %w", digest, mailbox, l.path, err)
	}
	return out, nil
}
